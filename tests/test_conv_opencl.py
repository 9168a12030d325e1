"""The OpenCL conv2d and depthwise conv2d templates run through TVM's OpenCL runtime on PoCL (a CPU OpenCL).

On the CPU templates' shape suites (odd, strided, dilated, 1x1, 7x7 and 1-row shapes included), the default
config and 3 random ones per shape (`OPENCL_RANDOM_CONFIGS=20` for the full sweep; at most 4 on the three
heaviest, marked slow) equal numpy, and every config's kernels launch within the preset's limits
(the presets taken in turn, so each shape runs on one of them). The configs of a shape are compiled as one
module (one build, one PoCL program). The default work groups are printed per preset (`pytest -s`) and are
multiples of the lock-step width. Small shapes also run under Oclgrind, which reports out-of-bounds accesses
and data races. Skipped, with the reason, only where TVM's OpenCL runtime is not installed.
"""
import math
import os
import random
import shutil

import numpy as np
import pytest
import tvm

from schedules import default_registry
from schedules.conv2d.opencl import accumulator_words, operand_words, work_group_threads
from schedules.opencl_common import register_budget
from targets import get_device
from targets.kernel_launch import check_launches, compile_recording_launches
from opencl_check import TOLERANCE, configs, needs_opencl, opencl, run_under_oclgrind  # noqa: F401 (opencl: a module fixture)
from test_conv2d_template import SHAPES as CONV2D_SHAPES
from test_depthwise_template import MOBILENET_V2, NEW, ODD

GPU_PRESETS = ["mali-bifrost", "mali-valhall", "adreno-6xx", "adreno-7xx"]
#: Random configs per shape besides the default: 3 in the test suite (PoCL compiles and runs each for
#: seconds), 20 for the acceptance sweep (`OPENCL_RANDOM_CONFIGS=20 pytest tests/test_conv_opencl.py`, ~12 min).
RANDOM_CONFIGS = int(os.environ.get("OPENCL_RANDOM_CONFIGS", "3"))
SHAPES = {"conv2d": CONV2D_SHAPES, "depthwise_conv2d": {**MOBILENET_V2, **ODD, **NEW}}
#: Shapes of more flops than this run the default and `HEAVY_RANDOM_CONFIGS` random configs, marked slow: PoCL
#: takes minutes over 20 random configs of ResNet-18's 224x224 stem (a random work group can be one thread);
#: `OPENCL_HEAVY_RANDOM_CONFIGS=20` with `-m slow` for the acceptance sweep of those shapes.
HEAVY_FLOPS = 50e6
HEAVY_RANDOM_CONFIGS = int(os.environ.get("OPENCL_HEAVY_RANDOM_CONFIGS", min(RANDOM_CONFIGS, 4)))


def _case(op, name, shape, preset):
    template = default_registry().get(op, "opencl")
    heavy = template.flops(template.workload(shape, "float32")) > HEAVY_FLOPS
    return pytest.param(op, shape, preset, HEAVY_RANDOM_CONFIGS if heavy else RANDOM_CONFIGS,
                        marks=[pytest.mark.slow] if heavy else [], id=f"{op}-{name}")


CASES = [_case(op, name, shape, GPU_PRESETS[i % len(GPU_PRESETS)])
         for op, shapes in SHAPES.items() for i, (name, shape) in enumerate(shapes.items())]

pytestmark = needs_opencl




def run_configs(template, wl, device, tried):
    """[(error relative to the reference's largest magnitude, launches)] of each config, all compiled as one module."""
    functions = {f"c{i}": template.schedule(wl, config, device).with_attr("global_symbol", f"c{i}")
                 for i, config in enumerate(tried)}
    executable, launches = compile_recording_launches(tvm.IRModule(functions), device.tvm_target)
    inputs = template.make_inputs(wl, np.random.default_rng(1))
    expected = template.reference(wl, inputs)
    dev = tvm.opencl(0)
    args = [tvm.runtime.tensor(x, dev) for x in inputs]
    results = []
    for name in functions:
        out = tvm.runtime.tensor(np.full_like(expected, np.nan), dev)
        executable[name](*args, out)
        error = np.max(np.abs(out.numpy() - expected)) / max(np.max(np.abs(expected)), 1e-30)
        results.append((float(error), [launch for launch in launches if launch.kernel.startswith(f"{name}_kernel")]))
    return results


