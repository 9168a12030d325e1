"""Which convolutions of a model run in a blocked channel layout, and why the others do not.

`relax.transform.ConvertLayout` asks a `LayoutPlan` for each call's layouts. A conv2d that
a template computes gets NCHW[x]c (`schedules.conv2d.channel_block`); every other conv2d,
and every other convolution-like op, gets its plain layout explicitly, with transforms
around it: one left without an answer would take its input's blocked layout and fail on a
kernel layout it cannot match ("Layouts must have the same size").
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from tvm import relax

from schedules.conv2d import channel_block
from schedules.group_conv2d import group_layout

#: Module attribute listing the convs the lowering left in the plain layout, with why.
PLAIN_LAYOUT_ATTR = "autotune.plain_layout"


class LayoutPlan:
    """ConvertLayout's `layout_cb`: records the convs it blocks, and those it keeps plain with why.

    `kept_plain` maps conv descriptions to a reason to keep them plain whatever a template
    could do; `allowed`, when given, lists the only convs that may be blocked; `node_names`
    names the ONNX nodes of each description, for the report.
    """

    def __init__(self, kept_plain: Mapping[str, str] | None = None, allowed: Sequence[str] | None = None,
                 node_names: Mapping[str, str] | None = None):
        self.kept_plain = dict(kept_plain or {})
        self.node_names = dict(node_names or {})  # description -> the ONNX nodes it describes
        self.allowed = None if allowed is None else set(allowed)
        self.blocked: list[str] = []  # descriptions, in graph order, each once
        self.plain: dict[str, None] = {}  # "Conv ...: reason", in graph order, each once

    def __call__(self, call: relax.Call) -> dict[str, list[str]]:
        name = call.op.name
        if name != "relax.nn.conv2d":  # conv2d_transpose, conv1d, conv3d: as they are
            attrs = call.attrs
            return {name: [attrs.data_layout, attrs.kernel_layout]} if hasattr(attrs, "kernel_layout") else {}
        description = describe_conv2d(call)
        reason = self.kept_plain.get(description) or plain_layout_reason(call)
        if reason is None and self.allowed is not None and description not in self.allowed:
            reason = "not blocked in this attempt"
        if reason is not None:
            named = f" (ONNX {self.node_names[description]})" if description in self.node_names else ""
            self.plain[f"{description}{named}: {reason}"] = None
            return {name: ["NCHW", "OIHW"]}
        if description not in self.blocked:
            self.blocked.append(description)
        return {name: blocked_layouts(call)}


def blocked_layouts(call: relax.Call) -> list[str]:
    """[data, kernel(, output)] layouts of a conv2d that a blocked template computes."""
    channels, out_channels = _shape(call.args[0])[1], _shape(call.args[1])[0]
    if call.attrs.groups == 1:
        cb, kb = channel_block(channels), channel_block(out_channels)
        return [f"NCHW{cb}c", f"OIHW{cb}i{kb}o", f"NCHW{kb}c"]
    if call.attrs.groups != channels or channels != out_channels:  # grouped: the legalization lays out its kernel
        return [f"NCHW{channel_block(channels)}c", "OIHW", f"NCHW{channel_block(out_channels)}c"]
    cb = channel_block(channels)
    return [f"NCHW{cb}c", f"OIHW{cb}o"]  # depthwise


def describe_conv2d(call: relax.Call) -> str:
    """The ONNX Conv behind a conv2d call, by its shapes and attributes (the importer keeps no node names)."""
    attrs = call.attrs
    _, channels, h, w = _shape(call.args[0])  # as imported: NCHW, OIHW
    out_channels, _, r, s = _shape(call.args[1])
    return conv_description(channels, out_channels, (r, s), (h, w), int(attrs.groups), _ints(attrs.strides),
                            _ints(attrs.dilation), _ints(attrs.padding))


def conv_description(channels: int, out_channels: int, kernel: Sequence[int], size: Sequence[int], groups: int,
                     strides: Sequence[int], dilations: Sequence[int], pads: Sequence[int]) -> str:
    """"Conv 72->72 3x3 at 14x14 groups=72 pads=[1, 1, 1, 1]": one text for the Relax call and the ONNX node."""
    text = f"Conv {channels}->{out_channels} {kernel[0]}x{kernel[1]} at {size[0]}x{size[1]}"
    extras = {"groups": groups, "strides": list(strides), "dilations": list(dilations), "pads": list(pads)}
    return text + "".join(f" {k}={v}" for k, v in extras.items() if v not in (1, [1, 1], [0, 0, 0, 0]))


def plain_layout_reason(call: relax.Call) -> str | None:
    """Why no blocked template computes this conv2d, or None when one does."""
    attrs = call.attrs
    if attrs.data_layout != "NCHW" or attrs.kernel_layout != "OIHW":
        return f"layout {attrs.data_layout}/{attrs.kernel_layout}"
    if str(attrs.out_dtype) not in ("None", "", "float32") or str(call.args[0].ty.dtype) != "float32":
        return "not float32"
    if len(set(_ints(attrs.strides))) != 1 or len(set(_ints(attrs.padding))) != 1:
        return "strides or pads differ between sides"
    channels, out_channels = _shape(call.args[0])[1], _shape(call.args[1])[0]
    if attrs.groups == 1:
        return _conv2d_reason(call, channels, out_channels)
    if attrs.groups == channels == out_channels:
        return _depthwise_reason(call, channels)
    return _group_conv2d_reason(call, channels, out_channels)


def _conv2d_reason(call: relax.Call, channels: int, out_channels: int) -> str | None:
    if len(set(_ints(call.attrs.dilation))) != 1:
        return "dilations differ between sides"
    unblockable = [c for c in (channels, out_channels) if channel_block(c) is None]
    return f"{unblockable[0]} channels fit no channel block" if unblockable else None


def _group_conv2d_reason(call: relax.Call, channels: int, out_channels: int) -> str | None:
    """None when `schedules.group_conv2d` computes this grouped (not depthwise) conv."""
    if len(set(_ints(call.attrs.dilation))) != 1:
        return "grouped, dilations differ between sides"
    try:
        group_layout(channels, out_channels, int(call.attrs.groups))
    except ValueError as error:
        return f"grouped (not depthwise): {error}"
    return None


def _depthwise_reason(call: relax.Call, channels: int) -> str | None:
    """`schedules.depthwise` takes any channel block (16, 8, or all of few channels) and equal dilations."""
    if len(set(_ints(call.attrs.dilation))) != 1:
        return "dilations differ between sides"
    return None if channel_block(channels) is not None else f"depthwise on {channels} channels (fit no channel block)"


def _shape(expr: relax.Expr) -> list[int]:
    return [int(d) for d in expr.ty.shape.values]


def _ints(values) -> list[int]:
    return [int(v) for v in values]
