"""Rewrites of the imported Relax graph into forms the lowering and the templates handle well.

Each keeps the graph's meaning; `before_lowering` runs them all, in order.
"""
from __future__ import annotations

import math

import tvm
import tvm_ffi
from tvm import relax
from tvm.relax import dpl


def before_lowering(module: tvm.IRModule) -> tvm.IRModule:
    """The imported module with every rewrite of this file applied."""
    return matmuls_in_two_dims(sigmoids_by_exp(ops_convert_layout_handles(clips_as_relax_ops(module))))


def ops_convert_layout_handles(module: tvm.IRModule) -> tvm.IRModule:
    """The importer's forms that TVM's ConvertLayout fails on, in equivalent forms it handles.

    - squeeze with negative axes (ConvertLayout runs out of memory): the same axes counted
      from the front;
    - ONNX Max/Min/Sum/Mean of several inputs, imported as a reduction over their stack
      (ConvertLayout has no layout rule for stack): a chain of binary ops, which also
      fuse into the producers' epilogues.
    """
    operand, tensors = dpl.wildcard(), dpl.wildcard()
    squeeze = dpl.is_op("relax.squeeze")(operand)
    stack = dpl.is_op("relax.stack")(tensors)
    reduce = dpl.is_op("relax.max")(stack) | dpl.is_op("relax.min")(stack) | dpl.is_op("relax.sum")(stack) | dpl.is_op("relax.mean")(stack)
    binary = {"relax.max": relax.op.maximum, "relax.min": relax.op.minimum, "relax.sum": relax.op.add, "relax.mean": relax.op.add}

    def rewrite_squeeze(call: relax.Call, matches: dict) -> relax.Expr:
        axes = call.attrs.axis
        if axes is None or all(int(a) >= 0 for a in axes):
            return call
        ndim = len(matches[operand].ty.shape.values)
        return relax.op.squeeze(matches[operand], [int(a) % ndim for a in axes])

    def rewrite_reduce(call: relax.Call, matches: dict) -> relax.Expr:
        items, stacked = matches[tensors], matches[stack]
        if (not isinstance(items, relax.Tuple) or int(stacked.attrs.axis) != 0 or call.attrs.keepdims
                or [int(a) for a in call.attrs.axis or []] != [0]):
            return call
        result = items.fields[0]
        for item in items.fields[1:]:
            result = binary[call.op.name](result, item)
        if call.op.name == "relax.mean":
            result = relax.op.divide(result, relax.const(float(len(items.fields)), str(call.ty.dtype)))
        return result

    main = module.get_global_var("main")
    function = dpl.rewrite_call(squeeze, rewrite_squeeze, module[main])
    module[main] = dpl.rewrite_call(reduce, rewrite_reduce, function)
    return relax.transform.DeadCodeElimination()(module)


def clips_as_relax_ops(module: tvm.IRModule) -> tvm.IRModule:
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


def sigmoids_by_exp(module: tvm.IRModule) -> tvm.IRModule:
    """sigmoid(x) as 1 / (1 + exp(-x)), and clip(x, lo, hi) (HardSigmoid, HardSwish) as min(max(x, lo), hi).

    TVM computes sigmoid with libm's exp, one lane at a time: EfficientNet's SiLU
    epilogues took most of its convolutions' time. Written with exp, the lowering's fast
    math makes it a polynomial that vectorizes. Relax's clip, like the importer's Clip,
    has no layout rule in ConvertLayout; min/max with scalars keep the blocked layout.
    """
    x, lo, hi = dpl.wildcard(), dpl.wildcard(), dpl.wildcard()

    def sigmoid(call: relax.Call, matches) -> relax.Expr:
        dtype = str(call.ty.dtype)
        if not dtype.startswith("float"):
            return call
        one = relax.const(1.0, dtype)
        return relax.op.divide(one, relax.op.add(one, relax.op.exp(relax.op.negative(matches[x]))))

    def clip(call: relax.Call, matches) -> relax.Expr:
        dtype = str(call.ty.dtype)
        bounds = [_scalar(matches[bound]) for bound in (lo, hi)]
        if None in bounds or not dtype.startswith("float"):
            return call
        return relax.op.minimum(relax.op.maximum(matches[x], relax.const(bounds[0], dtype)), relax.const(bounds[1], dtype))

    main = module.get_global_var("main")
    function = dpl.rewrite_call(dpl.is_op("relax.sigmoid")(x), sigmoid, module[main])
    module[main] = dpl.rewrite_call(dpl.is_op("relax.clip")(x, lo, hi), clip, function)
    return relax.transform.DeadCodeElimination()(module)


def _scalar(value) -> float | None:
    """The number in a PrimValue or an IntImm/FloatImm, else None."""
    while hasattr(value, "value") and not isinstance(value, (int, float)):
        value = value.value
    return float(value) if isinstance(value, (int, float)) else None


UNARY_ELEMENTWISE = ("relax.nn.relu", "relax.nn.gelu", "relax.nn.gelu_tanh", "relax.nn.silu", "relax.sigmoid",
                     "relax.tanh", "relax.erf", "relax.exp", "relax.sqrt", "relax.negative", "relax.abs")
BINARY_ELEMENTWISE = ("relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.power", "relax.maximum",
                      "relax.minimum")


