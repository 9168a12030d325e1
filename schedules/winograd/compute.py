"""3x3 stride-1 conv2d by Winograd's minimal filtering F(2x2, 3x3), in the blocked layout: the computation.

Each 2x2 output tile is `A^T [sum_c (G g G^T) . (B^T d B)] A`: 16 multiplies per tile and
channel pair instead of 36, so 2.25x fewer than the direct convolution (`schedules.conv2d`). The
kernel transform U = G g G^T runs once at compile time (`winograd_kernel`, folded into a
model's constants), so the operator takes U: [4, 4, K/kb, C, kb]. One call:
1. pads the input (the convolution's own padding) and transforms each 4x4 input tile,
   V = B^T d B;
2. multiplies, for each of the 16 tile positions, V [tiles, C] by U [C, K]: a batched GEMM;
3. transforms each 4x4 product back to a 2x2 output tile, Y = A^T M A, with a model's
   epilogue (bias, ReLU, residual add) in the same write.
The schedules are beside this module, one file per device family (`cpu.py`).

F(2x2, 3x3) uses only 0, +-1 and 1/2 as coefficients, so it is as exact as the direct
convolution up to the order of the sums (F(4x4, 3x3) would save more multiplies but loses
about two digits in float32). Only even output sizes are served (ResNet's 56, 28, 14): a
tile then never crosses the border, and the output transform's loop nest maps onto tiles.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from tvm import s_tir, te, tirx

from schedules.conv2d.compute import Conv2dCompute, channel_block, dilation_of, out_size, pad_nchwc
from schedules.matching import anchor_block, producer_of
from schedules.template import Workload


# F(2x2, 3x3) (Lavin & Gray): B^T (4x4) transforms input tiles, G (4x3) kernels, A^T (2x4) products.
# TVM derives equivalent ones (topi.nn.winograd_util) but only as TE constant tensors or
# private helpers; the numpy forms here serve the TE expressions, the kernel transform and the reference.
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def _rows(matrix: np.ndarray, row: tirx.PrimExpr, column: Callable[[int], tirx.PrimExpr]) -> tirx.PrimExpr:
    """(matrix @ x)[row] for a symbolic row, x given element-wise: one sum of +-x (or halves) per row.

    Written out as a select over rows, not as a reduction, so every transform stays an
    elementwise block; once the schedule unrolls the row loop the select folds away and
    no multiply by 0 or 1 is left.
    """
    def row_sum(r: int) -> tirx.PrimExpr:
        total = None
        for j, coef in enumerate(matrix[r]):
            if not coef:
                continue
            value = column(j) if abs(coef) == 1 else column(j) * float(abs(coef))
            if total is None:
                total = value if coef > 0 else -value
            else:
                total = total + value if coef > 0 else total - value
        return total

    expr = row_sum(len(matrix) - 1)
    for r in range(len(matrix) - 2, -1, -1):
        expr = tirx.Select(row == r, row_sum(r), expr)
    return expr


def winograd_kernel(kernel: te.Tensor) -> te.Tensor:
    """U = G g G^T of a blocked 3x3 kernel [K/kb, C/cb, 3, 3, cb, kb], as [4, 4, K/kb, C, kb]."""
    kblocks, cblocks, _, _, cb, kb = (int(d) for d in kernel.shape)
    return te.compute(
        (4, 4, kblocks, cblocks * cb, kb),
        lambda e, nu, ko, c, ki: _rows(G, e, lambda r: _rows(G, nu, lambda s: kernel[ko, c // cb, r, s, c % cb, ki])),
        name="winograd_kernel",
    )


def winograd_kernel_numpy(kernel: np.ndarray) -> np.ndarray:
    """`winograd_kernel` in numpy (float64 inside): for tests and for the template's inputs."""
    kblocks, cblocks, _, _, cb, kb = kernel.shape
    u = np.einsum("er,kcrsix,ns->enkcix", G, kernel.astype(np.float64), G)
    return u.reshape(4, 4, kblocks, cblocks * cb, kb).astype(kernel.dtype)


