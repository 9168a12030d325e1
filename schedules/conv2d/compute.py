"""conv2d's computation in a blocked channel layout (NCHW[x]c), as ONNX Runtime's MLAS does.

Data is [N, C/cb, H, W, cb], the kernel [K/kb, C/cb, R, S, cb, kb] and the output
[N, K/kb, OH, OW, kb] (dilated kernels too: DeepLab's backbone and ASPP), with blocks of
16 channels where they divide (`channel_block`): the innermost axis of every access is a
contiguous channel block. This module holds what every device family shares: the
workload, the TE compute, its matcher in a model's fused function and the numpy
reference (`Conv2dCompute`); the schedules are beside it, one file per device family
(`cpu.py`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from tvm import s_tir, te, tirx
from tvm.sym.pattern import detect_linear_equation

from schedules.matching import anchor_block, producer_of
from schedules.template import Template, Workload


def channel_block(channels: int) -> int | None:
    """The channel block of a tensor with this many channels (None: not blockable).

    16 float32 are one AVX-512 vector and four NEON ones; 8 where 16 does not divide
    (MobileNetV2's 24-channel stage); all of them when there are fewer (a stem's 3); 4 or
    2 for the rest that they divide: narrow vectors, but no layout transforms around the
    conv. A model's convs rarely get those: `autotune.channel_padding` pads such channel
    counts (ShuffleNet's 116 and 58) to a multiple of 8 or 16 first, where the weights are
    constants. A model's lowering and the templates both use this rule, so layouts agree.
    """
    for block in (16, 8):
        if channels % block == 0:
            return block
    if channels < 16:
        return channels
    return next((block for block in (4, 2) if channels % block == 0), None)


def channel_blocks(wl: Workload) -> tuple[int, int]:
    """(cb, kb): input and output channel block sizes."""
    return channel_block(wl["C"]), channel_block(wl["K"])


class Conv2dCompute(Template):
    """conv2d's workload, compute, matcher and reference; a device family's template adds the schedule."""

    op = "conv2d"

    def workload(self, shape: Sequence[int], dtype: str = "float32") -> Workload:
        """From N,C,H,W,K,R,S,stride,pad[,dilation]; `dilation` is a workload argument only when not 1,
        so the keys of undilated convs (logs, packs) stay what they were."""
        if len(shape) not in (9, 10) or any(int(d) < 0 for d in shape) or any(int(d) < 1 for d in shape[:8] + shape[9:]):
            raise ValueError("conv2d needs a shape N,C,H,W,K,R,S,stride,pad[,dilation] of non-negative integers "
                             f"(positive but for pad), got {','.join(map(str, shape))}")
        if dtype != "float32":
            raise ValueError(f"conv2d: dtype {dtype!r} is not supported yet (float32 only)")
        n, c, h, w, k, r, s, stride, pad = (int(d) for d in shape[:9])
        dilation = int(shape[9]) if len(shape) == 10 else 1
        if h + 2 * pad < (r - 1) * dilation + 1 or w + 2 * pad < (s - 1) * dilation + 1:
            raise ValueError("conv2d: the kernel is larger than the padded input")
        if channel_block(c) is None or channel_block(k) is None:
            raise ValueError("conv2d: channel counts must be even, or below 16")
        return Workload.make(self.op, N=n, C=c, H=h, W=w, K=k, R=r, S=s, stride=stride, pad=pad, dtype=dtype,
                             **dilation_arg(dilation))

    def match(self, sch: s_tir.Schedule) -> Workload | None:
        """A 5-D data read times a 6-D kernel read, reduced over (input block, r, s, channel)."""
        block = anchor_block(sch)
        if block is None:
            return None
        stmt = sch.get(block)
        if len(stmt.reads) != 2 or len(stmt.writes) != 1 or len(stmt.iter_vars) != 9:
            return None
        data, kernel = (region.source for region in stmt.reads)
        if len(data.shape) != 5 or len(kernel.shape) != 6 or len(stmt.writes[0].source.shape) != 5:
            return None
        kblocks, cblocks, r, s, cb, kb = (int(d) for d in kernel.shape)
        if (channel_block(cblocks * cb), channel_block(kblocks * kb)) != (cb, kb):
            return None
        n, _, padded_h, padded_w, _ = (int(d) for d in data.shape)
        h, w, pad = padded_h, padded_w, 0
        producer = producer_of(sch, block, data)
        if producer is not None:  # the padding stage: the function's input is its read
            n, _, h, w, _ = (int(d) for d in sch.get(producer).reads[0].source.shape)
            pad = (padded_h - h) // 2
        index = [region.min for region in stmt.reads[0].region]
        if not (isinstance(index[1], tirx.Var) and index[1].same_as(stmt.iter_vars[5].var)):
            return None  # a grouped conv: each output block reads its own input blocks
        window = window_coefficients(index[2:4], [iv.var for iv in stmt.iter_vars[2:4]],
                                     [iv.var for iv in stmt.iter_vars[6:8]])
        if window is None:
            return None
        return Workload.make(self.op, N=n, C=cblocks * cb, H=h, W=w, K=kblocks * kb, R=r, S=s, stride=window[0],
                             pad=pad, dtype=str(stmt.writes[0].source.dtype), **dilation_arg(window[1]))

    def compute(self, wl: Workload) -> tirx.PrimFunc:
        cb, kb = channel_blocks(wl)
        n, c, h, w, k, r, s = (wl[x] for x in ("N", "C", "H", "W", "K", "R", "S"))
        data = te.placeholder((n, c // cb, h, w, cb), wl["dtype"], name="data")
        kernel = te.placeholder((k // kb, c // cb, r, s, cb, kb), wl["dtype"], name="kernel")
        return te.create_prim_func([data, kernel, conv2d_nchwc(data, kernel, wl["stride"], wl["pad"], dilation_of(wl))])

    def flops(self, wl: Workload) -> int:
        oh, ow = out_size(wl)
        return 2 * wl["N"] * wl["K"] * oh * ow * wl["C"] * wl["R"] * wl["S"]

    def make_inputs(self, wl: Workload, rng: np.random.Generator) -> list[np.ndarray]:
        cb, kb = channel_blocks(wl)
        n, c, h, w, k, r, s = (wl[x] for x in ("N", "C", "H", "W", "K", "R", "S"))
        data = rng.uniform(-1, 1, (n, c // cb, h, w, cb)).astype(wl["dtype"])
        kernel = rng.uniform(-1, 1, (k // kb, c // cb, r, s, cb, kb)).astype(wl["dtype"])
        return [data, kernel]

    def reference(self, wl: Workload, inputs: Sequence[np.ndarray]) -> np.ndarray:
        data, kernel = inputs
        n, cblocks, h, w, cb = data.shape
        kblocks, _, r, s, _, kb = kernel.shape
        nchw = data.transpose(0, 1, 4, 2, 3).reshape(n, cblocks * cb, h, w)
        oihw = kernel.transpose(0, 5, 1, 4, 2, 3).reshape(kblocks * kb, cblocks * cb, r, s)
        padded = np.pad(nchw, ((0, 0), (0, 0), (wl["pad"], wl["pad"]), (wl["pad"], wl["pad"])))
        windows = conv_windows(padded, r, s, wl["stride"], dilation_of(wl))
        out = np.einsum("nchwrs,kcrs->nkhw", windows, oihw, optimize=True)
        oh, ow = out.shape[2:]
        return out.reshape(n, kblocks, kb, oh, ow).transpose(0, 1, 3, 4, 2).astype(data.dtype)


def conv2d_nchwc(data: te.Tensor, kernel: te.Tensor, stride: int, pad: int, dilation: int = 1) -> te.Tensor:
    """The blocked conv2d (symmetric stride, padding and dilation), with a padding stage when pad > 0.

    Both the template's PrimFunc and a model's lowering (`autotune.model`) compute conv2d
    with this, so every conv2d in a model is a block this template has been tuned on.
    """
    return blocked_conv(data, kernel, stride, pad, dilation, name="conv2d")


def blocked_conv(data: te.Tensor, kernel: te.Tensor, stride: int, pad: int, dilation: int, name: str,
                 first_block: Callable[[tirx.PrimExpr], tirx.PrimExpr] = lambda ko: 0,
                 attrs: dict | None = None) -> te.Tensor:
    """out[b, ko, y, x, ki] = sum over the kernel's input blocks co, taps and ci of
    padded[b, first_block(ko) + co, window, ci] * kernel[ko, co, r, s, ci, ki]: conv2d reads
    every input block (first_block 0), a grouped conv those of the output block's groups."""
    n, _, h, w, cb = (int(d) for d in data.shape)
    kblocks, nb, r, s, _, kb = (int(d) for d in kernel.shape)
    oh, ow = (h + 2 * pad - (r - 1) * dilation - 1) // stride + 1, (w + 2 * pad - (s - 1) * dilation - 1) // stride + 1
    padded = pad_nchwc(data, pad)
    co, rr, ss, ci = (te.reduce_axis((0, e), name=nm) for e, nm in ((nb, "co"), (r, "r"), (s, "s"), (cb, "ci")))
    return te.compute(
        (n, kblocks, oh, ow, kb),
        lambda b, ko, y, x, ki: te.sum(
            padded[b, first_block(ko) + co, y * stride + rr * dilation, x * stride + ss * dilation, ci]
            * kernel[ko, co, rr, ss, ci, ki], axis=[co, rr, ss, ci]),
        name=name, attrs=attrs,
    )


def pad_nchwc(data: te.Tensor, pad: int) -> te.Tensor:
    """`data` (N, C/x, H, W, x) zero-padded by `pad` on H and W, as a stage named "pad" (`data` itself for 0)."""
    if not pad:
        return data
    n, cblocks, h, w, cb = data.shape
    return te.compute(
        (n, cblocks, h + 2 * pad, w + 2 * pad, cb),
        lambda b, c, y, x, ci: tirx.if_then_else(
            tirx.all(y >= pad, y < h + pad, x >= pad, x < w + pad),
            data[b, c, y - pad, x - pad, ci], tirx.const(0, data.dtype)),
        name="pad",
    )


def out_size(wl: Workload) -> tuple[int, int]:
    """(OH, OW) of a convolution workload (keys H, W, R, S, stride, pad, and dilation when not 1)."""
    dilation = dilation_of(wl)
    return ((wl["H"] + 2 * wl["pad"] - (wl["R"] - 1) * dilation - 1) // wl["stride"] + 1,
            (wl["W"] + 2 * wl["pad"] - (wl["S"] - 1) * dilation - 1) // wl["stride"] + 1)


def dilation_of(wl: Workload) -> int:
    """The workload's dilation (1 when it has no `dilation` argument)."""
    return int(dict(wl.args).get("dilation", 1))


def dilation_arg(dilation: int) -> dict[str, int]:
    """The `dilation` workload argument: none for 1, so undilated keys are those of older logs."""
    return {} if dilation == 1 else {"dilation": dilation}


def window_coefficients(index: Sequence[tirx.PrimExpr], rows: Sequence[tirx.Var],
                        taps: Sequence[tirx.Var]) -> tuple[int, int] | None:
    """(stride, dilation) of a window read `row * stride + tap * dilation` on both spatial axes, or None."""
    found = set()
    for expr, row, tap in zip(index, rows, taps):
        coeffs = detect_linear_equation(expr, [row, tap])
        if len(coeffs) != 3 or not all(isinstance(c, tirx.IntImm) for c in coeffs) or int(coeffs[2]) != 0:
            return None  # an offset window (a crop or shift) is no conv these templates compute
        found.add((int(coeffs[0]), int(coeffs[1])))
    if len(found) != 1 or min(next(iter(found))) < 1:
        return None
    return next(iter(found))


def conv_windows(padded: np.ndarray, r: int, s: int, stride: int, dilation: int) -> np.ndarray:
    """The (r, s) windows of padded NCHW or NCHW[x]c data (axes n, c, y, x(, ci), r, s), strided and dilated."""
    span_r, span_s = (r - 1) * dilation + 1, (s - 1) * dilation + 1
    windows = sliding_window_view(padded, (span_r, span_s), axis=(2, 3))
    return windows[:, :, ::stride, ::stride, ..., ::dilation, ::dilation]
