"""Matmul (A @ B) and dense (A @ B^T) on CPU: register-tiled, vectorized, parallel.

Both are C[M, N] = sum_k A[M, K] * B'[K, N]; dense reads B as (N, K), as ONNX Gemm with
transB and TVM's dense do. The schedule keeps an accumulator tile in a local cache
(cache_write) that LLVM promotes to vector registers when the tile is unrolled.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tvm import s_tir, te, tirx

from schedules.space import Config, ConfigSpace
from schedules.template import Template, Workload
from targets import Device


class MatmulCPU(Template):
    name = "matmul.cpu"
    op = "matmul"
    version = 1
    transpose_b = False

    def workload(self, shape: Sequence[int], dtype: str = "float32") -> Workload:
        if len(shape) != 3 or any(int(d) < 1 for d in shape):
            raise ValueError(f"{self.op} needs a shape M,N,K of three positive integers, got {','.join(map(str, shape))}")
        m, n, k = (int(d) for d in shape)
        return Workload.make(self.op, M=m, N=n, K=k, dtype=dtype)

    def compute(self, wl: Workload) -> tirx.PrimFunc:
        m, n, k, dtype = wl["M"], wl["N"], wl["K"], wl["dtype"]
        a = te.placeholder((m, k), dtype, name="A")
        b = te.placeholder((n, k) if self.transpose_b else (k, n), dtype, name="B")
        r = te.reduce_axis((0, k), name="k")
        if self.transpose_b:
            c = te.compute((m, n), lambda i, j: te.sum(a[i, r] * b[j, r], axis=r), name=self.op)
        else:
            c = te.compute((m, n), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name=self.op)
        return te.create_prim_func([a, b, c])

    def define_space(self, wl: Workload, device: Device) -> ConfigSpace:
        lanes = device.vector_lanes(wl["dtype"])
        space = ConfigSpace()
        space.define_split("tile_i", wl["M"], 3, max_factor=64)
        space.define_split("tile_j", wl["N"], 3, max_factor=4 * lanes)
        space.define_split("tile_k", wl["K"], 2, max_factor=256)
        space.define_unroll("unroll", max_steps=(0, 16, 64, 512))
        space.add_constraint("register tile of at most 32 vectors", lambda c: c["tile_i"][2] * c["tile_j"][2] <= 32 * lanes)
        return space

    def default_values(self, wl: Workload, device: Device, space: ConfigSpace) -> dict[str, Any]:
        lanes = device.vector_lanes(wl["dtype"])
        return {
            "tile_i": _closest(space, "tile_i", (None, 8, 4)),
            "tile_j": _closest(space, "tile_j", (None, 2, 2 * lanes)),
            "tile_k": _closest(space, "tile_k", (None, 4)),
            "unroll": (64, True),
        }

    def apply(self, sch: s_tir.Schedule, wl: Workload, cfg: Config, device: Device) -> None:
        block = sch.get_sblock(self.op)
        i, j, k = sch.get_loops(block)
        i0, i1, i2 = sch.split(i, list(cfg["tile_i"]))
        j0, j1, j2 = sch.split(j, list(cfg["tile_j"]))
        k0, k1 = sch.split(k, list(cfg["tile_k"]))
        sch.reorder(i0, j0, i1, j1, k0, k1, i2, j2)
        write_back = sch.cache_write(block, 0, "local")
        sch.reverse_compute_at(write_back, j1)
        outer = sch.fuse(i0, j0)
        sch.parallel(outer)
        if cfg["tile_j"][2] > 1:
            sch.vectorize(j2)
        step, explicit = cfg["unroll"]
        if explicit and cfg["tile_i"][2] > 1:
            sch.unroll(i2)
        if step:
            sch.annotate(outer, "pragma_auto_unroll_max_step", step)
            sch.annotate(outer, "pragma_unroll_explicit", 1)
        sch.decompose_reduction(block, k0)
        own_loops = sch.get_loops(write_back)[3:]  # below (fused i0.j0, i1, j1)
        if own_loops and cfg["tile_j"][2] > 1:
            sch.vectorize(own_loops[-1])

    def flops(self, wl: Workload) -> int:
        return 2 * wl["M"] * wl["N"] * wl["K"]

    def make_inputs(self, wl: Workload, rng: np.random.Generator) -> list[np.ndarray]:
        m, n, k, dtype = wl["M"], wl["N"], wl["K"], wl["dtype"]
        b_shape = (n, k) if self.transpose_b else (k, n)
        return [rng.uniform(-1, 1, (m, k)).astype(dtype), rng.uniform(-1, 1, b_shape).astype(dtype)]

    def reference(self, wl: Workload, inputs: Sequence[np.ndarray]) -> np.ndarray:
        a, b = inputs
        return a @ (b.T if self.transpose_b else b)


class DenseCPU(MatmulCPU):
    name = "dense.cpu"
    op = "dense"
    transpose_b = True


def _closest(space: ConfigSpace, name: str, wanted: tuple) -> tuple:
    """The candidate of split `name` whose inner factors are nearest (in log scale) to `wanted`."""
    def distance(candidate: tuple) -> float:
        return sum(abs(np.log2(c) - np.log2(w)) for c, w in zip(candidate[1:], wanted[1:]))

    return min(space.knobs[name].candidates, key=distance)
