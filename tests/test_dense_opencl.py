"""The OpenCL matmul, dense and batch_matmul template run through TVM's OpenCL runtime on PoCL (a CPU OpenCL).

The default config and 20 random ones per shape (the CPU templates' shape suite, 197 rows added) equal numpy,
and every config's kernels launch within the preset's limits (`check_launches`): the template keeps its space
within them. Small shapes also run under Oclgrind, which reports out-of-bounds accesses and data races.
Skipped, with the reason, only where TVM's OpenCL runtime is not installed.
"""
import os
import random
import shutil

import numpy as np
import pytest
import tvm

from schedules import default_registry
from schedules.dense.opencl import register_budget, register_words
from targets import get_device
from targets.kernel_launch import check_launches, compile_recording_launches
from opencl_check import TOLERANCE, configs, needs_opencl, opencl, run_under_oclgrind  # noqa: F401 (opencl: a module fixture)

GPU_PRESETS = ["mali-bifrost", "mali-valhall", "adreno-6xx", "adreno-7xx"]
RANDOM_CONFIGS = 20
SHAPES = {
    "matmul": [(1024, 1024, 1024), (127, 255, 63), (1, 1000, 512), (128, 256, 1024), (197, 768, 64), (7, 3, 5), (1, 1, 1)],
    "dense": [(1024, 1024, 1024), (127, 255, 63), (1, 1000, 512), (128, 256, 1024), (197, 768, 64), (7, 3, 5), (1, 1, 1)],
    "batch_matmul": [(4, 128, 128, 64), (4, 128, 64, 128), (12, 197, 197, 64), (3, 7, 5, 9), (1, 17, 31, 13), (2, 1, 1, 1)],
}
CASES = [pytest.param(op, shape, marks=[pytest.mark.slow] if max(shape) >= 1024 else [], id=f"{op}-{'x'.join(map(str, shape))}")
         for op, shapes in SHAPES.items() for shape in shapes]

pytestmark = needs_opencl



def run_config(template, wl, device, config, dev=None):
    """(error relative to the reference's largest magnitude, launches) of one config on the OpenCL device."""
    executable, launches = compile_recording_launches(tvm.IRModule({"main": template.schedule(wl, config, device)}),
                                                      device.tvm_target)
    inputs = template.make_inputs(wl, np.random.default_rng(1))
    expected = template.reference(wl, inputs)
    dev = dev or tvm.opencl(0)
    args = [tvm.runtime.tensor(x, dev) for x in inputs] + [tvm.runtime.tensor(np.full_like(expected, np.nan), dev)]
    executable["main"](*args)
    error = np.max(np.abs(args[-1].numpy() - expected)) / max(np.max(np.abs(expected)), 1e-30)
    return float(error), launches



@pytest.mark.parametrize("op, shape", CASES)
def test_default_and_random_configs_match_numpy_within_the_limits(op, shape):
    device = get_device("mali-valhall").driven_from_this_machine()
    template = default_registry().get(op, "opencl")
    wl = template.workload(shape, "float32")
    worst, checked, tried = 0.0, 0, configs(template, wl, device, RANDOM_CONFIGS, seed=sum(shape))
    for config in tried:
        error, launches = run_config(template, wl, device, config)
        assert error <= TOLERANCE, f"{wl}: {config}: relative error {error:.3g}"
        assert [v for v in check_launches(launches, device.gpu) if v.hard] == [], f"{wl}: {config}"
        assert launches and all(launch.kernel.startswith("main_kernel") for launch in launches)
        worst, checked = max(worst, error), checked + len(launches)
    print(f"{wl}: {len(tried)} configs, {checked} launches checked, max relative error {worst:.2g}")


@pytest.mark.parametrize("preset", GPU_PRESETS)
@pytest.mark.parametrize("op, shape", [("matmul", (128, 256, 256)), ("dense", (197, 768, 64)),
                                       ("batch_matmul", (2, 197, 197, 64))])
def test_default_config_fits_every_preset_without_a_soft_violation(preset, op, shape):
    device = get_device(preset).driven_from_this_machine()
    template = default_registry().get(op, "opencl")
    wl = template.workload(shape, "float32")
    config = template.default_config(wl, device)
    assert config["vector"] == 4 and config["tile_i"][2] * config["tile_j"][2] == 16
    error, launches = run_config(template, wl, device, config)
    assert error <= TOLERANCE
    assert check_launches(launches, device.gpu) == []
    gemm = launches[-1]  # the pad copies come first
    assert gemm.threads % device.gpu.lockstep_width == 0 and gemm.register_array_words <= register_budget(device.gpu)


def local_b_configs(template, wl, device, n, seed=0):
    """The default config with B's tile in local memory, and `n` random configs that keep it there."""
    space = template.space(wl, device)
    default = template.default_config(wl, device, space)
    sampled = [c for c in space.sample(random.Random(seed), 8 * n) if c["local_b"]][:n]
    with_local = space.config({**default.values, "local_b": True})
    return ([with_local] if space.is_valid(with_local) else []) + sampled


