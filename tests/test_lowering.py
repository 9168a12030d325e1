"""Lowering is total: convs no template computes stay in NCHW, with transforms around them, and are listed with why."""
import os
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import tvm
from onnx import TensorProto, helper
from tvm import relax

from autotune.compile import compile_model, schedule_model
from autotune.model import load_onnx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from make_models import GraphBuilder  # noqa: E402


def conv_chain(channels: int, groups: int | None = None, dilation: int = 1, kernel=(3, 3), size: int = 14,
               out: int | None = None) -> onnx.ModelProto:
    """The smallest failing case of real CNNs: 1x1 conv 16 -> C (blocked), ReLU, a conv C -> out (C), 1x1 conv to 32."""
    g = GraphBuilder()
    x = g.op("Relu", [g.conv("input", 16, channels, 1)])
    groups, out = channels if groups is None else groups, out or channels
    w = g.weight((out, channels // groups, *kernel), channels // groups * kernel[0] * kernel[1])
    pads = [dilation * (kernel[0] // 2), dilation * (kernel[1] // 2)] * 2
    x = g.op("Conv", [x, w], kernel_shape=list(kernel), pads=pads, group=groups, dilations=[dilation, dilation])
    x = g.conv(g.op("Relu", [x]), out, 32, 1)
    return g.model("conv_chain", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 16, size, size])],
                   x, [1, 32, size, size])


CASES = {
    "depthwise_72": (conv_chain(72), None),
    "depthwise_88": (conv_chain(88), None),
    "depthwise_96": (conv_chain(96), None),
    **{f"groups_of_{size}": (conv_chain(128, groups=128 // size), "grouped" if size < 4 else None)
       for size in (2, 4, 8, 16, 32, 64)},
    "dilated_2": (conv_chain(64, groups=1, dilation=2), None),
    "dilated_4": (conv_chain(64, groups=1, dilation=4), None),
    "depthwise_dilated_2": (conv_chain(64, dilation=2), None),
    "depthwise_dilated_4_72": (conv_chain(72, dilation=4, size=17), None),
    "kernel_1x3": (conv_chain(64, groups=1, kernel=(1, 3)), "pads differ"),
    "kernel_3x1": (conv_chain(64, groups=1, kernel=(3, 1)), "pads differ"),
    "squeeze_excite_480_20": (conv_chain(480, groups=1, kernel=(1, 1), size=1, out=20), None),
    "squeeze_excite_480_26": (conv_chain(480, groups=1, kernel=(1, 1), size=1, out=26), None),
    "channels_padded_45_to_48": (conv_chain(45, groups=1, kernel=(1, 1), size=7), None),
}


@pytest.mark.parametrize("name", CASES)
def test_every_conv_kind_compiles_and_matches_onnxruntime(name, host):
    model, reason = CASES[name]
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feeds = {"input": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    expected = onnxruntime.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    module = load_onnx(model)
    scheduled, coverage = schedule_model(module, host, tuned=False)
    if reason:
        assert coverage.plain_layout and all(reason in entry for entry in coverage.plain_layout), coverage.plain_layout
        assert any(reason in line for line in coverage.details())
        assert all("(ONNX Conv 'conv_" in entry for entry in coverage.plain_layout), coverage.plain_layout  # the node named
    else:
        assert not coverage.plain_layout
    assert not coverage.failed and not coverage.unscheduled
    vm = relax.VirtualMachine(compile_model(scheduled, host), tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(feeds["input"])).numpy()
    error = np.abs(out - expected).max()
    assert error <= 1e-4 * np.abs(expected).max() and error <= 1e-3, error  # the acceptance bound of real models


def after_blocked_conv(tail, out_shape) -> onnx.ModelProto:
    """A blocked 3x3 conv 16 -> 48, then `tail(g, x)`: ops TVM's layout rules mishandle on blocked inputs."""
    g = GraphBuilder()
    x = g.op("Relu", [g.conv("input", 16, 48, 3)])
    return g.model("tail", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 16, 8, 8])], tail(g, x), out_shape)


TAILS = {  # name: (model, what the coverage says of the conv)
    # ConvertLayout turns the mean into an invalid layout transform: the conv is kept plain, alone
    "channel_mean_keepdims": (after_blocked_conv(lambda g, x: g.op("ReduceMean", [x], axes=[1], keepdims=1), [1, 1, 8, 8]),
                              "lowering failed with it blocked"),
    "conv_transpose": (after_blocked_conv(lambda g, x: g.op("ConvTranspose", [x, g.weight((48, 8, 2, 2), 48)], strides=[2, 2]),
                                          [1, 8, 16, 16]), None),
    # the importer's Max is a reduction over a stack, which ConvertLayout has no rule for
    "max_of_two": (after_blocked_conv(lambda g, x: g.op("Max", [x, g.op("Sigmoid", [x])]), [1, 48, 8, 8]), None),
    "squeeze_negative_axis": (after_blocked_conv(
        lambda g, x: g.op("Squeeze", [g.op("ReduceMax", [x], axes=[2], keepdims=1), g.const(np.array([-2], np.int64))]),
        [1, 48, 8]), None),
}


@pytest.mark.parametrize("name", TAILS)
def test_ops_that_break_layout_conversion_fall_back_per_operator(name, host):
    model, note = TAILS[name]
    feeds = {"input": np.random.default_rng(0).standard_normal([1, 16, 8, 8]).astype(np.float32)}
    expected = onnxruntime.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    scheduled, coverage = schedule_model(load_onnx(model), host, tuned=False)
    if note:
        assert len(coverage.plain_layout) == 1 and note in coverage.plain_layout[0], coverage.plain_layout
    else:  # the conv stays blocked: it is a template's task
        assert not coverage.plain_layout and coverage.fallback
    vm = relax.VirtualMachine(compile_model(scheduled, host), tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(feeds["input"])).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
