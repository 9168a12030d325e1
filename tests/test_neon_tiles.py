"""Register tiles sized for NEON (issue: kernels that fit NEON's registers).

On a NEON core a 16-channel block is four registers, so the templates count their tiles
in the core's registers and may compute part of a block at a time (`tile_ki`). Checked
here: such schedules compute the right numbers (built for this machine, so every config
runs fast), and the default configs compiled for the Cortex-A76 and A55 store no vector
register to the stack.
"""
import random
import re
import shutil
import subprocess

import numpy as np
import pytest
import tvm

from numpy_check import check_template
from schedules.registers import tile_fits
from schedules.registry import default_registry
from targets import get_device

CASES = {
    "conv2d-3x3-56": ("conv2d", (1, 64, 56, 56, 64, 3, 3, 1, 1)),
    "conv2d-1x1-7x7": ("conv2d", (1, 192, 7, 7, 576, 1, 1, 1, 0)),
    "conv2d-3x3-odd-27": ("conv2d", (1, 32, 27, 27, 128, 3, 3, 1, 1)),
    "winograd-28": ("conv2d_winograd", (1, 32, 28, 28, 64, 3, 3, 1, 1)),
    "winograd-14": ("conv2d_winograd", (1, 64, 14, 14, 32, 3, 3, 1, 1)),
    "depthwise-7x7": ("depthwise_conv2d", (1, 64, 14, 14, 7, 7, 1, 3)),
    "depthwise-3x3-s2": ("depthwise_conv2d", (1, 48, 28, 28, 3, 3, 2, 1)),
    "group-conv-resnext": ("group_conv2d", (1, 128, 14, 14, 128, 3, 3, 1, 1, 32)),
    "matmul-bert": ("matmul", (128, 256, 256)),
    "dense-odd": ("dense", (197, 100, 64)),
}
OBJDUMP = "aarch64-linux-gnu-objdump"


def _task(op, shape, device_name):
    template = default_registry().get(op)
    device = get_device(device_name)
    return template, template.workload(shape, "float32"), device


@pytest.mark.parametrize("op,shape", CASES.values(), ids=CASES.keys())
def test_neon_configs_match_numpy(op, shape, host):
    template, wl, a76 = _task(op, shape, "cortex-a76")
    space = template.space(wl, a76)
    configs = [template.default_config(wl, a76, space)] + space.sample(random.Random(len(shape)), 3)
    for config in configs:
        check_template(template, wl, a76, config, atol=1e-3, target=host.tvm_target)


def test_a_block_wider_than_the_registers_gets_a_sub_block_knob_only_on_neon(host):
    template, wl, a76 = _task("conv2d", CASES["conv2d-3x3-56"][1], "cortex-a76")
    assert [value for value in template.space(wl, a76).knobs["tile_ki"].candidates] == [(4, 4), (2, 8), (1, 16)]
    assert "tile_ki" not in template.space(wl, host).knobs  # AVX-512: a block is one register


def test_tiles_fit_the_registers_beside_their_operands():
    a76 = get_device("cortex-a76")
    assert tile_fits(a76, 5, 4) and tile_fits(a76, 6, 4)  # 6 pixels x 16 channels: the NEON 6x16 tile
    assert not tile_fits(a76, 3, 8)  # 24 accumulators and 8 kernel registers: measured to spill
    assert not tile_fits(a76, 8, 4)  # 32 accumulators


@pytest.mark.skipif(shutil.which(OBJDUMP) is None, reason=f"{OBJDUMP} (binutils-aarch64-linux-gnu) is not installed")
@pytest.mark.parametrize("device_name", ["cortex-a76", "cortex-a55"])
def test_default_configs_do_not_spill_vector_registers(device_name, tmp_path):
    for name, (op, shape) in CASES.items():
        template, wl, device = _task(op, shape, device_name)
        executable = tvm.compile(template.schedule(wl, template.default_config(wl, device), device), target=device.tvm_target)
        path = str(tmp_path / f"{name}.so")
        device.export_library(executable, path)
        code = subprocess.run([OBJDUMP, "-d", path], capture_output=True, text=True, check=True).stdout
        fmla = len(re.findall(r"\tfmla\t", code))
        spills = len(re.findall(r"\t(?:str|stp|stur)\tq\d+, .*\[sp", code))
        assert fmla > 0, name
        assert spills <= 1, f"{name} on {device_name}: {spills} vector registers stored to the stack ({fmla} fmla)"



#: EfficientNet's 5x5 depthwise convs with bias and SiLU: (channels, size). A parallel task is a row,
#: 112 register-wide pieces of epilogue at 28 pixels (7 x 16), 56 at 14 (7 x 8).
SILU_ROWS = {"240ch-28x28": (240, 28), "672ch-14x14": (672, 14)}


@pytest.mark.skipif(shutil.which(OBJDUMP) is None, reason=f"{OBJDUMP} (binutils-aarch64-linux-gnu) is not installed")
@pytest.mark.parametrize("channels,size", SILU_ROWS.values(), ids=SILU_ROWS.keys())
def test_a_silu_epilogue_runs_per_task_on_an_in_order_core(tmp_path, host, channels, size):
    """On the Cortex-A55 LLVM unrolls a tile's write-back whole and the in-order model interleaves its
    8 pieces (21 spill stores); the epilogue runs per parallel task instead, over an inner loop of a
    power of two pieces (LLVM unrolls a row's 7 x 2^k by 7: 7 or 8 spill stores; now 0 measured),
    and still computes the same numbers."""
    from autotune.static_check import check_library
    from test_depthwise_template import fused_depthwise
    from tvm import s_tir

    from schedules.depthwise import DepthwiseConv2dCPU

    func = fused_depthwise(1, channels, size, size, 5, 1, 2, clip=False, silu=True)
    template = DepthwiseConv2dCPU()
    wl = template.match(s_tir.Schedule(func))
    a55 = get_device("cortex-a55")
    scheduled = template.schedule(wl, template.default_config(wl, a55), a55, func)
    assert "local_global" in scheduled.script()  # the tile copies its accumulators out
    path = str(tmp_path / "a55.so")
    a55.export_library(tvm.compile(scheduled, target=a55.tvm_target), path)
    assert check_library(path).total.spill_stores <= 1
    reference = tvm.compile(func, target=host.tvm_target)
    fast = tvm.compile(scheduled, target=host.tvm_target)
    rng = np.random.default_rng(0)
    blocks = channels // 16
    shapes = [(1, blocks, size, size, 16), (blocks, 1, 5, 5, 16), (1, blocks, 1, 1, 16), (1, blocks, size, size, 16)]
    args = [rng.uniform(-1, 1, shape).astype("float32") for shape in shapes]  # x, w, bias, out
    dev = tvm.cpu()
    outputs = []
    for executable in (reference, fast):
        tensors = [tvm.runtime.tensor(a, dev) for a in args]
        executable["main"](*tensors)
        outputs.append(tensors[-1].numpy())
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
