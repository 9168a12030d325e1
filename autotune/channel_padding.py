"""Channel counts no vector block fits, padded with zero weights to one that does.

ShuffleNet's 58 and 116 channels, a segmentation head's 21 classes, squeeze-excite's 20 and
26: a blocked layout of 2 or 4 channels would use a quarter of an AVX-512 vector, and the
plain layout gives up the templates. As ONNX Runtime's MLAS does, such a conv computes
with its channels padded to a multiple of 16 (of 8 where 16 would waste more than an
eighth): the weights of the padded output channels and of the padded input channels are
zero, so the padded channels of a tensor never change a true one, whatever values they
hold (as long as they are finite).

A padded tensor flows on through the operators that keep channels apart (activations,
per-channel affine ops with their constants padded, pooling, squeeze-excite's gate, other
convs), so a chain of such convs runs padded from end to end; every other consumer reads
a slice of the true channels (ShuffleNet's concat and channel shuffle). Padding and
slicing fuse into the neighbouring functions.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from schedules.conv2d import channel_block

#: Operators of one tensor that keep channels apart, and keep finite values finite.
CHANNELWISE_UNARY = frozenset({
    "relax.nn.relu", "relax.nn.gelu", "relax.nn.gelu_tanh", "relax.nn.silu", "relax.nn.leakyrelu", "relax.sigmoid",
    "relax.tanh", "relax.erf", "relax.negative", "relax.nn.max_pool2d", "relax.nn.avg_pool2d",
    "relax.nn.adaptive_avg_pool2d",
})
#: Binary operators, with the value a padded per-channel constant takes (so that it stays finite).
CHANNELWISE_BINARY = {"relax.add": 0.0, "relax.subtract": 0.0, "relax.multiply": 1.0, "relax.maximum": 0.0,
                      "relax.minimum": 0.0}


def padded_channels(channels: int) -> int:
    """The channel count a conv computes with: `channels` when a block of 8 or 16 divides it (or there
    are fewer than 16), else the next multiple of 16, or of 8 when 16 would waste more than an eighth."""
    if channels < 16 or channel_block(channels) in (8, 16):
        return channels
    by_16 = -(-channels // 16) * 16
    return by_16 if by_16 - channels <= channels / 8 else -(-channels // 8) * 8


def pad_channels(module: tvm.IRModule) -> tvm.IRModule:
    """`module` with its convs of unblockable channel counts computed on padded channels."""
    main = module.get_global_var("main")
    module[main] = _ChannelPadder(module).visit_expr(module[main])
    return relax.transform.DeadCodeElimination()(module)


@relax.expr_functor.mutator
class _ChannelPadder(relax.PyExprMutator):
    def __init__(self, module: tvm.IRModule):
        super().__init__(module)
        self.padded: dict[relax.Var, tuple[relax.Var, int]] = {}  # original var -> (padded var, true channels)

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = binding.value
        rewritten = self._padded(value) if isinstance(value, relax.Call) and isinstance(binding.var, relax.DataflowVar) else None
        if rewritten is None:
            return super().visit_var_binding_(binding)
        expr, channels = rewritten
        new = self.builder_.emit(expr, binding.var.name + "_padded")
        if channels is None:  # the true channels only (a conv that read a padded input)
            self.set_var_remap(binding.var, new)
            return None
        self.padded[binding.var] = (new, channels)
        true = relax.op.strided_slice(new, axes=[1], begin=[0], end=[channels])
        self.set_var_remap(binding.var, self.builder_.emit(true, binding.var.name))
        return None

    def _padded(self, call: relax.Call) -> tuple[relax.Expr, int | None] | None:
        """The call on padded channels and its true channel count (None: its output is not padded)."""
        name = call.op.name if isinstance(call.op, tvm.ir.Op) else ""
        if name == "relax.nn.conv2d":
            return self._conv2d(call)
        if name in CHANNELWISE_UNARY and len(call.args) == 1 and call.args[0] in self.padded:
            if getattr(call.attrs, "layout", "NCHW") != "NCHW":
                return None
            source, channels = self.padded[call.args[0]]
            return relax.Call(call.op, [source], call.attrs, call.ty_args), channels
        if name in CHANNELWISE_BINARY and len(call.args) == 2:
            return self._binary(call, CHANNELWISE_BINARY[name])
        return None

    def _conv2d(self, call: relax.Call) -> tuple[relax.Expr, int | None] | None:
        data, weight = call.args
        attrs = call.attrs
        if (not isinstance(weight, tvm.ir.expr.Constant) or attrs.data_layout != "NCHW" or attrs.kernel_layout != "OIHW"
                or attrs.out_layout != "NCHW"):
            return None
        kernel = weight.value.numpy()
        out_channels, in_per_group = kernel.shape[:2]
        channels = _channels(data)
        depthwise = int(attrs.groups) == channels == out_channels and in_per_group == 1
        if int(attrs.groups) != 1 and not depthwise:
            return None
        source = self.padded.get(data, (None, 0))[0]
        padded_in = _channels(source) if source is not None else padded_channels(channels)
        padded_out = padded_in if depthwise else padded_channels(out_channels)
        if padded_in == channels and padded_out == out_channels:
            return None
        if source is None:
            source = self.visit_expr(data)
            if padded_in != channels:  # zeros, once per tensor
                source = self.builder_.emit(relax.op.nn.pad(source, [0, 0, 0, padded_in - channels, 0, 0, 0, 0]))
                self.padded[data] = (source, channels)
        shape = (padded_out, 1 if depthwise else padded_in, *kernel.shape[2:])
        padded_kernel = np.zeros(shape, kernel.dtype)
        padded_kernel[:out_channels, :kernel.shape[1]] = kernel
        conv = relax.op.nn.conv2d(source, relax.const(padded_kernel), attrs.strides, attrs.padding, attrs.dilation,
                                  padded_in if depthwise else 1, "NCHW", "OIHW", "NCHW",
                                  None if str(attrs.out_dtype) in ("", "None") else attrs.out_dtype)
        if padded_out == out_channels:
            return conv, None
        return conv, out_channels

    def _binary(self, call: relax.Call, fill: float) -> tuple[relax.Expr, int] | None:
        """A binary op with a padded operand, its other operand padded, a padded constant, or no channels."""
        padded = [self.padded.get(arg) for arg in call.args]
        known = [p for p in padded if p is not None]
        if not known or len({_channels(p[0]) for p in known}) != 1:
            return None
        width, channels = _channels(known[0][0]), known[0][1]
        operands = []
        for arg, pad in zip(call.args, padded):
            operand = pad[0] if pad is not None else _padded_operand(self.visit_expr(arg), width, fill)
            if operand is None:
                return None
            operands.append(operand)
        return relax.Call(call.op, operands, call.attrs, call.ty_args), channels


def _padded_operand(arg: relax.Expr, width: int, fill: float) -> relax.Expr | None:
    """`arg` as the operand of a binary op with a `width`-channel NCHW tensor: itself when it has no
    channels to pad (a scalar, one channel), a constant padded with `fill`, else None."""
    shape = _static_shape(arg)
    if shape is None:
        return None
    axis = len(shape) - 3  # the channel axis of a shape that broadcasts against NCHW
    if axis < 0 or shape[axis] == 1:
        return arg
    if not isinstance(arg, tvm.ir.expr.Constant) or any(d != 1 for d in shape[axis + 1:]):
        return None
    value = arg.value.numpy()
    pad = [(0, 0)] * value.ndim
    pad[axis] = (0, width - shape[axis])
    return relax.const(np.pad(value, pad, constant_values=fill))


def _channels(expr: relax.Expr) -> int:
    return int(expr.ty.shape.values[1])


def _static_shape(expr: relax.Expr) -> list[int] | None:
    shape = getattr(expr.ty, "shape", None)
    values = getattr(shape, "values", None)
    if values is None or not all(isinstance(d, tvm.tirx.IntImm) for d in values):
        return None
    return [int(d) for d in values]
