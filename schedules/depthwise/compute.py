"""Depthwise conv2d in the blocked channel layout NCHW[x]c (MobileNet's 3x3 and 5x5 convs): the computation.

The block x is `schedules.conv2d.channel_block(C)` (16, or 8 where 16 does not divide, as
the neighbouring convs have it). Data is [N, C/x, H, W, x], the kernel [C/x, 1, R, S, x]
(OIHW[x]o of a depthwise OIHW kernel) and the output [N, C/x, OH, OW, x]:

    out[n, c, y, x, ci] = sum_{r,s} padded[n, c, y*stride + r*dil, x*stride + s*dil, ci] * kernel[c, 0, r, s, ci]

In a model the same anchor comes with its bias and ReLU6 (add, then maximum/minimum or
clip). Dilation (DeepLab) only spreads the taps; the workload has a `dilation` argument
only when it is not 1, so the keys of undilated workloads never changed. The schedules
are beside this module, one file per device family (`cpu.py`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tvm import s_tir, te, tirx
from tvm.sym import Analyzer, detect_linear_equation

from schedules.conv2d.compute import channel_block, conv_windows, dilation_arg, dilation_of, out_size, pad_nchwc
from schedules.matching import anchor_block, is_multiply_accumulate, producer_of
from schedules.template import Template, Workload


#: Workload shape arguments, in the order `--shape` gives them (then an optional dilation).
DIMS = ("N", "C", "H", "W", "R", "S", "stride", "pad")


def depthwise_nchwc(data: te.Tensor, kernel: te.Tensor, stride: int, pad: int, dilation: int = 1) -> te.Tensor:
    """Depthwise conv2d of NCHW[x]c data with a [C/x, 1, R, S, x] kernel, symmetric stride, padding, dilation.

    The padding is a stage of its own named "pad" (only when pad > 0), the convolution
    is named "depthwise_conv2d". Shapes may be int32 or int64 (as relax gives them).
    """
    n, cblocks, h, w, cb = data.shape
    _, _, r, s, _ = kernel.shape
    oh = (h + 2 * pad - dilation * (r - 1) - 1) // stride + 1
    ow = (w + 2 * pad - dilation * (s - 1) - 1) // stride + 1
    padded = pad_nchwc(data, pad)
    rr, ss = te.reduce_axis((0, r), name="r"), te.reduce_axis((0, s), name="s")
    return te.compute(
        (n, cblocks, oh, ow, cb),
        lambda b, c, y, x, ci: te.sum(
            padded[b, c, y * stride + rr * dilation, x * stride + ss * dilation, ci] * kernel[c, 0, rr, ss, ci],
            axis=[rr, ss]),
        name="depthwise_conv2d",
    )


class DepthwiseConv2dCompute(Template):
    """Depthwise conv2d's workload, compute, matcher and reference."""

    op = "depthwise_conv2d"

    def workload(self, shape: Sequence[int], dtype: str = "float32") -> Workload:
        """N,C,H,W,R,S,stride,pad[,dilation]; a dilation of 1 is left out of the key (older logs match)."""
        if len(shape) not in (len(DIMS), len(DIMS) + 1) or any(int(d) < 0 for d in shape) \
                or any(int(d) < 1 for i, d in enumerate(shape) if i != 7):
            raise ValueError(f"depthwise_conv2d needs a shape {','.join(DIMS)}[,dilation] of non-negative integers "
                             f"(positive but for pad), got {','.join(map(str, shape))}")
        if dtype != "float32":
            raise ValueError(f"depthwise_conv2d: dtype {dtype!r} is not supported yet (float32 only)")
        n, c, h, w, r, s, stride, pad, dilation = (*(int(d) for d in shape), 1)[:9]
        if channel_block(c) is None:
            raise ValueError(f"depthwise_conv2d: {c} channels fit no channel block (an even count, or fewer than 16)")
        if h + 2 * pad < dilation * (r - 1) + 1 or w + 2 * pad < dilation * (s - 1) + 1:
            raise ValueError("depthwise_conv2d: the kernel is larger than the padded input")
        return Workload.make(self.op, N=n, C=c, H=h, W=w, R=r, S=s, stride=stride, pad=pad, dtype=dtype,
                             **dilation_arg(dilation))

    def match(self, sch: s_tir.Schedule) -> Workload | None:
        block = anchor_block(sch)
        found = _match_depthwise(sch, block) if block is not None else None
        if found is None:
            return None
        try:
            wl = self.workload([found[d] for d in (*DIMS, "dilation")], found["dtype"])
        except ValueError:
            return None
        cb = channel_block(wl["C"])
        out_shape = [int(d) for d in sch.get(block).writes[0].source.shape]
        return wl if found["block"] == cb and out_shape == [wl["N"], wl["C"] // cb, *out_size(wl), cb] else None

    def compute(self, wl: Workload) -> tirx.PrimFunc:
        n, c, h, w, r, s = (wl[x] for x in ("N", "C", "H", "W", "R", "S"))
        cb = channel_block(c)
        data = te.placeholder((n, c // cb, h, w, cb), wl["dtype"], name="data")
        kernel = te.placeholder((c // cb, 1, r, s, cb), wl["dtype"], name="kernel")
        out = depthwise_nchwc(data, kernel, wl["stride"], wl["pad"], dilation_of(wl))
        return te.create_prim_func([data, kernel, out])

    def flops(self, wl: Workload) -> int:
        oh, ow = out_size(wl)
        return 2 * wl["N"] * wl["C"] * oh * ow * wl["R"] * wl["S"]

    def make_inputs(self, wl: Workload, rng: np.random.Generator) -> list[np.ndarray]:
        n, c, h, w, r, s = (wl[x] for x in ("N", "C", "H", "W", "R", "S"))
        cb = channel_block(c)
        data = rng.uniform(-1, 1, (n, c // cb, h, w, cb)).astype(wl["dtype"])
        kernel = rng.uniform(-1, 1, (c // cb, 1, r, s, cb)).astype(wl["dtype"])
        return [data, kernel]

    def reference(self, wl: Workload, inputs: Sequence[np.ndarray]) -> np.ndarray:
        data, kernel = inputs
        pad = wl["pad"]
        padded = np.pad(data, ((0, 0), (0, 0), (pad, pad), (pad, pad), (0, 0)))
        windows = conv_windows(padded, *kernel.shape[2:4], wl["stride"], dilation_of(wl))  # n c y x ci r s
        out = np.einsum("ncyxirs,crsi->ncyxi", windows, kernel[:, 0], optimize=True)
        return out.astype(data.dtype)


def _match_depthwise(sch: s_tir.Schedule, block) -> dict[str, Any] | None:
    """The depthwise arguments of `block` read from its TIR, or None when it is not one.

    The block must be `out[n, c, y, x, i] += data[n, c, y*st + r*d, x*st + s*d, i] * kernel[c, 0, r, s, i]`
    over 5 spatial and 2 reduction axes; the data is the output of a padding block when
    there is one, whose input gives N, C, H, W.
    """
    stmt = sch.get(block)
    spatial = [iv.var for iv in stmt.iter_vars if iv.iter_type == tirx.IterVar.DataPar]
    reduce = [iv.var for iv in stmt.iter_vars if iv.iter_type == tirx.IterVar.CommReduce]
    if len(spatial) != 5 or len(reduce) != 2 or len(stmt.writes) != 1:
        return None
    out = stmt.writes[0].source
    reads = [region for region in stmt.reads if not region.source.same_as(out)]
    if len(reads) != 2 or not is_multiply_accumulate(stmt):
        return None
    if not _same_vars([r.min for r in stmt.writes[0].region], spatial):
        return None
    n, c, y, x, i = spatial
    data, kernel = None, None
    for region in reads:
        index = [r.min for r in region.region]
        if len(index) != 5:
            return None
        if _same_vars([index[0], index[2], index[3], index[4]], [c, *reduce, i]) and _is_zero(index[1]):
            kernel = region
        else:
            data = region
    if data is None or kernel is None:
        return None
    index = [r.min for r in data.region]
    if not _same_vars([index[0], index[1], index[4]], [n, c, i]):
        return None
    steps = []  # (stride, dilation) of H and W
    for idx, var, tap in ((index[2], y, reduce[0]), (index[3], x, reduce[1])):
        coeffs = detect_linear_equation(idx, [var, tap])
        if len(coeffs) != 3 or not all(isinstance(k, tirx.IntImm) for k in coeffs[:2]) \
                or not Analyzer().can_prove_equal(coeffs[2], 0):
            return None
        steps.append((int(coeffs[0]), int(coeffs[1])))
    if steps[0] != steps[1] or min(steps[0]) < 1:
        return None
    padded_shape = [int(d) for d in data.source.shape]
    source_shape = _pad_input_shape(sch, block, data.source, padded_shape)
    if source_shape is None or len(source_shape) != 5:
        return None
    if [*source_shape[:2], source_shape[4]] != [*padded_shape[:2], padded_shape[4]]:  # only H and W padded
        return None
    pad_h, pad_w = padded_shape[2] - source_shape[2], padded_shape[3] - source_shape[3]
    if pad_h != pad_w or pad_h % 2 or pad_h < 0:
        return None
    kernel_shape = [int(d) for d in kernel.source.shape]
    if kernel_shape[1] != 1 or kernel_shape[0] != padded_shape[1] or kernel_shape[4] != padded_shape[4]:
        return None
    bn, cblocks, h, w, cb = source_shape
    return {"N": bn, "C": cblocks * cb, "H": h, "W": w, "R": kernel_shape[2], "S": kernel_shape[3],
            "stride": steps[0][0], "pad": pad_h // 2, "dilation": steps[0][1], "block": cb, "dtype": str(out.dtype)}


def _pad_input_shape(sch: s_tir.Schedule, block, buffer: tirx.Buffer, shape: list[int]) -> list[int] | None:
    """Shape of the padding's input when a block produces `buffer`, `shape` when no block does, else None."""
    producer = producer_of(sch, block, buffer)
    if producer is None:
        return shape
    sources = [region.source for region in sch.get(producer).reads]
    return [int(d) for d in sources[0].shape] if len(sources) == 1 else None  # else: not a padding


def _same_vars(exprs: Sequence[tirx.PrimExpr], variables: Sequence[tirx.Var]) -> bool:
    return len(exprs) == len(variables) and all(
        isinstance(e, tirx.Var) and e.same_as(v) for e, v in zip(exprs, variables))


def _is_zero(expr: tirx.PrimExpr) -> bool:
    return isinstance(expr, tirx.IntImm) and int(expr) == 0
