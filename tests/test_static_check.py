"""The static check of ARM kernels: exact counts on known assembly, llvm-mca on known loops, spills of a real kernel."""
import shutil
import subprocess

import pytest
import tvm
from tvm import s_tir, te

from autotune.static_check import (
    LLVM_MCA, OBJDUMP, ToolMissing, check_library, disassemble, mca_cycles_per_iteration, run_tool,
)
from targets import get_device

ASSEMBLER = "aarch64-linux-gnu-as"
needs_objdump = pytest.mark.skipif(shutil.which(OBJDUMP) is None or shutil.which(ASSEMBLER) is None,
                                   reason=f"{OBJDUMP} or {ASSEMBLER} missing (Debian binutils-aarch64-linux-gnu)")
needs_mca = pytest.mark.skipif(shutil.which(LLVM_MCA) is None, reason=f"{LLVM_MCA} missing (Debian llvm-19)")


def assemble(tmp_path, source: str) -> str:
    """An aarch64 object file of `source` (with unwind entries, as LLVM's code has)."""
    path = tmp_path / "code.s"
    path.write_text(source)
    subprocess.run([ASSEMBLER, str(path), "-o", str(tmp_path / "code.o")], check=True, capture_output=True)
    return str(tmp_path / "code.o")


def function(name: str, body: str) -> str:
    return f"\t.text\n\t.globl {name}\n\t.type {name},@function\n{name}:\n\t.cfi_startproc\n{body}\n\t.cfi_endproc\n"


KERNEL = function("kernel", """
    stp d8, d9, [sp, #-64]!         // callee-saved: not a spill
    stp d10, d11, [sp, #16]
    add x29, x3, #64                // x29 as a plain data pointer
    fmla v0.4s, v1.4s, v2.4s        // 4 lanes
    fmla v3.2s, v4.2s, v5.2s        // 2
    fmls v6.4s, v7.4s, v8.s[1]      // 4, element form
    fmla s9, s10, v11.s[2]          // 1, scalar
    fmul v0.4s, v1.4s, v2.4s        // not an FMA
    str q12, [sp, #32]              // spill stores: 4 instructions
    stp q13, q14, [sp, #48]
    stur q15, [sp, #80]
    str d16, [sp, #96]
    stp q0, q0, [sp, #112]          // never read back as vectors: not a spill
    str q1, [x0, #16]               // to memory: a vector store
    str w2, [sp, #8]                // integer
    ldr q12, [sp, #32]              // reloads: 4 instructions
    ldp q13, q14, [sp, #48]
    ldur q15, [sp, #80]
    ldr d16, [sp, #96]
    ldr q2, [x1]                    // vector loads: 1 + 2 + 1
    ld1 {v3.4s, v4.4s}, [x2]
    ldr q5, [x29, #16]
    ldr x6, [sp, #8]
    ldp d10, d11, [sp, #16]         // callee-saved restores
    ldp d8, d9, [sp], #64
    ret""") + function("framed", """
    stp x29, x30, [sp, #-48]!
    mov x29, sp                     // a frame pointer: x29-based vectors are stack traffic
    fmla v0.4s, v1.4s, v2.4s
    str q0, [x29, #16]
    ldr q0, [x29, #16]
    ldp x29, x30, [sp], #48
    ret""")


@needs_objdump
def test_counts_on_known_assembly(tmp_path):
    report = check_library(assemble(tmp_path, KERNEL))
    kernel, framed = report.functions["kernel"], report.functions["framed"]
    assert (kernel.fma, kernel.fma_lanes, kernel.flop) == (4, 11, 22)
    assert (kernel.spill_stores, kernel.spill_reloads, kernel.callee_saves) == (4, 4, 2)
    assert (kernel.vector_loads, kernel.vector_stores) == (4, 1)
    assert (framed.fma, framed.spill_stores, framed.spill_reloads) == (1, 1, 1)
    assert (report.total.fma, report.total.spill_stores) == (5, 5)
    assert report.total.spills_per_fma == 1.0
    assert [name for name, _ in report.worst_functions()] == ["kernel", "framed"]


def fma_loop(accumulators: int, nested: bool = False) -> str:
    """A loop of FMAs into `accumulators` independent registers; `nested`: inside an outer loop with more FMAs."""
    fmas = "\n".join(f"    fmla v{i}.4s, v30.4s, v31.4s" for i in range(accumulators))
    inner = f"1:\n{fmas}\n    subs x0, x0, #1\n    b.ne 1b"
    if nested:
        inner = f"2:\n    mov x0, #64\n{inner}\n    fmla v29.4s, v30.4s, v31.4s\n    subs x1, x1, #1\n    b.ne 2b"
    return function("loop", inner + "\n    ret")


@needs_objdump
@needs_mca
@pytest.mark.parametrize("accumulators, flop_per_cycle", [
    (8, 16.0),  # 2 FMLA per cycle x 4 lanes x 2 FLOP: the Neoverse N1 model's (= A76's) peak
    (12, 16.0),
    (2, 4.0),  # two dependency chains of latency 4: 2 FMLA every 4 cycles (Block RThroughput would say 1 cycle)
])
def test_llvm_mca_on_independent_fmla(tmp_path, accumulators, flop_per_cycle):
    core = get_device("cortex-a76").core
    report = check_library(assemble(tmp_path, fma_loop(accumulators)), core)
    (loop,) = report.loops
    assert loop.counts.fma == accumulators and loop.instructions == accumulators + 2
    assert loop.flop_per_cycle == pytest.approx(flop_per_cycle, rel=0.03)
    assert loop.fraction_of_peak == pytest.approx(flop_per_cycle / core.peak_flops_per_cycle(), rel=0.03)
    assert loop.loads_per_fma == 0 and not loop.capped


