"""Grouped conv2d (ResNeXt, RegNet), in the blocked channel layout of the plain conv2d.

Data [N, C/cb, H, W, cb] and output [N, K/kb, OH, OW, kb] keep the blocks of
`channel_block`, so a grouped conv sits between blocked convs with no layout transform.
The kernel is laid out per output block: [K/kb, nb, R, S, cb, kb] holds the nb input
blocks that contain the groups of the block's kb output channels, with zeros where an
input channel is not in an output channel's group (block-diagonal when groups are
narrower than a block). The inner kernel is then the plain conv2d's, a broadcast input
channel times a vector of kb output channels, and so is the CPU schedule (`cpu.py`: `Conv2dCPU`'s,
the same knobs): groups narrower than a block cost cb / width more multiplies (2x for 8
channels in a block of 16, 4x for 4), still far faster than a per-lane gather or TVM's
NCHW compute. Weights are constants: the kernel layout is made once, at compile time.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tvm import s_tir, te, tirx

from schedules.conv2d.compute import (Conv2dCompute, blocked_conv, channel_block, conv_windows, dilation_arg,
                                      dilation_of, out_size, window_coefficients)
from schedules.matching import anchor_block, producer_of
from schedules.template import Workload

#: Block annotation carrying the group count (the compute's index pattern alone does not
#: tell 4 from 8 channels per group: both read one input block per output block).
GROUPS_ATTR = "autotune.groups"
#: Most multiplies per useful one the zero-filled kernel may cost (4 channels per group in blocks of 16).
MAX_WASTE = 4
DIMS = ("N", "C", "H", "W", "K", "R", "S", "stride", "pad", "groups")


def group_layout(channels: int, out_channels: int, groups: int) -> tuple[int, int, int]:
    """(cb, kb, nb): channel blocks of data and output, input blocks one output block reads.

    ValueError, saying why, when no blocked kernel computes this grouped conv well.
    """
    if groups < 1 or channels % groups or out_channels % groups:
        raise ValueError(f"{groups} groups do not divide {channels}->{out_channels} channels")
    cb, kb = channel_block(channels), channel_block(out_channels)
    if cb is None or kb is None:
        raise ValueError(f"{channels if cb is None else out_channels} channels fit no channel block")
    width = channels // groups
    spans = [(first_block(ko, channels, out_channels, groups),
              ((ko * kb + kb - 1) // (out_channels // groups) * width + width - 1) // cb) for ko in range(out_channels // kb)]
    nb = max(last - first + 1 for first, last in spans)
    if any(first + nb > channels // cb for first, _ in spans):
        raise ValueError(f"groups of {width} channels straddle blocks of {cb} unevenly")
    if nb * cb > MAX_WASTE * width:
        raise ValueError(f"groups of {width} channels (blocks of {cb}: {nb * cb // width}x the multiplies)")
    return cb, kb, nb


def first_block(ko, channels: int, out_channels: int, groups: int):
    """The first input block output block `ko` reads (an int, or a TIR expression of a loop variable)."""
    cb, kb = channel_block(channels), channel_block(out_channels)
    return (ko * kb // (out_channels // groups)) * (channels // groups) // cb


def group_conv2d_nchwc(data: te.Tensor, kernel: te.Tensor, stride: int, pad: int, groups: int,
                       dilation: int = 1) -> te.Tensor:
    """Grouped conv2d of blocked data with a `group_kernel` (symmetric stride, padding, dilation).

    The padding is a stage named "pad" (pad > 0); the block is annotated with the groups.
    """
    channels, out_channels = int(data.shape[1]) * int(data.shape[4]), int(kernel.shape[0]) * int(kernel.shape[5])
    return blocked_conv(data, kernel, stride, pad, dilation, name="group_conv2d", attrs={GROUPS_ATTR: groups},
                        first_block=lambda ko: first_block(ko, channels, out_channels, groups))


def group_kernel(weight: te.Tensor, groups: int, cb: int, kb: int) -> te.Tensor:
    """An OIHW grouped kernel [K, C/groups, R, S] as [K/kb, nb, R, S, cb, kb], zero outside each channel's group."""
    out_channels, width, r, s = (int(d) for d in weight.shape)
    channels = width * groups
    _, _, nb = group_layout(channels, out_channels, groups)

    def value(ko, co, rr, ss, ci, ki):
        k = ko * kb + ki
        j = (first_block(ko, channels, out_channels, groups) + co) * cb + ci - k // (out_channels // groups) * width
        inside = tirx.all(j >= 0, j < width)
        return tirx.if_then_else(inside, weight[k, tirx.floormod(j, width), rr, ss], tirx.const(0, weight.dtype))

    return te.compute((out_channels // kb, nb, r, s, cb, kb), value, name="group_kernel")


def pack_group_kernel(weight: np.ndarray, groups: int) -> np.ndarray:
    """`group_kernel` in numpy (make_inputs, tests)."""
    out_channels, width, r, s = weight.shape
    channels = width * groups
    cb, kb, nb = group_layout(channels, out_channels, groups)
    packed = np.zeros((out_channels // kb, nb, r, s, cb, kb), weight.dtype)
    for k in range(out_channels):
        ko, ki = divmod(k, kb)
        for j in range(width):
            c = k // (out_channels // groups) * width + j - first_block(ko, channels, out_channels, groups) * cb
            packed[ko, c // cb, :, :, c % cb, ki] = weight[k, j]
    return packed


class GroupConv2dCompute(Conv2dCompute):
    """Grouped (not depthwise) conv2d's workload, compute, matcher and reference."""

    op = "group_conv2d"

    def workload(self, shape: Sequence[int], dtype: str = "float32") -> Workload:
        """From N,C,H,W,K,R,S,stride,pad,groups[,dilation] (dilation an argument only when not 1)."""
        if len(shape) not in (10, 11) or any(int(d) < 0 for d in shape) or any(
                int(d) < 1 for i, d in enumerate(shape) if i != 8):
            raise ValueError(f"group_conv2d needs a shape {','.join(DIMS)}[,dilation] of non-negative integers "
                             f"(positive but for pad), got {','.join(map(str, shape))}")
        if dtype != "float32":
            raise ValueError(f"group_conv2d: dtype {dtype!r} is not supported yet (float32 only)")
        n, c, h, w, k, r, s, stride, pad, groups = (int(d) for d in shape[:10])
        dilation = int(shape[10]) if len(shape) == 11 else 1
        if h + 2 * pad < (r - 1) * dilation + 1 or w + 2 * pad < (s - 1) * dilation + 1:
            raise ValueError("group_conv2d: the kernel is larger than the padded input")
        try:
            group_layout(c, k, groups)
        except ValueError as error:
            raise ValueError(f"group_conv2d: {error}") from None
        return Workload.make(self.op, N=n, C=c, H=h, W=w, K=k, R=r, S=s, stride=stride, pad=pad, groups=groups,
                             dtype=dtype, **dilation_arg(dilation))

    def match(self, sch: s_tir.Schedule) -> Workload | None:
        """The annotated `group_conv2d_nchwc` block: a 5-D window read times a 6-D kernel read."""
        block = anchor_block(sch)
        if block is None:
            return None
        stmt = sch.get(block)
        groups = stmt.annotations.get(GROUPS_ATTR)
        if groups is None or len(stmt.reads) != 2 or len(stmt.iter_vars) != 9:
            return None
        data, kernel = (region.source for region in stmt.reads)
        if len(data.shape) != 5 or len(kernel.shape) != 6:
            return None
        window = window_coefficients([region.min for region in stmt.reads[0].region[2:4]],
                                     [iv.var for iv in stmt.iter_vars[2:4]], [iv.var for iv in stmt.iter_vars[6:8]])
        if window is None:
            return None
        kblocks, _, r, s, cb, kb = (int(d) for d in kernel.shape)
        n, cblocks, h, w, _ = (int(d) for d in data.shape)
        padded_h, pad = h, 0
        producer = producer_of(sch, block, data)
        if producer is not None:  # the padding stage: the function's input is its read
            n, cblocks, h, w, _ = (int(d) for d in sch.get(producer).reads[0].source.shape)
            pad = (padded_h - h) // 2
        try:
            wl = self.workload([n, cblocks * cb, h, w, kblocks * kb, r, s, window[0], pad, int(groups), window[1]],
                               str(stmt.writes[0].source.dtype))
        except ValueError:
            return None
        return wl if [int(d) for d in kernel.shape] == list(_kernel_shape(wl)) else None

    def compute(self, wl: Workload) -> tirx.PrimFunc:
        cb, kb, _ = group_layout(wl["C"], wl["K"], wl["groups"])
        data = te.placeholder((wl["N"], wl["C"] // cb, wl["H"], wl["W"], cb), wl["dtype"], name="data")
        kernel = te.placeholder(_kernel_shape(wl), wl["dtype"], name="kernel")
        out = group_conv2d_nchwc(data, kernel, wl["stride"], wl["pad"], wl["groups"], dilation_of(wl))
        return te.create_prim_func([data, kernel, out])

    def flops(self, wl: Workload) -> int:
        """The grouped conv's useful multiply-adds (not the zeros of the block-diagonal kernel)."""
        oh, ow = out_size(wl)
        return 2 * wl["N"] * wl["K"] * oh * ow * (wl["C"] // wl["groups"]) * wl["R"] * wl["S"]

    def make_inputs(self, wl: Workload, rng: np.random.Generator) -> list[np.ndarray]:
        cb = channel_block(wl["C"])
        data = rng.uniform(-1, 1, (wl["N"], wl["C"] // cb, wl["H"], wl["W"], cb)).astype(wl["dtype"])
        weight = rng.uniform(-1, 1, (wl["K"], wl["C"] // wl["groups"], wl["R"], wl["S"])).astype(wl["dtype"])
        return [data, pack_group_kernel(weight, wl["groups"])]

    def reference(self, wl: Workload, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Each output block from its nb input blocks (the compute's own reading, in numpy)."""
        data, kernel = inputs
        pad = wl["pad"]
        padded = np.pad(data, ((0, 0), (0, 0), (pad, pad), (pad, pad), (0, 0)))
        kblocks, nb, r, s, _, kb = kernel.shape
        oh, ow = out_size(wl)
        out = np.empty((wl["N"], kblocks, oh, ow, kb), data.dtype)
        for ko in range(kblocks):
            first = first_block(ko, wl["C"], wl["K"], wl["groups"])
            windows = conv_windows(padded[:, first:first + nb], r, s, wl["stride"], dilation_of(wl))  # n c y x ci r s
            out[:, ko] = np.einsum("ncyxirs,crsik->nyxk", windows, kernel[ko], optimize=True)
        return out


def _kernel_shape(wl: Workload) -> tuple[int, ...]:
    cb, kb, nb = group_layout(wl["C"], wl["K"], wl["groups"])
    return (wl["K"] // kb, nb, wl["R"], wl["S"], cb, kb)
