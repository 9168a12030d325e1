"""ONNX models: import to Relax, lower to PrimFuncs the templates know, compile for a device.

Lowering converts every conv2d a template serves to a blocked channel layout (NCHW[x]c,
`schedules.conv2d.channel_block`) with `relax.transform.ConvertLayout`, legalizes it with
the template's own compute, folds the weight layout transforms into constants, then
legalizes and fuses the rest as TVM does (`relax.get_pipeline("zero")`). Layout
transforms remain only where the graph enters and leaves the blocked layout. The 3x3
convolutions named in `winograd_convs` are computed by Winograd's algorithm instead, their
kernels transformed once, at compile time, with the rest of the constants.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Collection, Mapping, Sequence

import onnx
import tvm
from tvm import relax
from tvm.relax import dpl
from tvm.relax.frontend.onnx import from_onnx

from autotune.onnx_fold import fold_constants
from schedules import Workload
from schedules.conv2d import channel_block, conv2d_nchwc
from schedules.depthwise import depthwise_nchwc
from schedules.winograd import Conv2dWinogradCPU, conv2d_winograd_nchwc, winograd_kernel


class ModelError(ValueError):
    """The model file or its input shapes cannot be used (a user mistake, said in one line)."""


def read_model(source: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    """The ONNX model in a file, checked with onnx's checker (ModelError: one line on why not)."""
    if isinstance(source, onnx.ModelProto):
        model = source
    else:
        try:
            model = onnx.load(os.fspath(source))
        except FileNotFoundError:
            raise ModelError(f"no such file: {os.fspath(source)!r}") from None
        except Exception:  # noqa: BLE001 - protobuf's decode errors have no common base
            raise ModelError(f"{os.fspath(source)!r} is not an ONNX model") from None
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise ModelError(f"invalid ONNX model: {str(error).strip().splitlines()[0]}") from None
    return model


def resolve_shapes(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, list[int]]:
    """Every input's shape: from the model, or from `shapes` (needed for symbolic dimensions)."""
    inputs = input_shapes(model)
    shapes = {name: list(dims) for name, dims in (shapes or {}).items()}
    unknown = sorted(set(shapes) - set(inputs))
    if unknown:
        raise ModelError(f"unknown input {unknown[0]!r}; the model's inputs: {', '.join(inputs)}")
    for name, dims in inputs.items():
        if name not in shapes and any(not isinstance(d, int) for d in dims):
            raise ModelError(f"input {name!r} has a dimension without size {dims}; give it with --input-shape {name}:...")
    return {name: shapes.get(name, dims) for name, dims in inputs.items()}


def load_onnx(source: str | os.PathLike | onnx.ModelProto, shapes: Mapping[str, Sequence[int]] | None = None,
              winograd_convs: Collection[Workload] = ()) -> tvm.IRModule:
    """The model as a Relax module of fused PrimFuncs (see `lower`, also for `winograd_convs`).

    `shapes` gives input shapes by name; needed for inputs with symbolic dimensions.
    """
    return lower(import_onnx(source, shapes), winograd_convs)


def import_onnx(source: str | os.PathLike | onnx.ModelProto, shapes: Mapping[str, Sequence[int]] | None = None) -> tvm.IRModule:
    """The model as imported to Relax, before lowering."""
    model = read_model(source)
    shapes = resolve_shapes(model, shapes)
    # Shapes that exporters compute in the graph (Shape -> Gather -> Concat -> Reshape),
    # folded for these input shapes: TVM's importer rejects many of them.
    return from_onnx(fold_constants(model, shapes), shape_dict=shapes)


