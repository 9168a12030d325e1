"""conv2d (NCHW16c) template against numpy, for the default and random configs, on real and odd shapes."""
import random

import numpy as np
import pytest
import tvm

from numpy_check import check_template
from schedules.conv2d import Conv2dCPU

SHAPES = {
    "resnet18-3x3": (1, 64, 56, 56, 64, 3, 3, 1, 1),
    "resnet18-stem-7x7-s2": (1, 3, 224, 224, 64, 7, 7, 2, 3),
    "resnet18-1x1-s2": (1, 64, 56, 56, 128, 1, 1, 2, 0),
    "odd-13x11-s2": (1, 32, 13, 11, 48, 3, 3, 2, 1),
    "one-input-channel-1xN": (2, 1, 5, 17, 16, 1, 5, 1, 2),
    "deeplab-dilated-2": (1, 64, 28, 28, 64, 3, 3, 1, 2, 2),
    "dilated-4-odd-s2": (1, 32, 19, 17, 48, 3, 3, 2, 4, 4),
    "aspp-dilated-6-no-pad": (1, 16, 20, 20, 32, 3, 3, 1, 0, 6),
    "squeeze-excite-1x1-on-1x1": (1, 240, 1, 1, 64, 1, 1, 1, 0),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_default_and_random_configs_match_numpy(shape, host):
    template = Conv2dCPU()
    wl = template.workload(shape, "float32")
    space = template.space(wl, host)
    for config in [template.default_config(wl, host, space)] + space.sample(random.Random(2), 2):
        check_template(template, wl, host, config, atol=1e-3)


@pytest.mark.parametrize("shape, parallel", [(SHAPES["squeeze-excite-1x1-on-1x1"], False),
                                             (SHAPES["one-input-channel-1xN"], False), (SHAPES["resnet18-3x3"], True)])
def test_only_convs_worth_waking_the_thread_pool_for_run_in_parallel(shape, parallel, host):
    """A squeeze-excite conv (15k multiply-adds) runs on the calling thread, ResNet's 3x3 conv on the pool."""
    template = Conv2dCPU()
    wl = template.workload(shape, "float32")
    script = template.schedule(wl, template.default_config(wl, host), host).script()
    assert ("T.parallel" in script) == parallel


def test_reference_is_a_real_convolution():
    """The numpy reference against a direct loop on a tiny case (the reference must be right too)."""
    template = Conv2dCPU()
    wl = template.workload((1, 2, 4, 5, 16, 3, 3, 2, 1), "float32")
    data, kernel = template.make_inputs(wl, np.random.default_rng(0))
    out = template.reference(wl, [data, kernel])
    x = np.pad(data[0, 0].transpose(2, 0, 1), ((0, 0), (1, 1), (1, 1)))  # C, H, W
    w = kernel[0, 0].transpose(3, 2, 0, 1)  # K, C, R, S
    for k, y, xo in [(0, 0, 0), (5, 1, 2), (15, 1, 1)]:
        direct = (x[:, 2 * y: 2 * y + 3, 2 * xo: 2 * xo + 3] * w[k]).sum()
        assert out[0, 0, y, xo, k] == pytest.approx(direct, rel=1e-5, abs=1e-5)


def test_dilation_is_a_workload_argument_only_when_not_1():
    """Undilated keys stay those of older logs and packs; the matcher reads the dilation back from the TIR."""
    template = Conv2dCPU()
    assert template.workload((1, 64, 56, 56, 64, 3, 3, 1, 1)) == template.workload((1, 64, 56, 56, 64, 3, 3, 1, 1, 1))
    assert "dilation" not in template.workload((1, 64, 56, 56, 64, 3, 3, 1, 1)).key
    for shape in [(1, 64, 28, 28, 64, 3, 3, 1, 2, 2), (1, 32, 19, 17, 48, 3, 3, 2, 4, 4), (1, 16, 14, 14, 32, 1, 1, 2, 0)]:
        wl = template.workload(shape)
        assert template.match(tvm.s_tir.Schedule(template.compute(wl))) == wl


def test_dilated_reference_is_a_real_convolution():
    template = Conv2dCPU()
    wl = template.workload((1, 2, 9, 8, 16, 3, 3, 1, 2, 2), "float32")
    data, kernel = template.make_inputs(wl, np.random.default_rng(0))
    out = template.reference(wl, [data, kernel])
    x = np.pad(data[0, 0].transpose(2, 0, 1), ((0, 0), (2, 2), (2, 2)))  # C, H, W
    w = kernel[0, 0].transpose(3, 2, 0, 1)  # K, C, R, S
    for k, y, xo in [(0, 0, 0), (5, 3, 2), (15, 8, 7)]:
        direct = (x[:, y: y + 5: 2, xo: xo + 5: 2] * w[k]).sum()
        assert out[0, 0, y, xo, k] == pytest.approx(direct, rel=1e-5, abs=1e-5)
