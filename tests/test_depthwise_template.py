"""Depthwise conv2d (NCHW[x]c) template against numpy: default and random configs, model-shaped functions, matching."""
import json
import os
import random

import numpy as np
import pytest
import tvm
from tvm import s_tir, te, tirx, topi

from schedules.conv2d import channel_block
from schedules.depthwise import DepthwiseConv2dCPU, depthwise_nchwc
from schedules.template import Workload

# N, C, H, W, R, S, stride, pad
MOBILENET_V2 = {f"mbv2-{c}x{h}-s{stride}": (1, c, h, h, 3, 3, stride, 1) for c, h, stride in [
    (32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1),
    (192, 28, 2), (384, 14, 1), (576, 14, 1), (576, 14, 2), (960, 7, 1)]}
ODD = {
    "odd-13x13-s2": (1, 16, 13, 13, 3, 3, 2, 1),
    "one-row-1x9": (2, 32, 1, 9, 3, 3, 1, 1),
    "5x5-pad2": (1, 32, 20, 17, 5, 5, 1, 2),
    "no-pad-s2": (1, 16, 10, 9, 3, 3, 2, 0),
}
# Channel counts 16 does not divide: NCHW8c, as the neighbouring convs have them (MobileNetV3, ShuffleNet, MnasNet)
BLOCK_8 = {
    "mbv3-72x56-s2": (1, 72, 56, 56, 3, 3, 2, 1),
    "mbv3-72x28-5x5-s2": (1, 72, 28, 28, 5, 5, 2, 2),
    "mbv3-88x28": (1, 88, 28, 28, 3, 3, 1, 1),
    "mbv3-120x14-5x5": (1, 120, 14, 14, 5, 5, 1, 2),
    "shufflenet-24x28-s2": (1, 24, 28, 28, 3, 3, 2, 1),
    "40x15-7x7": (1, 40, 15, 15, 7, 7, 1, 3),
    "8x9-7x7-s2": (2, 8, 9, 11, 7, 7, 2, 3),
}
# N, C, H, W, R, S, stride, pad, dilation (DeepLab's atrous depthwise convs)
DILATED = {
    "d2-64x14": (1, 64, 14, 14, 3, 3, 1, 2, 2),
    "d4-32x13": (1, 32, 13, 13, 3, 3, 1, 4, 4),
    "d2-72x12-s2": (1, 72, 12, 12, 3, 3, 2, 2, 2),
    "d3-24x11-5x5-no-pad": (1, 24, 11, 11, 5, 5, 1, 0, 2),
    "d2-16x16-7x7": (1, 16, 16, 16, 7, 7, 1, 6, 2),
}
NEW = {**BLOCK_8, **DILATED}


def run(func, inputs, out_shape, device):
    """The output of `func` compiled for `device`, its buffer starting as NaN."""
    executable = tvm.compile(func, target=device.tvm_target)
    args = [tvm.runtime.tensor(x) for x in inputs] + [tvm.runtime.tensor(np.full(out_shape, np.nan, "float32"))]
    executable["main"](*args)
    return args[-1].numpy()


@pytest.mark.parametrize("shape", [*MOBILENET_V2.values(), *ODD.values(), *NEW.values()],
                         ids=[*MOBILENET_V2, *ODD, *NEW])
def test_default_and_random_configs_match_numpy(shape, host):
    template = DepthwiseConv2dCPU()
    wl = template.workload(shape, "float32")
    space = template.space(wl, host)
    inputs = template.make_inputs(wl, np.random.default_rng(1))
    expected = template.reference(wl, inputs)
    configs = [template.default_config(wl, host, space)] + space.sample(random.Random(sum(shape)), 3)
    for config in configs:
        actual = run(template.schedule(wl, config, host), inputs, expected.shape, host)
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4, err_msg=str(config))


