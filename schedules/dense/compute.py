"""Matmul (A @ B), dense (A @ B^T) and batch_matmul: the computation every device family shares.

All are C[S, M, N] = sum_k A[S, M, K] * B'[S?, K, N]; dense reads B as (N, K), as ONNX
Gemm with transB and TVM's dense do; batch_matmul has a batch axis S on both sides (the
attention products of a transformer). In a model the same block comes with unit axes,
several batch axes and an epilogue (bias, GELU, residual add); the matcher
(`schedules.matching.match_gemm`) finds the GEMM in it. The schedules are beside this
module, one file per device family (`cpu.py`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tvm import s_tir, te, tirx

from schedules.matching import anchor_block, match_gemm
from schedules.template import Template, Workload


class MatmulCompute(Template):
    """C = A @ B (B^T for dense): workload, compute, matcher and reference."""

    op = "matmul"
    transpose_b = False
    #: Workload shape arguments, in the order `--shape` gives them.
    dims = ("M", "N", "K")

    def workload(self, shape: Sequence[int], dtype: str = "float32") -> Workload:
        if len(shape) != len(self.dims) or any(int(d) < 1 for d in shape):
            raise ValueError(f"{self.op} needs a shape {','.join(self.dims)} of {len(self.dims)} positive integers, "
                             f"got {','.join(map(str, shape))}")
        if dtype != "float32":
            raise ValueError(f"{self.op}: dtype {dtype!r} is not supported yet (float32 only)")
        return Workload.make(self.op, dtype=dtype, **{d: int(v) for d, v in zip(self.dims, shape)})

    def match(self, sch: s_tir.Schedule) -> Workload | None:
        block = anchor_block(sch)
        gemm = match_gemm(sch, block) if block is not None else None
        if gemm is None or gemm.batch != 1 or gemm.transpose_b != self.transpose_b:
            return None
        return Workload.make(self.op, M=gemm.m, N=gemm.n, K=gemm.k, dtype=_output_dtype(sch, block))

    def compute(self, wl: Workload) -> tirx.PrimFunc:
        a, b = self._placeholders(wl)
        r = te.reduce_axis((0, wl["K"]), name="k")
        if self.transpose_b:
            c = te.compute((wl["M"], wl["N"]), lambda i, j: te.sum(a[i, r] * b[j, r], axis=r), name=self.op)
        else:
            c = te.compute((wl["M"], wl["N"]), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name=self.op)
        # B stands for a model's weight: its pack is a layout rewrite, done once when a model is
        # compiled, and so not timed (`autotune.measure.candidate`)
        return te.create_prim_func([a, b, c]).with_attr("layout_free_buffers", [1])

    def _placeholders(self, wl: Workload) -> list[te.Tensor]:
        return [te.placeholder(shape, wl["dtype"], name=name) for name, shape in zip("AB", self._input_shapes(wl))]

    def _input_shapes(self, wl: Workload) -> list[tuple[int, ...]]:
        m, n, k = wl["M"], wl["N"], wl["K"]
        return [(m, k), (n, k) if self.transpose_b else (k, n)]

    def flops(self, wl: Workload) -> int:
        return 2 * dict(wl.args).get("B", 1) * wl["M"] * wl["N"] * wl["K"]

    def make_inputs(self, wl: Workload, rng: np.random.Generator) -> list[np.ndarray]:
        return [rng.uniform(-1, 1, shape).astype(wl["dtype"]) for shape in self._input_shapes(wl)]

    def reference(self, wl: Workload, inputs: Sequence[np.ndarray]) -> np.ndarray:
        a, b = inputs
        return a @ (np.swapaxes(b, -1, -2) if self.transpose_b else b)


class DenseCompute(MatmulCompute):
    op = "dense"
    transpose_b = True


class BatchMatmulCompute(MatmulCompute):
    """C[b] = A[b] @ B[b] (B stored K x N per batch, as attention's products reach it)."""

    op = "batch_matmul"
    dims = ("B", "M", "N", "K")

    def match(self, sch: s_tir.Schedule) -> Workload | None:
        block = anchor_block(sch)
        gemm = match_gemm(sch, block) if block is not None else None
        if gemm is None or gemm.batch == 1 or gemm.transpose_b:
            return None
        return Workload.make(self.op, B=gemm.batch, M=gemm.m, N=gemm.n, K=gemm.k, dtype=_output_dtype(sch, block))

    def compute(self, wl: Workload) -> tirx.PrimFunc:
        a, b = self._placeholders(wl)
        r = te.reduce_axis((0, wl["K"]), name="k")
        c = te.compute((wl["B"], wl["M"], wl["N"]), lambda s, i, j: te.sum(a[s, i, r] * b[s, r, j], axis=r), name=self.op)
        return te.create_prim_func([a, b, c])

    def _input_shapes(self, wl: Workload) -> list[tuple[int, ...]]:
        return [(wl["B"], wl["M"], wl["K"]), (wl["B"], wl["K"], wl["N"])]


def _output_dtype(sch: s_tir.Schedule, block) -> str:
    return str(sch.get(block).writes[0].source.dtype)
