"""Models compiled for the GPU presets and run through TVM's OpenCL runtime on PoCL (a CPU OpenCL).

Every PrimFunc becomes an OpenCL kernel within the preset's limits, and the whole model, run in a
Relax VM on `tvm.opencl(0)`, matches ONNX Runtime. Skipped, with the reason, only where TVM's OpenCL
runtime is not installed (`targets.opencl_runtime`); with the runtime but no OpenCL driver they fail.
The demo models' small versions run here; `scripts/gpu_check.py` runs the full-size ones (minutes each).
"""
import os
import shutil
import subprocess
import sys

import onnx
import pytest

from gpu_models import (
    GPU_PRESETS, SMALL, assert_every_function_is_a_kernel_within_limits, compile_and_run, conv_matmul, errors, feeds,
    odd_elementwise, onnxruntime_output, opencl_source,
)
from autotune.compile import compile_model_with_launches, load_model, primfuncs, schedule_model
from autotune.model import import_onnx, lower
from targets import get_device
from opencl_check import needs_opencl, opencl  # noqa: F401 (opencl: a module fixture)

#: Off by at most this much of the output's largest magnitude (float32 sums in another order).
TOLERANCE = 1e-4

pytestmark = needs_opencl


@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_conv_matmul_model_on_every_gpu_preset(preset):
    device, scheduled, coverage, launches, actual, expected = compile_and_run(conv_matmul(), preset)
    # the OpenCL templates' defaults: the two convs (blocked NCHW[x]c) and the classifier
    assert sorted(workload.split("(")[0] for workload in coverage.fallback) == ["conv2d", "conv2d", "matmul"]
    assert len(coverage.default_schedule) == len(primfuncs(scheduled)) - 3 and not coverage.unscheduled
    assert_every_function_is_a_kernel_within_limits(scheduled, launches, device.gpu)
    assert errors(actual, expected)[1] <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("name, preset", [
    ("resnet18", "mali-valhall"), ("mobilenetv2", "mali-valhall"), ("bert", "mali-valhall"),
    ("resnet18", "mali-bifrost"), ("bert", "adreno-6xx"), ("bert", "adreno-7xx"),  # Adreno: TVM's own relax pipeline
])
def test_small_demo_models_match_onnxruntime_on_pocl(name, preset):
    device, scheduled, _, launches, actual, expected = compile_and_run(SMALL[name](), preset)
    assert_every_function_is_a_kernel_within_limits(scheduled, launches, device.gpu)
    absolute, relative = errors(actual, expected)
    print(f"{name} on {preset}: {len(launches)} kernels, max abs error {absolute:.2g}, relative {relative:.2g}")
    assert relative <= TOLERANCE


def test_a_padded_launch_guards_its_extra_threads():
    device = get_device("mali-valhall")
    scheduled, coverage = schedule_model(lower(import_onnx(odd_elementwise()), layout="NCHW"), device)
    executable, launches = compile_model_with_launches(scheduled, device)
    assert coverage.default_rules == {"work-group Fallback": 1}
    assert [(launch.global_size, launch.work_group) for launch in launches] == [((1008,), (16,))]  # 1001 padded
    assert "< 1001)" in opencl_source(executable)  # the 7 extra threads store nothing
    *_, actual, expected = compile_and_run(odd_elementwise(), "mali-valhall")
    assert errors(actual, expected)[1] <= TOLERANCE


def test_autotune_compile_for_a_gpu_preset(tmp_path):
    path = tmp_path / "conv_matmul.onnx"
    onnx.save(conv_matmul(), path)
    cli = [sys.executable, "-m", "autotune.cli", "compile", str(path), "--device", "mali-valhall"]
    board = subprocess.run([*cli, "-o", str(tmp_path / "board.so")], capture_output=True, text=True, timeout=600)
    assert board.returncode == 0, board.stderr
    assert "3 tasks on templates (0 tuned, 3 on default configs)" in board.stdout  # the two convs and the classifier
    assert "OpenCL kernels within the limits of the Mali-G78 MP14" in board.stdout
    library = (tmp_path / "board.so").read_bytes()
    assert library[:4] == b"\x7fELF" and int.from_bytes(library[18:20], "little") == 183  # EM_AARCH64
    assert b"__kernel void" in library  # the OpenCL C travels in the library
    here = subprocess.run([*cli, "--this-host", "-o", str(tmp_path / "here.so")], capture_output=True, text=True,
                          timeout=600)
    assert here.returncode == 0 and "not loaded back" not in here.stderr, here.stderr
    model = conv_matmul()
    inputs = feeds(model)
    vm = load_model(str(tmp_path / "here.so"))  # on the manifest's device: tvm.opencl(0)
    device = get_device("mali-valhall")
    import tvm

    actual = vm["main"](tvm.runtime.tensor(inputs["input"], device.runtime_device())).numpy()
    assert errors(actual, onnxruntime_output(model, inputs))[1] <= TOLERANCE


OCLGRIND_RUN = """
import sys
sys.path.insert(0, {tests!r})
import tvm
from targets.opencl_runtime import require_opencl_runtime
require_opencl_runtime()
assert tvm.opencl(0).device_name == "Oclgrind Simulator", tvm.opencl(0).device_name
from gpu_models import (
    SMALL, conv_matmul, errors, feeds, odd_elementwise, onnxruntime_output, opencl_source, run_vm,
)
from autotune.compile import compile_model_with_launches, schedule_model
from autotune.model import import_onnx, lower
from targets import get_device
model = SMALL[{name!r}]() if {name!r} in SMALL else conv_matmul()
device = get_device({preset!r}).driven_from_this_machine()
scheduled, _ = schedule_model(lower(import_onnx(model), layout=device.conv_layout), device)
executable, _ = compile_model_with_launches(scheduled, device)
inputs = feeds(model)
print("relative error", errors(run_vm(executable, device, model, inputs), onnxruntime_output(model, inputs))[1])
"""


@pytest.mark.skipif(shutil.which("oclgrind") is None, reason="Oclgrind is not installed (Debian oclgrind)")
@pytest.mark.parametrize("name, preset", [("conv_matmul", "mali-valhall"), ("odd_elementwise", "mali-valhall"),
                                          ("bert", "adreno-7xx")])
def test_oclgrind_finds_no_memory_error_or_data_race(name, preset, tmp_path):
    """Every kernel of the model run on Oclgrind's simulated device, which reports out-of-bounds accesses
    and (with --data-races) races on local and global memory. Accesses past a tensor's end show only
    beyond its allocation, which TVM's runtime rounds up (to 4 KiB here: a 1001-float tensor's overrun
    by 7 goes unseen; the guard is checked in the source above). Not --uninitialized: Oclgrind 21.10's
    plugin stops at LLVM's `freeze` instruction, which the OpenCL C of TVM's kernels compiles to."""
    log = tmp_path / "oclgrind.log"
    code = OCLGRIND_RUN.format(tests=os.path.dirname(__file__), name=name, preset=preset)
    result = subprocess.run(["oclgrind", "--data-races", "--log", str(log), sys.executable, "-c", code],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert log.read_text() == ""  # Oclgrind's error messages, one block each
    assert float(result.stdout.split("relative error")[-1]) <= TOLERANCE
