"""Grouped conv2d template against numpy: group widths 4..32, odd group counts (RegNet's 13, 55), stride 2, dilation."""
import random

import numpy as np
import pytest
import tvm
from numpy.lib.stride_tricks import sliding_window_view
from tvm import te

from numpy_check import check_template
from schedules import default_registry
from schedules.conv2d import Conv2dCPU
from schedules.group_conv2d import GroupConv2dCPU, group_kernel, group_layout, pack_group_kernel

SHAPES = {  # N, C, H, W, K, R, S, stride, pad, groups[, dilation]
    "resnext-width-4": (1, 128, 14, 14, 128, 3, 3, 1, 1, 32),
    "resnext-width-8-s2": (1, 256, 15, 15, 256, 3, 3, 2, 1, 32),
    "resnext-width-16": (1, 512, 7, 7, 512, 3, 3, 1, 1, 32),
    "resnext-width-32-s2": (1, 1024, 8, 8, 1024, 3, 3, 2, 1, 32),
    "regnet-13-groups": (1, 104, 14, 14, 104, 3, 3, 1, 1, 13),
    "regnet-55-groups-s2": (1, 440, 9, 9, 440, 3, 3, 2, 1, 55),
    "regnet-6-groups": (1, 48, 12, 12, 48, 3, 3, 1, 1, 6),
    "width-8-dilated-2": (1, 64, 12, 12, 64, 3, 3, 1, 2, 8, 2),
    "out-wider-than-in": (1, 64, 10, 10, 128, 3, 3, 1, 1, 4),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_default_and_random_configs_match_numpy(shape, host):
    template = GroupConv2dCPU()
    wl = template.workload(shape, "float32")
    space = template.space(wl, host)
    for config in [template.default_config(wl, host, space)] + space.sample(random.Random(2), 2):
        check_template(template, wl, host, config, atol=1e-3)


@pytest.mark.parametrize("shape", [SHAPES["resnext-width-4"], SHAPES["regnet-55-groups-s2"], SHAPES["resnext-width-32-s2"],
                                   SHAPES["width-8-dilated-2"], SHAPES["out-wider-than-in"]])
def test_reference_and_kernel_layout_are_a_real_grouped_convolution(shape):
    """The packed kernel (numpy and TE) and the reference against a grouped conv on NCHW data, group by group."""
    template = GroupConv2dCPU()
    wl = template.workload(shape)
    rng = np.random.default_rng(0)
    n, c, h, w, k, r, s, stride, pad, groups = shape[:10]
    dilation = shape[10] if len(shape) > 10 else 1
    cb, kb, _ = group_layout(c, k, groups)
    nchw = rng.uniform(-1, 1, (n, c, h, w)).astype("float32")
    weight = rng.uniform(-1, 1, (k, c // groups, r, s)).astype("float32")
    packed = pack_group_kernel(weight, groups)
    blocked = nchw.reshape(n, c // cb, cb, h, w).transpose(0, 1, 3, 4, 2)
    out = template.reference(wl, [blocked, packed])
    padded = np.pad(nchw, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(padded, ((r - 1) * dilation + 1, (s - 1) * dilation + 1), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride, ::dilation, ::dilation]
    width, per_group = c // groups, k // groups
    expected = np.concatenate([np.einsum("nchwrs,kcrs->nkhw", windows[:, g * width:(g + 1) * width],
                                         weight[g * per_group:(g + 1) * per_group]) for g in range(groups)], axis=1)
    oh, ow = expected.shape[2:]
    expected = expected.reshape(n, k // kb, kb, oh, ow).transpose(0, 1, 3, 4, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    placeholder = te.placeholder(weight.shape, "float32", name="weight")
    func = tvm.compile(te.create_prim_func([placeholder, group_kernel(placeholder, groups, cb, kb)]), target="llvm")
    args = [tvm.runtime.tensor(weight), tvm.runtime.tensor(np.full_like(packed, np.nan))]
    func["main"](*args)
    np.testing.assert_array_equal(args[1].numpy(), packed)


def test_matchers_tell_grouped_from_plain_convs():
    """The grouped compute is the group template's alone (the plain conv2d matcher would read wrong channels)."""
    grouped, plain = GroupConv2dCPU(), Conv2dCPU()
    for shape in [SHAPES["resnext-width-4"], SHAPES["resnext-width-32-s2"], SHAPES["width-8-dilated-2"]]:
        wl = grouped.workload(shape)
        func = grouped.compute(wl)
        assert grouped.match(tvm.s_tir.Schedule(func)) == wl
        assert plain.match(tvm.s_tir.Schedule(func)) is None
    conv = plain.compute(plain.workload((1, 64, 14, 14, 64, 3, 3, 1, 1)))
    assert grouped.match(tvm.s_tir.Schedule(conv)) is None
    assert "group_conv2d" in default_registry().ops()


def test_narrow_or_uneven_groups_are_not_served():
    with pytest.raises(ValueError, match="2 channels"):
        group_layout(64, 64, 32)  # 8x the multiplies
    with pytest.raises(ValueError, match="divide"):
        group_layout(64, 64, 6)
    assert group_layout(440, 440, 55) == (8, 8, 1)
    assert group_layout(1024, 1024, 32) == (16, 16, 2)