@pytest.mark.parametrize("op, shape", [("matmul", (128, 256, 256)), ("dense", (197, 768, 64)), ("batch_matmul", (3, 7, 5, 9))])
def test_local_memory_tile_on_adreno(op, shape):
    device = get_device("adreno-7xx").driven_from_this_machine()
    template = default_registry().get(op, "opencl")
    wl = template.workload(shape, "float32")
    assert template.space(wl, get_device("mali-valhall")).knobs["local_b"].candidates == (False,)
    for config in local_b_configs(template, wl, device, 10):
        error, launches = run_config(template, wl, device, config)
        assert error <= TOLERANCE, f"{wl}: {config}: relative error {error:.3g}"
        assert [v for v in check_launches(launches, device.gpu) if v.hard] == []
        assert 0 < launches[-1].local_memory_bytes <= device.gpu.local_memory_bytes
        assert launches[-1].register_array_words <= register_budget(device.gpu)  # Adreno's spec sets no limit itself


def test_space_keeps_registers_and_threads_within_the_spec():
    device = get_device("mali-bifrost")
    template = default_registry().get("matmul", "opencl")
    wl = template.workload((512, 512, 512), "float32")
    space = template.space(wl, device)
    for config in space.sample(random.Random(0), 200):
        (_, ty, mr), (_, tx, nr), (_, ku) = config["tile_i"], config["tile_j"], config["tile_k"]
        assert ty * tx <= 256 and mr * nr <= 32 and register_words(mr, nr, ku) <= 64 and nr % config["vector"] == 0


def test_model_functions_with_their_epilogues_match_the_unscheduled_function():
    """Every GEMM function of a small BERT (bias, residual add, GELU epilogues; the attention mask's prologue)
    scheduled by the template, default and 3 random configs, run on PoCL against TVM's unscheduled loops;
    matmul + bias + GELU is one kernel."""
    from gpu_models import SMALL

    from autotune.compile import extract_tasks
    from autotune.measure.evaluate import _function_fixture
    from autotune.model import import_onnx, lower

    device = get_device("mali-valhall").driven_from_this_machine()
    module = lower(import_onnx(SMALL["bert"]()), layout=device.conv_layout)
    tasks = extract_tasks(module, device)
    assert {t.task.template.name for t in tasks} == {"matmul.opencl", "batch_matmul.opencl"}
    names = [name for t in tasks for name in t.functions]
    assert any("erf" in name for name in names), names
    for model_task in tasks:
        task = model_task.task
        for name in model_task.functions:
            inputs, expected = _function_fixture(module[name], np.random.default_rng(0))
            for config in configs(task.template, task.workload, device, n=3):
                func = task.template.schedule(task.workload, config, device, module[name]).with_attr("global_symbol", "main")
                executable, launches = compile_recording_launches(tvm.IRModule({"main": func}), device.tvm_target)
                assert [v for v in check_launches(launches, device.gpu) if v.hard] == [], f"{name}: {config}"
                if "erf" in name and config == task.default_config:
                    assert len(launches) == 1  # the epilogue is in the GEMM's store
                dev = tvm.opencl(0)
                args = [tvm.runtime.tensor(x, dev) for x in inputs] + [tvm.runtime.empty(expected.shape, str(expected.dtype), dev)]
                executable["main"](*args)
                error = np.max(np.abs(args[-1].numpy() - expected)) / np.max(np.abs(expected))
                assert error <= TOLERANCE, f"{name}: {config}: {error:.3g}"


OCLGRIND_RUN = """
import sys
sys.path.insert(0, {tests!r})
import tvm
from targets.opencl_runtime import require_opencl_runtime
require_opencl_runtime()
assert tvm.opencl(0).device_name == "Oclgrind Simulator", tvm.opencl(0).device_name
from schedules import default_registry
from targets import get_device
from test_dense_opencl import configs, local_b_configs, run_config
worst = 0.0
for op, shape in {cases!r}:
    template = default_registry().get(op, "opencl")
    wl = template.workload(shape, "float32")
    mali, adreno = (get_device(name).driven_from_this_machine() for name in ("mali-valhall", "adreno-7xx"))
    for device, config in [*((mali, c) for c in configs(template, wl, mali, n=3, seed=1)),
                           *((adreno, c) for c in local_b_configs(template, wl, adreno, 2, seed=1))]:
        worst = max(worst, run_config(template, wl, device, config)[0])
print("relative error", worst)
"""


@pytest.mark.skipif(shutil.which("oclgrind") is None, reason="Oclgrind is not installed (Debian oclgrind)")
def test_oclgrind_finds_no_memory_error_or_data_race(tmp_path):
    """Default and 3 random configs of small odd shapes on Oclgrind's simulated device, and 3 with B's tile in
    local memory (Adreno; races between its fetch and its reads would show) (see
    tests/test_opencl_models.py for what it sees and why not --uninitialized)."""
    cases = [("matmul", (7, 3, 5)), ("matmul", (13, 20, 9)), ("dense", (5, 12, 7)), ("batch_matmul", (3, 7, 5, 9))]
    log = tmp_path / "oclgrind.log"
    code = OCLGRIND_RUN.format(tests=os.path.dirname(__file__), cases=cases)
    stdout = run_under_oclgrind(code, log)