@pytest.mark.parametrize("op, shape, preset, random_configs", CASES)
def test_default_and_random_configs_match_numpy_within_the_limits(op, shape, preset, random_configs):
    device = get_device(preset).driven_from_this_machine()
    template = default_registry().get(op, "opencl")
    wl = template.workload(shape, "float32")
    tried = configs(template, wl, device, n=random_configs, seed=sum(shape))
    worst, checked = 0.0, 0
    for config, (error, launches) in zip(tried, run_configs(template, wl, device, tried)):
        assert error <= TOLERANCE, f"{wl}: {config}: relative error {error:.3g}"
        assert launches and [v for v in check_launches(launches, device.gpu) if v.hard] == [], f"{wl}: {config}"
        assert launches[-1].threads == work_group_threads(config) and launches[-1].register_array_words <= register_budget(device.gpu)
        worst, checked = max(worst, error), checked + len(launches)
    print(f"{preset} {wl}: {len(tried)} configs, {checked} launches checked, max relative error {worst:.2g}")


@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_default_work_groups_are_lockstep_multiples_within_the_limits(preset):
    """Every shape's default config, by its knobs (the anchor's launch is its tile's threads, as the test above
    checks), then two shapes compiled: the launches within the limits with no soft violation either."""
    device = get_device(preset).driven_from_this_machine()
    gpu = device.gpu
    print(f"\n{preset} ({gpu.name}: lock-step {gpu.lockstep_width}, <= {gpu.max_threads_per_work_group} threads)")
    for op, shapes in SHAPES.items():
        template = default_registry().get(op, "opencl")
        for name, shape in shapes.items():
            wl = template.workload(shape, "float32")
            config = template.default_config(wl, device)
            threads, groups = work_group_threads(config), _groups(config)
            print(f"  {op:16s} {name:24s} work group {threads:4d} x {groups:5d} groups  {config}")
            assert threads <= gpu.max_threads_per_work_group
            assert accumulator_words(config) + operand_words(config) <= register_budget(gpu)
            if threads * groups >= 2 * gpu.lockstep_width:  # more than one warp's worth of work items in all
                assert threads % gpu.lockstep_width == 0, (name, config)
    for op, shape in [("conv2d", CONV2D_SHAPES["resnet18-3x3"]), ("depthwise_conv2d", MOBILENET_V2["mbv2-144x56-s2"])]:
        template = default_registry().get(op, "opencl")
        wl = template.workload(shape, "float32")
        _, launches = compile_recording_launches(tvm.IRModule({"main": template.schedule(
            wl, template.default_config(wl, device), device)}), device.tvm_target)
        assert check_launches(launches, gpu) == [], launches


def _groups(config) -> int:
    """Work groups of the anchor's launch."""
    knobs = ["tile_c", "tile_p"] if "tile_p" in config else ["tile_c", "tile_ow", "tile_oh"]
    return math.prod(config[k][0] for k in knobs)


def test_one_by_one_convs_are_gemms_over_flat_pixels():
    """A 1x1 conv tiles its pixels as one axis (a 7x7 plane is 49 pixels), a 3x3 one rows and columns."""
    template = default_registry().get("conv2d", "opencl")
    device = get_device("mali-valhall")
    one = template.space(template.workload((1, 64, 7, 7, 128, 1, 1, 1, 0), "float32"), device)
    three = template.space(template.workload((1, 64, 7, 7, 128, 3, 3, 1, 1), "float32"), device)
    assert "tile_p" in one.knobs and "tile_oh" not in one.knobs and one.knobs["tile_p"].extent == 49
    assert "tile_p" not in three.knobs and {"tile_oh", "tile_ow"} <= set(three.knobs)
    assert one.knobs["pad"].candidates == ("inline",) and three.knobs["pad"].candidates == ("inline", "stage")


