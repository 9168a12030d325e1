"""Matmul (A @ B) and dense (A @ B^T) on CPU: padded, B packed into panels, register-tiled.

Both are C[M, N] = sum_k A[M, K] * B'[K, N]; dense reads B as (N, K), as ONNX Gemm with
transB and TVM's dense do. The schedule:
1. pads M, N, K to whole tiles (`pad_einsum`; a no-op where they divide), so the inner
   kernel has no guards whatever the shape (prime sizes included);
2. packs B into panels Bp[j // nr, k, j % nr], so the inner kernel reads it contiguously;
3. tiles i into (i0, im, mr), j into (j0, jn, nr), k into (k0, ku), keeps the mr x nr
   accumulator tile in a local cache (`cache_write`), unrolls it and vectorizes nr in
   native-width pieces so LLVM keeps it in vector registers;
4. runs the fused outer (i0, j0) loop in parallel.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tvm import s_tir, te, tirx

from schedules.space import Config, ConfigSpace
from schedules.template import Template, Workload
from targets import Device

#: Vector registers the accumulator tile may take (AVX-512 and NEON both have 32).
MAX_ACCUMULATORS = 16


class MatmulCPU(Template):
    name = "matmul.cpu"
    op = "matmul"
    version = 2
    transpose_b = False

    def workload(self, shape: Sequence[int], dtype: str = "float32") -> Workload:
        if len(shape) != 3 or any(int(d) < 1 for d in shape):
            raise ValueError(f"{self.op} needs a shape M,N,K of three positive integers, got {','.join(map(str, shape))}")
        if dtype != "float32":
            raise ValueError(f"{self.op}: dtype {dtype!r} is not supported yet (float32 only)")
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
        space.define_split("tile_i", wl["M"], 3, max_factor=(16, 8))  # (i0, im, mr)
        space.define_split("tile_j", wl["N"], 3, max_factor=(8, 4 * lanes), min_factor=(1, lanes))  # (j0, jn, nr)
        space.define_split("tile_k", wl["K"], 2, max_factor=8)  # (k0, ku)
        space.define_knob("order", ["ij", "ji"])
        space.define_unroll("unroll", max_steps=(0, 64), explicit=(True,))
        if self.transpose_b:
            space.define_knob("pack", ["tile", "gather"])
        space.add_constraint(
            f"accumulator tile fits {MAX_ACCUMULATORS} vector registers",
            lambda c: c["tile_i"][2] * c["tile_j"][2] // lanes <= MAX_ACCUMULATORS,
        )
        return space

    def default_values(self, wl: Workload, device: Device, space: ConfigSpace) -> dict[str, Any]:
        """An 8 x 2-vector register tile in 16-row, 2-panel cache tiles, shrunk for small shapes."""
        lanes = device.vector_lanes(wl["dtype"])
        mr = min(8, _pow2_floor(wl["M"]))
        im = min(16, max(1, _pow2_floor(wl["M"] // mr)))
        nr = 2 * lanes if wl["N"] >= 2 * lanes else lanes
        jn = 2 if wl["N"] >= 2 * nr else 1
        ku = min(4, _pow2_floor(wl["K"]))
        values = {
            "tile_i": (-(-wl["M"] // (im * mr)), im, mr),
            "tile_j": (-(-wl["N"] // (jn * nr)), jn, nr),
            "tile_k": (-(-wl["K"] // ku), ku),
            "order": "ij",
            "unroll": (0, True),
        }
        if self.transpose_b:
            values["pack"] = "tile"
        return values

    def apply(self, sch: s_tir.Schedule, wl: Workload, cfg: Config, device: Device) -> None:
        lanes = device.vector_lanes(wl["dtype"])
        _, im, mr = cfg["tile_i"]
        _, jn, nr = cfg["tile_j"]
        _, ku = cfg["tile_k"]
        block = sch.get_sblock(self.op)
        # Whole tiles only: TVM 0.27 drops one of two write-back guards when
        # reverse_compute_at and reverse_compute_inline meet a partial tile.
        sch.pad_einsum(block, [im * mr, jn * nr, ku])
        blocks = {sch.get(b).name_hint: b for b in sch.get_child_blocks(sch.get_sblock("root"))}
        self._pack_b(sch, block, blocks.get("B_pad"), nr, cfg)
        if "A_pad" in blocks:
            rows, cols = sch.get_loops(blocks["A_pad"])
            cols_outer, cols_inner = sch.split(cols, [None, lanes])
            sch.parallel(sch.fuse(rows, cols_outer))
            sch.vectorize(cols_inner)

        i, j, k = sch.get_loops(block)
        i0, i1, i2 = sch.split(i, [None, im, mr])
        j0, j1, j2 = sch.split(j, [None, jn, nr])
        k0, k1 = sch.split(k, [None, ku])
        if cfg["order"] == "ij":
            sch.reorder(i0, j0, i1, j1, k0, k1, i2, j2)
            outer, tile = sch.fuse(i0, j0), j1
        else:
            sch.reorder(j0, i0, j1, i1, k0, k1, i2, j2)
            outer, tile = sch.fuse(j0, i0), i1
        write_back = sch.cache_write(block, 0, "local")
        sch.reverse_compute_at(write_back, tile)
        if f"{self.op}_pad" in blocks:  # copying out of the padded result folds into the write-back
            sch.reverse_compute_inline(blocks[f"{self.op}_pad"])
        sch.parallel(outer)
        step, explicit = cfg["unroll"]
        if step:
            sch.annotate(outer, "pragma_auto_unroll_max_step", step)
            sch.annotate(outer, "pragma_unroll_explicit", 1)
        if explicit:
            sch.unroll(k1)
            sch.unroll(i2)
        if nr > lanes:  # one native vector at a time: wider vector loops compile 10x slower code
            j2, vector = sch.split(j2, [None, lanes])
            sch.unroll(j2)
            sch.vectorize(vector)
        else:
            sch.vectorize(j2)
        init = sch.decompose_reduction(block, k0)
        sch.vectorize(sch.get_loops(init)[-1])
        sch.vectorize(sch.get_loops(write_back)[-1])

    def _pack_b(self, sch: s_tir.Schedule, block, b_pad, nr: int, cfg: Config) -> None:
        """Copy B into panels Bp[j // nr, k, j % nr] (reusing pad_einsum's copy when there is one)."""
        pack = b_pad if b_pad is not None else sch.cache_read(block, 1, "global")
        if self.transpose_b:
            sch.transform_layout(block, ("read", 1), lambda j, k: (j // nr, k, j % nr), pad_value=0.0)
        else:
            sch.transform_layout(block, ("read", 1), lambda k, j: (j // nr, k, j % nr), pad_value=0.0)
        loops = sch.get_loops(pack)
        if len(loops) == 2:  # transform_layout reorders the copy's loops only when it pads
            k, j = reversed(loops) if self.transpose_b else loops
            panel, j_inner = sch.split(j, [None, nr])
            sch.reorder(panel, k, j_inner)
            loops = [panel, k, j_inner]
        panel, k, j_inner = loops
        if self.transpose_b and cfg["pack"] == "tile":
            # B^T rows are contiguous in k: copy 16 x nr tiles, vectorized along k.
            k_outer, k_inner = sch.split(k, [None, 16])
            sch.reorder(panel, k_outer, j_inner, k_inner)
            sch.parallel(sch.fuse(panel, k_outer))
            sch.vectorize(k_inner)
        else:
            sch.parallel(sch.fuse(panel, k))
            sch.vectorize(j_inner)

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


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)