def test_reference_is_a_real_depthwise_convolution():
    """The numpy reference against a direct loop on a tiny case (the reference must be right too)."""
    template = DepthwiseConv2dCPU()
    wl = template.workload((1, 32, 5, 4, 3, 3, 2, 1), "float32")
    data, kernel = template.make_inputs(wl, np.random.default_rng(0))
    out = template.reference(wl, [data, kernel])
    assert out.shape == (1, 2, 3, 2, 16)
    x = np.pad(data[0], ((0, 0), (1, 1), (1, 1), (0, 0)))  # C/16, H, W, 16
    for c, y, xo, ci in [(0, 0, 0, 0), (1, 2, 1, 7), (1, 1, 0, 15)]:
        direct = (x[c, 2 * y: 2 * y + 3, 2 * xo: 2 * xo + 3, ci] * kernel[c, 0, :, :, ci]).sum()
        assert out[0, c, y, xo, ci] == pytest.approx(direct, rel=1e-5, abs=1e-5)


def test_reference_of_a_dilated_8_channel_block():
    """Dilation 2 on NCHW8c: taps two pixels apart, against a direct loop."""
    template = DepthwiseConv2dCPU()
    wl = template.workload((1, 24, 7, 6, 3, 3, 1, 2, 2), "float32")
    data, kernel = template.make_inputs(wl, np.random.default_rng(0))
    assert data.shape == (1, 3, 7, 6, 8) and kernel.shape == (3, 1, 3, 3, 8)
    out = template.reference(wl, [data, kernel])
    assert out.shape == (1, 3, 7, 6, 8)
    x = np.pad(data[0], ((0, 0), (2, 2), (2, 2), (0, 0)))
    for c, y, xo, ci in [(0, 0, 0, 0), (2, 3, 5, 7), (1, 6, 2, 3)]:
        direct = (x[c, y: y + 5: 2, xo: xo + 5: 2, ci] * kernel[c, 0, :, :, ci]).sum()
        assert out[0, c, y, xo, ci] == pytest.approx(direct, rel=1e-5, abs=1e-5)