def matmuls_in_two_dims(module: tvm.IRModule) -> tvm.IRModule:
    """Matmuls of an N-d activation by a 2-d weight as 2-d matmuls, their elementwise epilogue included.

    ONNX MatMul on [1, 56, 56, 96] (ConvNeXt's MLP on NHWC) reaches the matmul template
    with its rows spread over two axes; padding rows to whole tiles then pads the inner
    axis (56 -> 128), and indexing them costs a division per load: 2-7x the time of the
    same 2-d matmul. Here A is reshaped to [M, K] and the result back after the
    elementwise ops that follow (bias, GELU, layer scale, residual add), so the fused
    function is the 2-d matmul with its epilogue and the reshapes are free views.
    """
    main = module.get_global_var("main")
    a, b = dpl.wildcard(), dpl.wildcard()

    def flatten(call: relax.Call, matches: dict) -> relax.Expr:
        lhs, rhs = matches[a], matches[b]
        shape, weight = _static_shape(lhs), _static_shape(rhs)
        if shape is None or weight is None or len(weight) != 2 or len(shape) < 3 or sum(d > 1 for d in shape[:-1]) < 2:
            return call
        rows = math.prod(shape[:-1])
        product = relax.op.matmul(relax.op.reshape(lhs, [rows, shape[-1]]), rhs, out_dtype=call.attrs.out_dtype)
        return relax.op.reshape(product, [*shape[:-1], weight[1]])

    function = dpl.rewrite_call(dpl.is_op("relax.matmul")(a, b), flatten, module[main])
    for _ in range(64):  # each round moves the reshapes past one more elementwise op
        sunk = _sink_reshapes(function)
        if tvm_ffi.structural_equal(sunk, function):
            break
        function = sunk
    module[main] = function
    return relax.transform.DeadCodeElimination()(module)


def _sink_reshapes(function: relax.Function) -> relax.Function:
    """op(reshape(x, S)) -> reshape(op(x'), S) for elementwise ops and a 2-d x whose columns are S's last axis."""
    x, y, shape, other_shape, other = dpl.wildcard(), dpl.wildcard(), dpl.wildcard(), dpl.wildcard(), dpl.wildcard()
    reshaped, reshaped_other = dpl.is_op("relax.reshape")(x, shape), dpl.is_op("relax.reshape")(y, other_shape)

    def ops(names, *args):
        pattern = None
        for name in names:
            pattern = dpl.is_op(name)(*args) if pattern is None else pattern | dpl.is_op(name)(*args)
        return pattern

    def rewrite(position: int, paired: bool = False):
        """The callback for patterns with the reshape at `position` (and, `paired`, another at 1 - position).

        The operands come from the match, not from the call: dpl matches add and multiply
        either way round (for them the order does not matter), other ops as written.
        """
        def callback(call: relax.Call, matches) -> relax.Expr:
            source, target = matches[x], _static_shape(call)
            columns = _static_shape(source)
            if target is None or columns is None or len(columns) != 2 or target[-1] != columns[1]:
                return call
            if len(call.args) == 1:
                args = [source]
            else:
                operand = matches[y] if paired else matches[other]
                operand = (operand if _static_shape(operand) == columns else None) if paired else _as_two_dims(operand, target, columns)
                if operand is None:
                    return call
                args = [source, operand] if position == 0 else [operand, source]
            return relax.op.reshape(relax.Call(call.op, args, call.attrs, call.ty_args), target)
        return callback

    def collapse(call: relax.Call, matches) -> relax.Expr:  # reshape(reshape(y, S1), S2) -> reshape(y, S2)
        source, target = matches[y], _static_shape(call)
        if target is None:
            return call
        return source if _static_shape(source) == target else relax.op.reshape(source, target)

    function = dpl.rewrite_call(dpl.is_op("relax.reshape")(reshaped_other, shape), collapse, function)
    function = dpl.rewrite_call(ops(BINARY_ELEMENTWISE, reshaped, reshaped_other), rewrite(0, paired=True), function)
    function = dpl.rewrite_call(ops(UNARY_ELEMENTWISE, reshaped), rewrite(0), function)
    function = dpl.rewrite_call(ops(BINARY_ELEMENTWISE, reshaped, other), rewrite(0), function)
    return dpl.rewrite_call(ops(BINARY_ELEMENTWISE, other, reshaped), rewrite(1), function)


def _as_two_dims(arg: relax.Expr, target: list[int], columns: list[int]) -> relax.Expr | None:
    """The other operand of an elementwise op, for the op's 2-d form; None when it does not broadcast that way."""
    shape = _static_shape(arg)
    if shape is None:
        return None
    if not shape or all(d == 1 for d in shape):
        return arg if not shape else relax.op.reshape(arg, [1])
    if len(shape) <= len(target) and all(d == 1 for d in shape[:-1]) and shape[-1] in (1, columns[1]):
        return relax.op.reshape(arg, [shape[-1]])
    if shape == target:
        return relax.op.reshape(arg, columns)
    return None


def _static_shape(expr: relax.Expr) -> list[int] | None:
    ty = expr.ty
    if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
        return None
    try:
        return [int(d) for d in ty.shape.values]
    except TypeError:
        return None
