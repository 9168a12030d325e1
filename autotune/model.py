"""ONNX models: import to Relax, lower to PrimFuncs the templates know, compile for a device.

The device says which layout its convolutions take (`Device.conv_layout`). For "NCHWc" (the
CPUs and the GPUs), lowering converts every conv2d a template serves to a blocked channel layout (NCHW[x]c,
`schedules.conv2d.channel_block`) with `relax.transform.ConvertLayout`, legalizes it with
the template's own compute, folds the weight layout transforms into constants, then
legalizes and fuses the rest as TVM does (`relax.get_pipeline("zero")`). Layout
transforms remain only where the graph enters and leaves the blocked layout. The 3x3
convolutions named in `winograd_convs` are computed by Winograd's algorithm instead, their
kernels transformed once, at compile time, with the rest of the constants. For "NCHW",
convolutions keep TVM's layout and legalization, channels are not padded, and there is no
Winograd.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Collection, Mapping, Sequence

import onnx
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

from autotune import graph_rewrites
from autotune.channel_padding import pad_channels
from autotune.layout_plan import PLAIN_LAYOUT_ATTR, LayoutPlan, conv_description
from autotune.onnx_fold import fold_constants, static_shapes
from schedules import Workload
from schedules.conv2d import channel_block, conv2d_nchwc, dilation_arg
from schedules.depthwise import depthwise_nchwc
from schedules.group_conv2d import group_conv2d_nchwc, group_kernel
from schedules.winograd import Conv2dWinogradCPU, conv2d_winograd_nchwc, winograd_kernel


class ModelError(ValueError):
    """The model file or its input shapes cannot be used (a user mistake, said in one line)."""


class LoweringError(RuntimeError):
    """This project's lowering failed on a valid model (a bug to report), said in one line."""


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
              winograd_convs: Collection[Workload] = (), layout: str = "NCHWc") -> tvm.IRModule:
    """The model as a Relax module of fused PrimFuncs (see `lower`, also for `winograd_convs` and `layout`).

    `shapes` gives input shapes by name; needed for inputs with symbolic dimensions.
    """
    return lower(import_onnx(source, shapes), winograd_convs, layout)


def import_onnx(source: str | os.PathLike | onnx.ModelProto, shapes: Mapping[str, Sequence[int]] | None = None) -> tvm.IRModule:
    """The model as imported to Relax, before lowering."""
    model = read_model(source)
    shapes = resolve_shapes(model, shapes)
    # Shapes that exporters compute in the graph (Shape -> Gather -> Concat -> Reshape),
    # folded for these input shapes: TVM's importer rejects many of them.
    model = fold_constants(model, shapes)
    module = from_onnx(model, shape_dict=shapes)
    return module.with_attr(ONNX_NAMES_ATTR, onnx_conv_names(model, shapes))


#: Module attribute of an imported model: conv description -> the ONNX nodes it describes.
ONNX_NAMES_ATTR = "autotune.onnx_conv_names"


def onnx_conv_names(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> dict[str, str]:
    """Each 2-d Conv node's name (or output, for unnamed nodes) by `layout_plan.conv_description`,
    so reports can name the node behind a Relax call (TVM's importer keeps no names)."""
    shapes = static_shapes(model, input_shapes)
    names: dict[str, list[str]] = {}
    for node in model.graph.node:
        data, weight = (shapes.get(name) for name in node.input[:2]) if node.op_type == "Conv" else (None, None)
        if not data or not weight or len(weight) != 4 or len(data) != 4:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue  # its pads are the importer's to compute
        description = conv_description(data[1], weight[0], weight[2:], data[2:], attrs.get("group", 1),
                                       attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1]),
                                       attrs.get("pads", [0, 0, 0, 0]))
        names.setdefault(description, []).append(f"Conv {node.name or node.output[0]!r}")
    return {description: ", ".join(nodes) for description, nodes in names.items()}


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


#: The convolution layouts `lower` knows (`Device.conv_layout`).
CONV_LAYOUTS = ("NCHWc", "NCHW")


def lower(module: tvm.IRModule, winograd_convs: Collection[Workload] = (), layout: str = "NCHWc") -> tvm.IRModule:
    """Relax from the ONNX importer -> fused PrimFuncs, convolutions in the device's layout.

    `winograd_convs`: the "conv2d" workloads (as `extract_tasks` names them) to compute
    by Winograd's algorithm (`schedules.winograd`); ValueError for one it cannot compute.
    `layout`: "NCHWc" blocks channels for the CPU templates, "NCHW" keeps TVM's own.
    """
    if layout not in CONV_LAYOUTS:
        raise ValueError(f"unknown conv layout {layout!r}; known: {', '.join(CONV_LAYOUTS)}")
    if layout == "NCHW":
        return _lower_plain(module, winograd_convs)
    for workload in winograd_convs:
        if not Conv2dWinogradCPU().serves(workload):
            raise ValueError(f"Winograd's algorithm cannot compute {workload} (a 3x3, stride-1 conv2d with an even output)")
    legalize_conv2d = functools.partial(_legalize_conv2d, winograd=frozenset(winograd_convs))
    module = pad_channels(graph_rewrites.before_lowering(module))
    kept_plain: dict[str, str] = {}
    node_names = {str(k): str(v) for k, v in (module.attrs or {}).get(ONNX_NAMES_ATTR, {}).items()}
    while True:  # each round keeps one more conv plain, until TVM's passes accept the plan
        plan = LayoutPlan(kept_plain, node_names=node_names)
        try:
            lowered = _lower_with(module, plan, legalize_conv2d)
            return lowered.with_attr(PLAIN_LAYOUT_ATTR, list(plan.plain))
        except Exception as error:  # noqa: BLE001 - TVM passes raise InternalError, ValueError, TypeError...
            reason = first_line(error)
            culprit = _first_failing_conv(module, plan.blocked, kept_plain, legalize_conv2d)
            if culprit is None:
                break
            kept_plain[culprit] = f"lowering failed with it blocked ({reason})"
    try:  # ConvertLayout fails on this graph whatever the convs' layouts: do without it
        lowered = _lower_with(module, None, legalize_conv2d)
    except Exception as error:  # noqa: BLE001
        raise LoweringError(f"lowering failed: {first_line(error)}") from None
    return lowered.with_attr(PLAIN_LAYOUT_ATTR, [f"every conv: TVM's ConvertLayout fails on this model ({reason})"])