def test_space_keeps_registers_and_threads_within_the_spec():
    device = get_device("mali-bifrost")
    for op, shape in [("conv2d", (1, 64, 56, 56, 64, 3, 3, 1, 1)), ("depthwise_conv2d", (1, 144, 56, 56, 3, 3, 1, 1))]:
        template = default_registry().get(op, "opencl")
        space = template.space(template.workload(shape, "float32"), device)
        for config in space.sample(random.Random(0), 200):
            assert work_group_threads(config) <= 256 and accumulator_words(config) <= 32
            assert accumulator_words(config) + operand_words(config) <= 64
            assert config["tile_ki"][1] % config["vector"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("model, preset", [("mobilenetv2", "mali-bifrost"), ("resnet18", "adreno-7xx")])
def test_model_functions_with_their_epilogues_match_the_unscheduled_function(model, preset):
    """Each conv task of a small demo model (bias, ReLU / ReLU6, residual add epilogues; 1x1, depthwise,
    strided), its first function scheduled with the default and 2 random configs, run on PoCL against
    TVM's unscheduled loops; with the default config the epilogue is in the conv's store (one kernel)."""
    from gpu_models import SMALL

    from autotune.compile import extract_tasks
    from autotune.measure.evaluate import _function_fixture
    from autotune.model import import_onnx, lower

    device = get_device(preset).driven_from_this_machine()
    module = lower(import_onnx(SMALL[model]()), layout=device.conv_layout)
    tasks = [t for t in extract_tasks(module, device) if "conv2d" in t.task.workload.op]
    assert {t.task.template.name for t in tasks} >= {"conv2d_nchwc.opencl"}
    dev = tvm.opencl(0)
    for model_task in tasks:
        task, name = model_task.task, model_task.functions[0]
        inputs, expected = _function_fixture(module[name], np.random.default_rng(0))
        tried = configs(task.template, task.workload, device, n=2, seed=len(name))
        functions = {f"c{i}": task.template.schedule(task.workload, config, device, module[name]).with_attr(
            "global_symbol", f"c{i}") for i, config in enumerate(tried)}
        executable, launches = compile_recording_launches(tvm.IRModule(functions), device.tvm_target)
        assert [v for v in check_launches(launches, device.gpu) if v.hard] == [], name
        assert len([launch for launch in launches if launch.kernel.startswith("c0_kernel")]) == 1, name
        args = [tvm.runtime.tensor(x, dev) for x in inputs]
        for symbol, config in zip(functions, tried):
            out = tvm.runtime.empty(expected.shape, str(expected.dtype), dev)
            executable[symbol](*args, out)
            error = np.max(np.abs(out.numpy() - expected)) / np.max(np.abs(expected))
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
from test_conv_opencl import configs, run_configs
worst, tried = 0.0, 0
for op, shape, preset in {cases!r}:
    template = default_registry().get(op, "opencl")
    wl = template.workload(shape, "float32")
    device = get_device(preset).driven_from_this_machine()
    results = run_configs(template, wl, device, configs(template, wl, device, n=3, seed=1))
    worst, tried = max([worst] + [error for error, _ in results]), tried + len(results)
print("configs", tried, "relative error", worst)
"""


@pytest.mark.skipif(shutil.which("oclgrind") is None, reason="Oclgrind is not installed (Debian oclgrind)")
def test_oclgrind_finds_no_memory_error_or_data_race(tmp_path):
    """Default and 3 random configs of small odd shapes (strided, dilated, 1x1 over a ragged plane, no padding)
    on Oclgrind's simulated device (see tests/test_opencl_models.py for what it sees and why not --uninitialized)."""
    cases = [("conv2d", (1, 16, 7, 5, 16, 3, 3, 2, 1), "mali-valhall"), ("conv2d", (1, 3, 9, 7, 8, 1, 1, 1, 0), "adreno-6xx"),
             ("conv2d", (1, 8, 9, 9, 16, 3, 3, 1, 2, 2), "mali-bifrost"),
             ("depthwise_conv2d", (1, 16, 7, 9, 3, 3, 2, 1), "mali-valhall"),
             ("depthwise_conv2d", (1, 24, 6, 5, 5, 5, 1, 2), "adreno-7xx")]
    log = tmp_path / "oclgrind.log"
    code = OCLGRIND_RUN.format(tests=os.path.dirname(__file__), cases=cases)
    stdout = run_under_oclgrind(code, log)
    print(stdout.strip().splitlines()[-1])