@needs_objdump
@needs_mca
def test_only_the_innermost_loop_is_analysed(tmp_path):
    report = check_library(assemble(tmp_path, fma_loop(8, nested=True)), get_device("cortex-a76").core)
    assert [loop.counts.fma for loop in report.loops] == [8]
    assert report.total.fma == 9


@needs_objdump
@needs_mca
def test_a76_needs_the_neoverse_n1_model(tmp_path):
    """LLVM 19's cortex-a76 is the Cortex-A57 model: half the A76's FMLA rate, which the Neoverse N1 model has."""
    core = get_device("cortex-a76").core
    assert core.mca_model == "neoverse-n1" and core.peak_flops_per_cycle() == 16
    (func,) = disassemble(assemble(tmp_path, fma_loop(12)))
    (loop,) = func.innermost_loops()
    assert mca_cycles_per_iteration(loop, "neoverse-n1") == pytest.approx(6, rel=0.03)
    assert mca_cycles_per_iteration(loop, "cortex-a76") == pytest.approx(12, rel=0.03)


@needs_objdump
@needs_mca
def test_a55_model_capped_at_the_cores_fma_rate(tmp_path):
    """LLVM's Cortex-A55 model issues two Q-form FMLA per cycle; the core issues one."""
    core = get_device("cortex-a55").core
    (loop,) = check_library(assemble(tmp_path, fma_loop(12)), core).loops
    assert loop.counts.flop / loop.mca_cycles > core.peak_flops_per_cycle()
    assert loop.capped and loop.flop_per_cycle == pytest.approx(core.peak_flops_per_cycle())


def tiled_matmul(n: int, mr: int, nr: int, lanes: int = 4):
    """C = A @ B with an mr x nr accumulator tile held in a local buffer, unrolled and vectorized."""
    a, b = te.placeholder((n, n), "float32", name="A"), te.placeholder((n, n), "float32", name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    sch = s_tir.Schedule(te.create_prim_func([a, b, c]))
    block = sch.get_sblock("C")
    i, j, kk = sch.get_loops(block)
    i0, i1 = sch.split(i, [None, mr])
    j0, j1 = sch.split(j, [None, nr])
    sch.reorder(i0, j0, kk, i1, j1)
    sch.reverse_compute_at(sch.cache_write(block, 0, "local"), j0)
    sch.unroll(i1)
    j1o, j1i = sch.split(j1, [None, lanes])
    sch.unroll(j1o)
    sch.vectorize(j1i)
    sch.vectorize(sch.get_loops(sch.decompose_reduction(block, kk))[-1])
    return sch.mod["main"]


@needs_objdump
@needs_mca
def test_huge_register_tile_spills(tmp_path):
    """4 x 16 floats (16 accumulators) fit NEON's 32 registers; 8 x 32 (64 accumulators) spill in the inner loop."""
    device = get_device("cortex-a76")
    reports = {}
    for mr, nr in ((4, 16), (8, 32)):
        path = str(tmp_path / f"matmul-{mr}x{nr}.so")
        device.export_library(tvm.compile(tvm.IRModule({"main": tiled_matmul(64, mr, nr)}), target=device.tvm_target), path)
        reports[mr, nr] = check_library(path, device.core)
    fits, spills = reports[4, 16], reports[8, 32]
    assert fits.total.fma > 0 and fits.total.spill_stores == 0 and fits.total.spill_reloads == 0
    assert spills.total.spill_stores > spills.total.fma / 2 and spills.total.spill_reloads > spills.total.fma / 2
    fits_loop, spills_loop = fits.hot_loop(), spills.hot_loop()
    assert spills_loop.counts.spill_stores > 0 and fits_loop.counts.spill_stores == 0
    assert spills.total.loop_spill_stores == sum(loop.counts.spill_stores for loop in spills.loops) > 0
    assert fits_loop.fraction_of_peak > 0.8 > 0.5 > spills_loop.fraction_of_peak


def test_missing_tool_is_one_line(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(ToolMissing, match=r"^llvm-mca-19 not found: install Debian package llvm-19$"):
        run_tool(LLVM_MCA, ["--version"])


@needs_objdump
@needs_mca
def test_script_prints_the_template_table(capsys):
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
    import arm_static_check

    assert arm_static_check.main(["--template", "matmul:32,32,32", "--device", "cortex-a76", "--per-function", "3"]) == 0
    out = capsys.readouterr().out
    header, rule, row = out.split("(llvm-mca, core model: cortex-a76=neoverse-n1)\n")[1].splitlines()[:3]
    assert header.split()[:3] == ["kernel", "from", "device"] and set(rule) <= {"-", " "}
    assert row.split()[:4] == ["matmul", "32,32,32", "given", "cortex-a76"] and row.split()[-4] == "16"