def input_dtypes(model: onnx.ModelProto) -> dict[str, str]:
    """The numpy dtype of each graph input that is not an initializer."""
    initializers = {init.name for init in model.graph.initializer}
    return {value.name: str(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
            for value in model.graph.input if value.name not in initializers}


def input_shapes(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    """Graph inputs that are not initializers, with their dims (names for symbolic ones)."""
    initializers = {init.name for init in model.graph.initializer}
    shapes = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    return shapes


def lower(module: tvm.IRModule, winograd_convs: Collection[Workload] = ()) -> tvm.IRModule:
    """Relax from the ONNX importer -> fused PrimFuncs, convolutions in blocked layouts.

    `winograd_convs`: the "conv2d" workloads (as `extract_tasks` names them) to compute
    by Winograd's algorithm (`schedules.winograd`); ValueError for one it cannot compute.
    """
    for workload in winograd_convs:
        if not Conv2dWinogradCPU().serves(workload):
            raise ValueError(f"Winograd's algorithm cannot compute {workload} (a 3x3, stride-1 conv2d with an even output)")
    legalize_conv2d = functools.partial(_legalize_conv2d, winograd=frozenset(winograd_convs))
    module = _clips_as_relax_ops(module)
    plan = _LayoutPlan()
    module = tvm.transform.Sequential([
        relax.transform.ConvertLayout({}, layout_cb=plan),
        relax.transform.Normalize(),
        relax.transform.FastMathTransform(),  # erf, exp, tanh as polynomials LLVM vectorizes
        relax.transform.LegalizeOps(customize_legalize_map={"relax.nn.conv2d": legalize_conv2d}),
        relax.transform.FoldConstant(),
    ])(module)
    module = relax.get_pipeline("zero")(module)
    module = relax.transform.AttachAttrLayoutFreeBuffers()(module)  # which arguments are weights
    return module.with_attr(PLAIN_LAYOUT_ATTR, list(plan.plain))


def _clips_as_relax_ops(module: tvm.IRModule) -> tvm.IRModule:
    """ONNX Clip (ReLU6) as Relax `minimum(maximum(x, lo), hi)` with scalar constants.

    The importer writes Clip as calls of its own TIR functions, which ConvertLayout cannot
    see through (nor through `clip`): it would send every activation back to NCHW and
    forth again around each one. Relax's binary ops with a scalar keep the blocked
    layout, and fuse into the convolution's epilogue.
    """
    module = relax.transform.FoldConstant()(module)  # the importer's NaN guards on lo and hi
    x, lo, hi, low_func, high_func = dpl.wildcard(), dpl.is_const(), dpl.is_const(), dpl.is_gv(), dpl.is_gv()
    lower_bound = dpl.is_op("relax.call_tir")(low_func, dpl.is_tuple([x, lo]))
    pattern = dpl.is_op("relax.call_tir")(high_func, dpl.is_tuple([lower_bound, hi]))

    def rewrite(expr: relax.Expr, matches: dict) -> relax.Expr:
        low, high = (matches[c].value.numpy() for c in (lo, hi))
        names = matches[low_func].name_hint, matches[high_func].name_hint
        if low.size != 1 or high.size != 1 or not (names[0].startswith("maximum") and names[1].startswith("minimum")):
            return expr
        dtype = str(low.dtype)
        return relax.op.minimum(relax.op.maximum(matches[x], relax.const(low.item(), dtype)), relax.const(high.item(), dtype))

    main = module.get_global_var("main")
    module[main] = dpl.rewrite_call(pattern, rewrite, module[main])
    return relax.transform.DeadCodeElimination()(module)


#: Module attribute listing the operators the lowering left in the plain layout, with why.
PLAIN_LAYOUT_ATTR = "autotune.plain_layout"


class _LayoutPlan:
    """ConvertLayout's callback: blocked layouts for the convs a template computes, NCHW for the rest.

    Every conv2d gets an explicit answer: one left without (ConvertLayout's default) would
    take its input's blocked layout and fail on a kernel layout it cannot match ("Layouts
    must have the same size"). The convs kept in NCHW are noted with the reason.
    """

    def __init__(self):
        self.plain: dict[str, None] = {}  # "Conv ...: reason", in graph order, each once

    def __call__(self, call: relax.Call) -> dict[str, list[str]]:
        if call.op.name != "relax.nn.conv2d":
            return {}
        reason = _plain_layout_reason(call)
        if reason is not None:
            self.plain[f"{describe_conv2d(call)}: {reason}"] = None
            return {"relax.nn.conv2d": ["NCHW", "OIHW"]}
        channels, out_channels = _shape(call.args[0])[1], _shape(call.args[1])[0]
        cb, kb = channel_block(channels), channel_block(out_channels)
        if call.attrs.groups == 1:
            return {"relax.nn.conv2d": [f"NCHW{cb}c", f"OIHW{cb}i{kb}o", f"NCHW{kb}c"]}
        return {"relax.nn.conv2d": [f"NCHW{cb}c", f"OIHW{cb}o"]}  # depthwise


def describe_conv2d(call: relax.Call) -> str:
    """The ONNX Conv behind a conv2d call, by its shapes and attributes (the importer keeps no node names)."""
    attrs = call.attrs
    _, channels, h, w = _shape(call.args[0])  # as imported: NCHW, OIHW
    out_channels, _, r, s = _shape(call.args[1])
    text = f"Conv {channels}->{out_channels} {r}x{s} at {h}x{w}"
    extras = {"groups": int(attrs.groups), "strides": _ints(attrs.strides), "dilations": _ints(attrs.dilation),
              "pads": _ints(attrs.padding)}
    return text + "".join(f" {k}={v}" for k, v in extras.items() if v not in (1, [1, 1], [0, 0, 0, 0]))


def _plain_layout_reason(call: relax.Call) -> str | None:
    """Why no blocked template computes this conv2d, or None when one does."""
    attrs = call.attrs
    channels, out_channels = _shape(call.args[0])[1], _shape(call.args[1])[0]
    if attrs.data_layout != "NCHW" or attrs.kernel_layout != "OIHW":
        return f"layout {attrs.data_layout}/{attrs.kernel_layout}"
    if str(attrs.out_dtype) not in ("None", "", "float32") or str(call.args[0].ty.dtype) != "float32":
        return "not float32"
    if any(int(d) != 1 for d in attrs.dilation):
        return "dilated"
    if len(set(_ints(attrs.strides))) != 1 or len(set(_ints(attrs.padding))) != 1:
        return "strides or pads differ between sides"
    if attrs.groups == 1:
        unblockable = [c for c in (channels, out_channels) if channel_block(c) is None]
        return f"{unblockable[0]} channels fit no channel block" if unblockable else None
    if not attrs.groups == channels == out_channels:
        return "grouped (not depthwise)"
    return None if channels % 16 == 0 else f"depthwise on {channels} channels (not a multiple of 16)"


def _legalize_conv2d(bb: relax.BlockBuilder, call: relax.Call, winograd: frozenset[Workload]) -> relax.Expr:
    """Blocked conv2d with the templates' computes; TVM's own legalization for the rest."""
    attrs = call.attrs
    if attrs.data_layout == "NCHW":
        return tvm.ir.Op.get("relax.nn.conv2d").get_attr("FLegalize")(bb, call)
    stride, pad = int(attrs.strides[0]), int(attrs.padding[0])
    if attrs.groups == 1 and _conv2d_workload(call) in winograd:
        kernel = bb.emit_te(winograd_kernel, call.args[1], primfunc_name_hint="winograd_kernel")
        return bb.call_te(conv2d_winograd_nchwc, call.args[0], kernel, pad, primfunc_name_hint="conv2d_winograd")
    compute = conv2d_nchwc if attrs.groups == 1 else depthwise_nchwc
    return bb.call_te(compute, call.args[0], call.args[1], stride, pad, primfunc_name_hint="conv2d")


def _conv2d_workload(call: relax.Call) -> Workload:
    """The `schedules.conv2d` workload of a blocked conv2d call."""
    n, cblocks, h, w, cb = _shape(call.args[0])
    kblocks, _, r, s, _, kb = _shape(call.args[1])
    return Workload.make("conv2d", N=n, C=cblocks * cb, H=h, W=w, K=kblocks * kb, R=r, S=s,
                         stride=int(call.attrs.strides[0]), pad=int(call.attrs.padding[0]), dtype=str(call.ty.dtype))


def _shape(expr: relax.Expr) -> list[int]:
    return [int(d) for d in expr.ty.shape.values]


def _ints(values) -> list[int]:
    return [int(v) for v in values]