def fused_depthwise(n, c, h, w, k, stride, pad, clip=True, dilation=1, silu=False):
    """A model's fused PrimFunc as the lowering makes it: pad, depthwise, bias add, ReLU6 as max/min
    (or SiLU with TVM's fast exp, as EfficientNet's) (int64 shapes)."""
    i64 = lambda *dims: [tirx.IntImm("int64", d) for d in dims]  # noqa: E731
    cb = channel_block(c)
    data = te.placeholder(i64(n, c // cb, h, w, cb), "float32", name="x")
    kernel = te.placeholder(i64(c // cb, 1, k, k, cb), "float32", name="w")
    bias = te.placeholder(i64(1, c // cb, 1, 1, cb), "float32", name="b")
    conv = depthwise_nchwc(data, kernel, stride, pad, dilation)
    zero = tirx.IntImm("int64", 0)
    out = te.compute(conv.shape, lambda b, co, y, x, ci: conv[b, co, y, x, ci] + bias[zero, co, zero, zero, ci],
                     name="T_add")
    if clip:
        low = te.compute(out.shape, lambda *i: tirx.max(out(*i), tirx.const(0, "float32")), name="T_maximum")
        out = te.compute(out.shape, lambda *i: tirx.min(low(*i), tirx.const(6, "float32")), name="T_minimum")
    if silu:
        gate = topi.fast_exp(topi.negative(out))
        biased = out
        out = te.compute(out.shape, lambda *i: biased(*i) / (tirx.const(1, "float32") + gate(*i)), name="T_multiply")
    return te.create_prim_func([data, kernel, bias, out])


FUSED = {
    "3x3-s1-relu6": (1, 32, 28, 28, 3, 1, 1, True),
    "3x3-s2-odd-bias-only": (1, 48, 15, 15, 3, 2, 1, False),
    "5x5-s1-relu6": (1, 16, 9, 11, 5, 1, 2, True),
    "no-pad-relu6": (2, 16, 8, 8, 3, 1, 0, True),
    "72ch-3x3-s2-relu6": (1, 72, 14, 14, 3, 2, 1, True),
    "120ch-5x5-bias-only": (1, 120, 7, 7, 5, 1, 2, False),
    "dilated-2-relu6": (1, 32, 12, 12, 3, 1, 2, True, 2),
    "dilated-4-88ch": (1, 88, 10, 10, 3, 1, 4, False, 4),
}


@pytest.mark.parametrize("args", FUSED.values(), ids=FUSED.keys())
def test_match_and_schedule_a_fused_model_function(args, host):
    n, c, h, w, k, stride, pad, clip, *dilation = args
    func = fused_depthwise(*args)
    template = DepthwiseConv2dCPU()
    wl = template.match(s_tir.Schedule(func))
    assert wl == template.workload((n, c, h, w, k, k, stride, pad, *dilation), "float32")
    rng = np.random.default_rng(3)
    data, kernel = template.make_inputs(wl, rng)
    cb = channel_block(c)
    bias = rng.uniform(-1, 1, (1, c // cb, 1, 1, cb)).astype("float32")
    expected = template.reference(wl, [data, kernel]) + bias
    if clip:
        expected = np.clip(expected, 0, 6)
    unscheduled = run(func, [data, kernel, bias], expected.shape, host)
    np.testing.assert_allclose(unscheduled, expected, rtol=1e-4, atol=1e-4)
    space = template.space(wl, host)
    for config in [template.default_config(wl, host, space)] + space.sample(random.Random(5), 2):
        sch = s_tir.Schedule(func)
        template.apply(sch, wl, config, host)
        blocks = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
        assert not any(name.startswith(("pad", "T_")) for name in blocks), blocks  # pad inlined, epilogue fused
        actual = run(sch.mod["main"], [data, kernel, bias], expected.shape, host)
        np.testing.assert_allclose(actual, unscheduled, rtol=1e-5, atol=1e-5, err_msg=str(config))


def conv2d_nchwc():
    """A dense conv2d in NCHW16c (kernel [K/16, C/16, R, S, 16, 16]): not depthwise."""
    data = te.placeholder((1, 2, 8, 8, 16), name="data")
    kernel = te.placeholder((2, 2, 3, 3, 16, 16), name="kernel")
    padded = te.compute((1, 2, 10, 10, 16), lambda b, c, y, x, i: tirx.if_then_else(
        tirx.all(y >= 1, y < 9, x >= 1, x < 9), data[b, c, y - 1, x - 1, i], tirx.const(0, "float32")), name="pad")
    co, r, s, ci = (te.reduce_axis((0, e), name=nm) for e, nm in ((2, "co"), (3, "r"), (3, "s"), (16, "ci")))
    out = te.compute((1, 2, 8, 8, 16), lambda b, k, y, x, ki: te.sum(
        padded[b, co, y + r, x + s, ci] * kernel[k, co, r, s, ci, ki], axis=[co, r, s, ci]), name="conv2d")
    return te.create_prim_func([data, kernel, out])


def matmul():
    a, b = te.placeholder((64, 32), name="A"), te.placeholder((32, 48), name="B")
    k = te.reduce_axis((0, 32), name="k")
    c = te.compute((64, 48), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="matmul")
    return te.create_prim_func([a, b, c])


def depthwise_nchw():
    """Depthwise conv2d in plain NCHW (4-D): not this template's layout."""
    data, kernel = te.placeholder((1, 16, 8, 8), name="data"), te.placeholder((16, 1, 3, 3), name="kernel")
    r, s = te.reduce_axis((0, 3), name="r"), te.reduce_axis((0, 3), name="s")
    out = te.compute((1, 16, 6, 6), lambda b, c, y, x: te.sum(data[b, c, y + r, x + s] * kernel[c, 0, r, s],
                                                              axis=[r, s]))
    return te.create_prim_func([data, kernel, out])


def two_depthwise():
    """Two depthwise convolutions in one function: no single anchor."""
    data = te.placeholder((1, 1, 8, 8, 16), name="data")
    kernel = te.placeholder((1, 1, 3, 3, 16), name="kernel")
    first = depthwise_nchwc(data, kernel, 1, 0)
    return te.create_prim_func([data, kernel, depthwise_nchwc(first, kernel, 1, 0)])


@pytest.mark.parametrize("make", [conv2d_nchwc, matmul, depthwise_nchw, two_depthwise])
def test_match_rejects_other_functions(make):
    assert DepthwiseConv2dCPU().match(s_tir.Schedule(make())) is None


def test_match_reads_its_own_compute():
    template = DepthwiseConv2dCPU()
    for shape in [(1, 96, 112, 112, 3, 3, 2, 1), (2, 16, 9, 7, 5, 3, 1, 0), *ODD.values(), *NEW.values()]:
        wl = template.workload(shape, "float32")
        assert template.match(s_tir.Schedule(template.compute(wl))) == wl


@pytest.mark.parametrize("shape, message", [
    ((1, 45, 8, 8, 3, 3, 1, 1), "45 channels fit no channel block"),
    ((1, 32, 8, 8, 3, 3, 1, 1, 0), "positive"),
    ((1, 32, 8, 8, 3, 3, 1, 1, 2, 1), "N,C,H,W,R,S,stride,pad"),
    ((1, 32, 4, 4, 3, 3, 1, 1, 3), "larger than the padded input"),
    ((1, 32, 8, 8, 3, 3, 1), "N,C,H,W,R,S,stride,pad"),
    ((1, 32, 8, 8, 3, 3, 0, 1), "positive"),
    ((1, 32, 8, 8, 3, 3, 1, -1), "non-negative"),
    ((1, 32, 2, 2, 5, 5, 1, 1), "larger than the padded input"),
])
def test_malformed_workloads_are_rejected(shape, message):
    with pytest.raises(ValueError, match=message) as error:
        DepthwiseConv2dCPU().workload(shape, "float32")
    assert "\n" not in str(error.value)


def test_default_config_follows_the_rule(host):
    """An 8-wide row on AVX-512 (the divisor of OW nearest 8), two channel blocks on planes of at most 14 x 14."""
    template = DepthwiseConv2dCPU()
    lanes = host.vector_lanes("float32")
    wl = template.workload((1, 32, 112, 112, 3, 3, 1, 1), "float32")
    config = template.default_config(wl, host)
    assert config["tile_ow"][1] == {16: 8, 8: 4, 4: 2}.get(lanes, config["tile_ow"][1])
    assert config["tile_c"] == (2, 1) and config["tile_oh"] == (112, 1)
    small = template.workload((1, 960, 7, 7, 3, 3, 1, 1), "float32")
    if lanes == 16:
        assert template.default_config(small, host)["tile_c"] == (30, 2)


def test_dilation_is_in_the_key_only_when_not_1():
    """Undilated keys are those of older logs and packs; a dilated conv is a workload of its own."""
    template = DepthwiseConv2dCPU()
    plain = template.workload((1, 32, 8, 8, 3, 3, 1, 1), "float32")
    assert template.workload((1, 32, 8, 8, 3, 3, 1, 1, 1), "float32") == plain
    assert plain.key == ('["depthwise_conv2d",{"C":32,"H":8,"N":1,"R":3,"S":3,"W":8,"dtype":"float32",'
                         '"pad":1,"stride":1}]')
    dilated = template.workload((1, 32, 8, 8, 3, 3, 1, 2, 2), "float32")
    assert dict(dilated.args)["dilation"] == 2 and dilated.key != template.workload((1, 32, 8, 8, 3, 3, 1, 2)).key


def test_the_shipped_pack_still_applies(host):
    """Every depthwise config of the host-znver5 pack is the same point of today's space (same index, knobs)."""
    template = DepthwiseConv2dCPU()
    path = os.path.join(os.path.dirname(__file__), "..", "autotune", "packs", "host-znver5.jsonl")
    with open(path) as lines:
        records = [json.loads(line) for line in lines if '"depthwise_conv2d"' in line]
    assert records
    for record in records:
        assert record["template"] == {"name": template.name, "version": template.version}
        wl = Workload.from_json(record["workload"])
        assert template.workload([wl[d] for d in ("N", "C", "H", "W", "R", "S", "stride", "pad")]) == wl
        config = template.space(wl, host).from_json(record["config"])
        assert config.index == record["config"]["index"]


def test_an_8_channel_block_default_config(host):
    """72 channels: nine 8-channel blocks, the same row rule as 16-channel blocks (measured as good as any other)."""
    template = DepthwiseConv2dCPU()
    wl = template.workload((1, 72, 56, 56, 3, 3, 2, 1), "float32")
    config = template.default_config(wl, host)
    assert config["tile_c"] == (9, 1) and config["tile_oh"] == (28, 1) and 28 % config["tile_ow"][1] == 0
