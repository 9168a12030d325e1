"""Static performance check of kernels compiled for ARM presets, without a board.

No ARM board is at hand and the emulated one says nothing about speed, so the aarch64 code
the project ships is read instead:
- register pressure: in the disassembly (`aarch64-linux-gnu-objdump -d`) of the exported
  library, per function, the vector FMAs (`fmla`/`fmls`, with their lanes) against the
  vector registers spilled to the stack and reloaded from it;
- speed: each kernel's innermost loops that hold FMAs are given to `llvm-mca` with the
  core's LLVM scheduling model (`Core.mca_model`), whose predicted cycles per iteration give
  the loop's FLOP per cycle, compared with the core's peak.

The exported library is read rather than TVM's own assembly (which TVM 0.27 gives as
`executable.mod.inspect_source("asm")`, the same code with labels but without LLVM's spill
comments): a model's library is what runs on the device, and one reader then serves models
and single kernels. A parallel loop body (`.L__tvm_parallel_lambda*`) has no symbol of its
own: it is counted with the function symbol before it, the PrimFunc that launches it.

What counts as a spill was checked against LLVM's own account: for a conv2d kernel, llc-19's
verbose assembly marks 237 q-register stores "Folded Spill" and 247 loads "Folded Reload",
and this reader counts 237 and 247 in its object code. Spills do not show everything: TVM puts
a large enough accumulator tile (16 x 64 floats, 4 KiB, seen here; 12 x 32 stayed on the stack)
in a heap workspace (TVMBackendAllocWorkspace), where it spills nothing but is loaded and
stored on every FMA (`Loop.stores_per_fma` shows it).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from targets.cpu_spec import Core

OBJDUMP = "aarch64-linux-gnu-objdump"
LLVM_MCA = "llvm-mca-19"
#: The Debian package that has each tool, for the one-line error when it is missing.
TOOL_PACKAGES = {OBJDUMP: "binutils-aarch64-linux-gnu", LLVM_MCA: "llvm-19"}
#: Iterations llvm-mca simulates: enough that filling the pipeline (tens of cycles) is noise.
MCA_ITERATIONS = 300

_SYMBOL = re.compile(r"^([0-9a-f]+) <(.+)>:$")
_INSTRUCTION = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
_TARGET = re.compile(r"\b([0-9a-f]+) <[^>]*>")
_ARRANGEMENT = re.compile(r"^v\d+\.(\d+)[bhsd]")
_FP_REGISTER = re.compile(r"\b([qdshb])(\d+)\b")
_VECTOR_LIST = re.compile(r"\{([^}]*)\}")
_STACK_ADDRESS = re.compile(r"\[(sp|x29)(?:, #(-?\d+))?\]")
_FRAME_SETUP = re.compile(r"^x29, sp\b")
_FMA = {"fmla", "fmls"}
_STORES = {"str", "stp", "stur", "stnp"}
_LOADS = {"ldr", "ldp", "ldur", "ldnp"}
_NO_DESTINATION = {"cmp", "cmn", "tst", "ccmp", "ccmn", "fcmp", "cbz", "cbnz", "tbz", "tbnz", "prfm"}
_CALLEE_SAVED = {f"d{n}" for n in range(8, 16)}


class ToolMissing(RuntimeError):
    """A binutils or LLVM tool the check needs is not installed (said in one line)."""


def run_tool(tool: str, args: Sequence[str], stdin: str | None = None) -> str:
    """The one place that runs objdump and llvm-mca: their stdout, or one line on why not."""
    if shutil.which(tool) is None:
        raise ToolMissing(f"{tool} not found: install Debian package {TOOL_PACKAGES.get(tool, tool)}")
    done = subprocess.run([tool, *args], input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["no message"]
        raise RuntimeError(f"{tool} failed: {lines[0]}")
    return done.stdout


@dataclass(frozen=True)
class Instruction:
    address: int
    mnemonic: str
    operands: str  # objdump's operand text, comment removed

    @property
    def fma_lanes(self) -> int:
        """Lanes of a vector FMA (`v0.4s, v1.4s, v2.s[1]`: 4; scalar `s0, s1, v2.s[1]`: 1), 0 if not one."""
        if self.mnemonic not in _FMA:
            return 0
        arrangement = _ARRANGEMENT.match(self.operands)
        return int(arrangement.group(1)) if arrangement else 1

    @property
    def branch_target(self) -> int | None:
        """The address a direct branch goes to (calls excluded)."""
        if self.mnemonic in {"b", "cbz", "cbnz", "tbz", "tbnz"} or self.mnemonic.startswith("b."):
            target = _TARGET.search(self.operands)
            return int(target.group(1), 16) if target else None
        return None

    def fp_registers(self) -> list[str]:
        """The FP/SIMD registers a load or store moves (before its address operand)."""
        registers = self.operands.split("[", 1)[0]
        vector_list = _VECTOR_LIST.search(registers)
        if vector_list:  # ld1 {v0.4s, v1.4s} or {v0.4s-v3.4s}
            ends = [int(n) for n in re.findall(r"v(\d+)", vector_list.group(1))]
            return [f"v{n}" for n in range(ends[0], ends[-1] + 1)] if "-" in vector_list.group(1) else [f"v{n}" for n in ends]
        return [f"{kind}{n}" for kind, n in _FP_REGISTER.findall(registers)]

    def asm(self) -> str:
        """The instruction as llvm-mca reads it: branch targets become the loop's label."""
        return f"{self.mnemonic}\t{_TARGET.sub('.Lloop', self.operands)}".rstrip()