def conv2d_winograd_nchwc(data: te.Tensor, kernel: te.Tensor, pad: int) -> te.Tensor:
    """The blocked 3x3 stride-1 conv2d of `data` [N, C/cb, H, W, cb] with a transformed kernel.

    `kernel` is `winograd_kernel` of the blocked kernel; the output is [N, K/kb, OH, OW, kb].
    A model's lowering and the template both compute with this.
    """
    n, cblocks, h, w, cb = (int(d) for d in data.shape)
    _, _, kblocks, channels, kb = (int(d) for d in kernel.shape)
    oh, ow = h + 2 * pad - 2, w + 2 * pad - 2
    if oh % 2 or ow % 2:
        raise ValueError(f"Winograd F(2x2, 3x3) needs an even output size, got {oh}x{ow}")
    th, tw = oh // 2, ow // 2
    padded = pad_nchwc(data, pad)
    tiles = te.compute(
        (4, 4, n, th, tw, channels),
        lambda e, nu, b, ty, tx, c: _rows(B_T, e, lambda y: _rows(
            B_T, nu, lambda x: padded[b, c // cb, ty * 2 + y, tx * 2 + x, c % cb])),
        name="input_tile",
    )
    c = te.reduce_axis((0, channels), name="c")
    products = te.compute(
        (4, 4, n, th, tw, kblocks, kb),
        lambda e, nu, b, ty, tx, ko, ki: te.sum(tiles[e, nu, b, ty, tx, c] * kernel[e, nu, ko, c, ki], axis=c),
        name="winograd_gemm",
    )
    return te.compute(
        (n, kblocks, oh, ow, kb),
        lambda b, ko, y, x, ki: _rows(A_T, y % 2, lambda e: _rows(
            A_T, x % 2, lambda nu: products[e, nu, b, y // 2, x // 2, ko, ki])),
        name="output_tile",
    )


def winograd_applies(wl: Workload) -> bool:
    """Whether a conv2d workload can be computed by this template: 3x3, stride 1, even output."""
    oh, ow = out_size(wl)
    return (wl["R"], wl["S"], wl["stride"], dilation_of(wl)) == (3, 3, 1, 1) and oh % 2 == 0 and ow % 2 == 0


class Conv2dWinogradCompute(Conv2dCompute):
    """conv2d by Winograd F(2x2, 3x3); the same workload arguments as the direct conv2d."""

    op = "conv2d_winograd"
    alternative_to = "conv2d"

    def serves(self, wl: Workload) -> bool:
        return wl.op == self.alternative_to and winograd_applies(wl)

    def workload(self, shape: Sequence[int], dtype: str = "float32") -> Workload:
        wl = super().workload(shape, dtype)
        if not winograd_applies(wl):
            oh, ow = out_size(wl)
            raise ValueError("conv2d_winograd: needs a 3x3 kernel, stride 1 and an even output size, "
                             f"got {wl['R']}x{wl['S']}, stride {wl['stride']}, output {oh}x{ow}")
        return wl

    def match(self, sch: s_tir.Schedule) -> Workload | None:
        """A GEMM reading 6-D input tiles (of the input, or of its padding stage) and a 5-D transformed kernel."""
        block = anchor_block(sch)
        if block is None:
            return None
        stmt = sch.get(block)
        if len(stmt.reads) != 2 or len(stmt.iter_vars) != 8:
            return None
        tiles, kernel = (region.source for region in stmt.reads)
        if len(tiles.shape) != 6 or len(kernel.shape) != 5 or [int(d) for d in kernel.shape[:2]] != [4, 4]:
            return None
        transform = producer_of(sch, block, tiles)
        if transform is None:
            return None
        padded = sch.get(transform).reads[0].source
        padding = producer_of(sch, transform, padded)
        data = sch.get(padding).reads[0].source if padding is not None else padded
        if len(data.shape) != 5:
            return None
        n, cblocks, h, w, cb = (int(d) for d in data.shape)
        _, _, kblocks, channels, kb = (int(d) for d in kernel.shape)
        if cblocks * cb != channels or (channel_block(channels), channel_block(kblocks * kb)) != (cb, kb):
            return None
        return Workload.make(self.op, N=n, C=channels, H=h, W=w, K=kblocks * kb, R=3, S=3, stride=1,
                             pad=(int(padded.shape[2]) - h) // 2, dtype=str(stmt.writes[0].source.dtype))

    def compute(self, wl: Workload) -> tirx.PrimFunc:
        cb, kb = channel_block(wl["C"]), channel_block(wl["K"])
        data = te.placeholder((wl["N"], wl["C"] // cb, wl["H"], wl["W"], cb), wl["dtype"], name="data")
        kernel = te.placeholder((4, 4, wl["K"] // kb, wl["C"], kb), wl["dtype"], name="kernel")
        return te.create_prim_func([data, kernel, conv2d_winograd_nchwc(data, kernel, wl["pad"])])

    def make_inputs(self, wl: Workload, rng: np.random.Generator) -> list[np.ndarray]:
        data, kernel = super().make_inputs(wl, rng)
        return [data, winograd_kernel_numpy(kernel)]

    def reference(self, wl: Workload, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """The convolution with the kernel recovered from U (G has a left inverse), by the direct reference."""
        data, u = inputs
        kb = u.shape[4]
        cb = data.shape[4]
        g_inverse = np.linalg.pinv(G)
        kernel = np.einsum("re,enkcx,sn->kcrsx", g_inverse, u.astype(np.float64), g_inverse)  # [K/kb, C, 3, 3, kb]
        kblocks, channels = kernel.shape[:2]
        blocked = kernel.reshape(kblocks, channels // cb, cb, 3, 3, kb).transpose(0, 1, 3, 4, 2, 5)
        return super().reference(wl, [data.astype(np.float64), blocked]).astype(data.dtype)