def _lower_plain(module: tvm.IRModule, winograd_convs: Collection[Workload]) -> tvm.IRModule:
    """The lowering without layout conversion or channel padding: TVM's legalization of every conv."""
    if winograd_convs:
        raise ValueError("Winograd's algorithm is computed in the blocked layout only")
    legalize_conv2d = functools.partial(_legalize_conv2d, winograd=frozenset())
    try:
        lowered = _lower_with(graph_rewrites.before_lowering(module), None, legalize_conv2d)
    except Exception as error:  # noqa: BLE001 - TVM passes raise InternalError, ValueError, TypeError...
        raise LoweringError(f"lowering failed: {first_line(error)}") from None
    return lowered.with_attr(PLAIN_LAYOUT_ATTR, [])


def _lower_with(module: tvm.IRModule, plan: LayoutPlan | None, legalize_conv2d) -> tvm.IRModule:
    """The lowering with this layout plan (None: no layout conversion at all)."""
    layouts = [relax.transform.ConvertLayout({}, layout_cb=plan)] if plan is not None else []
    module = tvm.transform.Sequential([*layouts, relax.transform.Normalize()])(module)
    try:  # erf, exp, tanh as polynomials LLVM vectorizes
        module = relax.transform.FastMathTransform()(module)
    except AttributeError:  # it cannot read calls of packed functions (a shape taken from an input): exact math
        pass
    module = tvm.transform.Sequential([
        relax.transform.LegalizeOps(customize_legalize_map={"relax.nn.conv2d": legalize_conv2d}),
        relax.transform.FoldConstant(),
    ])(module)
    module = relax.get_pipeline("zero")(module)
    return relax.transform.AttachAttrLayoutFreeBuffers()(module)  # which arguments are weights


def _first_failing_conv(module: tvm.IRModule, blocked: list[str], kept_plain: dict[str, str], legalize_conv2d) -> str | None:
    """The conv whose blocked layout breaks a TVM pass (ConvertLayout's rules for some ops
    mishandle blocked inputs: a channel mean with keepdims, say): bisection over the convs
    in graph order, blocking only the first n. None when it fails with none blocked."""
    def fails(n: int) -> bool:
        try:
            _lower_with(module, LayoutPlan(kept_plain, blocked[:n]), legalize_conv2d)
        except Exception:  # noqa: BLE001
            return True
        return False

    if fails(0):
        return None
    passing, failing = 0, len(blocked)
    while failing - passing > 1:
        middle = (passing + failing) // 2
        passing, failing = (passing, middle) if fails(middle) else (middle, failing)
    return blocked[failing - 1]


def _legalize_conv2d(bb: relax.BlockBuilder, call: relax.Call, winograd: frozenset[Workload]) -> relax.Expr:
    """Blocked conv2d with the templates' computes; TVM's own legalization for the rest."""
    attrs = call.attrs
    if attrs.data_layout == "NCHW":
        return tvm.ir.Op.get("relax.nn.conv2d").get_attr("FLegalize")(bb, call)
    stride, pad, dilation, groups = int(attrs.strides[0]), int(attrs.padding[0]), int(attrs.dilation[0]), int(attrs.groups)
    if groups == 1 and _conv2d_workload(call) in winograd:
        kernel = bb.emit_te(winograd_kernel, call.args[1], primfunc_name_hint="winograd_kernel")
        return bb.call_te(conv2d_winograd_nchwc, call.args[0], kernel, pad, primfunc_name_hint="conv2d_winograd")
    if groups == 1:
        return bb.call_te(conv2d_nchwc, call.args[0], call.args[1], stride, pad, dilation, primfunc_name_hint="conv2d")
    if attrs.kernel_layout == "OIHW":  # grouped, not depthwise: its kernel laid out here, folded with the constants
        cb, kb = _shape(call.args[0])[4], _shape(call)[4]
        kernel = bb.emit_te(group_kernel, call.args[1], groups, cb, kb, primfunc_name_hint="group_kernel")
        return bb.call_te(group_conv2d_nchwc, call.args[0], kernel, stride, pad, groups, dilation,
                          primfunc_name_hint="group_conv2d")
    return bb.call_te(depthwise_nchwc, call.args[0], call.args[1], stride, pad, dilation, primfunc_name_hint="conv2d")


def _conv2d_workload(call: relax.Call) -> Workload:
    """The `schedules.conv2d` workload of a blocked conv2d call."""
    n, cblocks, h, w, cb = _shape(call.args[0])
    kblocks, _, r, s, _, kb = _shape(call.args[1])
    return Workload.make("conv2d", N=n, C=cblocks * cb, H=h, W=w, K=kblocks * kb, R=r, S=s,
                         stride=int(call.attrs.strides[0]), pad=int(call.attrs.padding[0]), dtype=str(call.ty.dtype),
                         **dilation_arg(int(call.attrs.dilation[0])))


def _shape(expr: relax.Expr) -> list[int]:
    return [int(d) for d in expr.ty.shape.values]


def first_line(error: BaseException) -> str:
    """The message of an error in one line: TVM's errors carry their C++ traceback and a blank line first."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:200]