@dataclass
class Counts:
    """Vector FMAs and stack traffic of vector registers, in instructions (an `stp` is one store)."""

    fma: int = 0  # fmla + fmls
    fma_lanes: int = 0
    spill_stores: int = 0  # q or d registers stored to the stack
    spill_reloads: int = 0
    callee_saves: int = 0  # d8-d15 saved for the caller (AAPCS64), not spills
    vector_loads: int = 0  # FP/SIMD registers loaded from memory other than the stack
    vector_stores: int = 0  # FP/SIMD registers stored there (in an FMA loop: accumulators kept in memory)
    loop_spill_stores: int = 0  # of a function: its spill stores inside innermost FMA loops (the hot path)

    def add(self, other: Counts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def flop(self) -> int:
        return 2 * self.fma_lanes

    @property
    def spills_per_fma(self) -> float:
        return self.spill_stores / self.fma if self.fma else 0.0


@dataclass
class Function:
    name: str
    instructions: list[Instruction]

    @property
    def frame_pointer(self) -> bool:
        """Whether x29 is a frame pointer here: set from sp and never used as a plain register.

        LLVM omits the frame pointer in TVM's kernels and then uses x29 as a data pointer
        (`add x29, x8, w10, uxtw #2`; `ldp q6, q3, [x29]`), so x29-based accesses count as
        stack traffic only where a function sets it up (`mov x29, sp`).
        """
        setup = plain = False
        for ins in self.instructions:
            if not ins.operands.startswith(("x29,", "w29,")) or ins.mnemonic.startswith("st") or ins.mnemonic in _NO_DESTINATION:
                continue
            if ins.mnemonic in ("mov", "add", "sub") and _FRAME_SETUP.match(ins.operands):
                setup = True
            elif not (ins.mnemonic.startswith("ld") and "[sp" in ins.operands):  # a restore from the stack
                plain = True
        return setup and not plain

    def _stack_slots(self, ins: Instruction, frame_pointer: bool) -> set[tuple[str, int]] | None:
        """The 8-byte stack slots a q/d load or store touches (None: not such an access)."""
        address = _STACK_ADDRESS.search(ins.operands)
        if address is None or (address.group(1) == "x29" and not frame_pointer):
            return None
        registers = [r for r in ins.fp_registers() if r[0] in "qd"]
        if not registers or not (ins.mnemonic in _STORES or ins.mnemonic in _LOADS):
            return None
        offset, size = int(address.group(2) or 0), sum(16 if r[0] == "q" else 8 for r in registers)
        return {(address.group(1), granule) for granule in range(offset // 8, (offset + size + 7) // 8)}

    def counts(self, instructions: Iterable[Instruction] | None = None) -> Counts:
        """The counts of this function, or of some of its instructions (a loop).

        A vector store to the stack is a spill only if the function loads a vector back from
        its slot: TVM's parallel launch zeroes its closure on the stack with `stp q0, q0`, never
        read back as vectors. (A spill of a zero accumulator is also `stp q0, q0`, and is reloaded.)
        """
        frame_pointer = self.frame_pointer
        reloaded = set().union(*(slots for ins in self.instructions if ins.mnemonic in _LOADS
                                 for slots in [self._stack_slots(ins, frame_pointer)] if slots))
        counts = Counts()
        for ins in self.instructions if instructions is None else instructions:
            lanes = ins.fma_lanes
            if lanes:
                counts.fma += 1
                counts.fma_lanes += lanes
                continue
            slots = self._stack_slots(ins, frame_pointer)
            callee_saved = set(ins.fp_registers()) <= _CALLEE_SAVED
            if slots and ins.mnemonic in _STORES:
                counts.callee_saves += callee_saved
                counts.spill_stores += not callee_saved and bool(slots & reloaded)
            elif slots:
                counts.spill_reloads += not callee_saved
            elif ins.mnemonic.startswith("ld"):
                counts.vector_loads += len(ins.fp_registers())
            elif ins.mnemonic.startswith("st"):
                counts.vector_stores += len(ins.fp_registers())
        return counts

    def innermost_loops(self) -> list[list[Instruction]]:
        """Bodies (target through backward branch) of loops with FMAs that hold no other backward branch."""
        index = {ins.address: i for i, ins in enumerate(self.instructions)}
        backward = [i for i, ins in enumerate(self.instructions)
                    if ins.branch_target is not None and ins.branch_target <= ins.address and ins.branch_target in index]
        loops = []
        for end in backward:
            start = index[self.instructions[end].branch_target]
            if any(start <= other < end for other in backward):
                continue
            body = self.instructions[start:end + 1]
            if any(ins.fma_lanes for ins in body):
                loops.append(body)
        return loops


def disassemble(path: str) -> list[Function]:
    """The library's machine functions, each named after the symbol it is in.

    A parallel body (`.L__tvm_parallel_lambda*`) has no symbol: it is found by its unwind
    entry (an FDE of `.eh_frame`), is named after the function symbol before it (the PrimFunc
    that launches it), and keeps its own frame, so its stack slots are not confused with its parent's.
    """
    frames = run_tool(OBJDUMP, ["--dwarf=frames", path])
    starts = {int(start, 16) for start in re.findall(r"\bFDE\b.*\bpc=([0-9a-f]+)\.\.", frames)}
    functions: list[Function] = []
    name = None
    for line in run_tool(OBJDUMP, ["-d", "--no-show-raw-insn", path]).splitlines():
        symbol = _SYMBOL.match(line)
        if symbol:
            name = symbol.group(2)
            functions.append(Function(name, []))
            continue
        ins = _INSTRUCTION.match(line)
        if ins and name is not None:
            address = int(ins.group(1), 16)
            if address in starts and functions[-1].instructions:
                functions.append(Function(name, []))
            operands = ins.group(3).split("//", 1)[0].strip()
            functions[-1].instructions.append(Instruction(address, ins.group(2), operands))
    return [f for f in functions if f.instructions]


def mca_cycles_per_iteration(body: Sequence[Instruction], mcpu: str, iterations: int = MCA_ITERATIONS) -> float:
    """llvm-mca's steady-state cycles per iteration of a loop body: Total Cycles / Iterations.

    Not Block RThroughput: that is the bound from resource pressure alone and ignores
    dependencies, so a loop whose accumulators form a chain longer than the pipes can hide
    (2 FMAs into 2 accumulators, latency 4 on the Neoverse N1) gets 1 cycle where it takes 4.
    Simulating many iterations carries each register's value into the next iteration,
    so loop-carried FMA chains, port pressure and the issue width all bound it. Like any llvm-mca
    figure it assumes every load hits L1 and every branch is predicted.
    """
    source = ".Lloop:\n" + "".join(f"\t{ins.asm()}\n" for ins in body)
    out = run_tool(LLVM_MCA, ["-mtriple=aarch64", f"-mcpu={mcpu}", f"-iterations={iterations}"], stdin=source)
    found = dict(re.findall(r"^(Iterations|Total Cycles):\s+(\d+)", out, re.M))
    return int(found["Total Cycles"]) / int(found["Iterations"])


@dataclass
class Loop:
    """An innermost loop with FMAs and llvm-mca's prediction for it on one core."""

    function: str
    address: int
    instructions: int
    counts: Counts
    mca_cycles: float  # per iteration
    core: Core

    @property
    def cycles(self) -> float:
        """llvm-mca's cycles, but never fewer than the core's FMA issue rate allows.

        LLVM 19's Cortex-A55 model issues two Q-form FMLA per cycle; Arm's guide (and
        `Core.fma_per_cycle`) says one. The bound keeps such a model from promising more than peak.
        """
        return max(self.mca_cycles, self.counts.flop / self.core.peak_flops_per_cycle())

    @property
    def capped(self) -> bool:
        return self.cycles > self.mca_cycles

    @property
    def flop_per_cycle(self) -> float:
        return self.counts.flop / self.cycles

    @property
    def fraction_of_peak(self) -> float:
        return self.flop_per_cycle / self.core.peak_flops_per_cycle()

    @property
    def loads_per_fma(self) -> float:
        """Vector registers loaded (not reloads of spills) per FMA instruction."""
        return self.counts.vector_loads / self.counts.fma

    @property
    def stores_per_fma(self) -> float:
        """Vector registers stored (not spilled) per FMA: above 0 in a micro-kernel, its accumulators live in memory."""
        return self.counts.vector_stores / self.counts.fma


@dataclass
class Report:
    """What the check found in one library."""

    path: str
    functions: dict[str, Counts]
    loops: list[Loop] = field(default_factory=list)

    @property
    def total(self) -> Counts:
        total = Counts()
        for counts in self.functions.values():
            total.add(counts)
        return total

    def worst_functions(self, n: int = 10) -> list[tuple[str, Counts]]:
        """The functions with the most spill stores."""
        ranked = sorted(self.functions.items(), key=lambda item: (-item[1].spill_stores, -item[1].spill_reloads, item[0]))
        return [(name, counts) for name, counts in ranked[:n] if counts.spill_stores or counts.spill_reloads]

    def hot_loop(self, function: str | None = None) -> Loop | None:
        """The loop with the most FLOP per iteration (of `function` if given): the micro-kernel.

        Trip counts are not in the code, so the biggest FMA body stands for the hot loop; a
        register-tiled kernel's other FMA loops are remainders and edges.
        """
        loops = [loop for loop in self.loops if function is None or loop.function == function]
        return max(loops, key=lambda loop: (loop.counts.flop, loop.instructions), default=None)


def check_library(path: str, core: Core | None = None) -> Report:
    """Counts per function of an aarch64 library; with `core`, llvm-mca on each innermost FMA loop."""
    report = Report(path, {})
    for function in disassemble(path):
        counts = report.functions.setdefault(function.name, Counts())
        counts.add(function.counts())
        for body in function.innermost_loops():
            loop_counts = function.counts(body)
            counts.loop_spill_stores += loop_counts.spill_stores
            if core is not None:
                cycles = mca_cycles_per_iteration(body, core.mca_model or core.name)
                report.loops.append(Loop(function.name, body[0].address, len(body), loop_counts, cycles, core))
    return report
