"""Matmul (A @ B), dense (A @ B^T) and batch_matmul on CPU: padded, B packed, register-tiled.

All are C[S, M, N] = sum_k A[S, M, K] * B'[S?, K, N]; dense reads B as (N, K), as ONNX
Gemm with transB and TVM's dense do; batch_matmul has a batch axis S on both sides (the
attention products of a transformer). In a model the same block comes with unit axes,
several batch axes and an epilogue (bias, GELU, residual add): the schedule first
rewrites the block's iteration to the canonical (s, i, j, k), so one schedule serves the
template's own PrimFunc and the model's fused one. The schedule:
1. pads M, N, K to whole tiles (`pad_einsum`, only where they do not divide), so the inner
   kernel has no guards whatever the shape (prime sizes included);
2. packs B into panels Bp[j // nr, k, j % nr], so the inner kernel reads it contiguously
   (marked as a layout rewrite when B is a model's weight, so compiling the model packs
   it once: `autotune.compile.prepack_weights`);
3. tiles i into (i0, im, mr), j into (j0, jn, nr), k into (k0, ku), keeps the mr x nr
   accumulator tile in a local cache (`cache_write`), unrolls it and vectorizes nr in
   native-width pieces so LLVM keeps it in vector registers;
4. folds the epilogue into the accumulator's write-back (`fuse_epilogue`);
5. runs the fused outer (s, i0, j0) loop in parallel.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tvm import s_tir, te, tirx
from tvm.s_tir.schedule import SBlockRV

from schedules.default import schedule_leftover_blocks
from schedules.matching import (
    LAYOUT_REWRITE_PREPROC, anchor_block, canonicalize_gemm, fuse_epilogue, match_gemm, pad_gemm, reads_layout_free_param,
    top_blocks,
)
from schedules.registers import accumulator_budget, tile_fits, vectorize_native
from schedules.space import Config, ConfigSpace
from schedules.template import Template, Workload
from targets import Device



class MatmulCPU(Template):
    name = "matmul.cpu"
    op = "matmul"
    version = 2
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
            f"accumulator tile fits {accumulator_budget(device)} vector registers, beside its operands",
            lambda c: tile_fits(device, c["tile_i"][2], c["tile_j"][2] // lanes),
        )
        return space

    def default_values(self, wl: Workload, device: Device, space: ConfigSpace) -> dict[str, Any]:
        """An 8 x 2-vector register tile in 16-row, 2-panel cache tiles, shrunk for small shapes."""
        lanes = device.vector_lanes(wl["dtype"])
        mr = min(8, _pow2_floor(wl["M"]))
        # the tallest cache tile (16 register tiles) whose padding wastes little of M (197 rows: 208, not 256)
        im = next(im for im in (16, 8, 4, 2, 1) if im == 1 or -(-wl["M"] // (im * mr)) * im * mr <= 1.07 * wl["M"])
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
        block = anchor_block(sch)
        # Whole tiles only: TVM 0.27 drops one of two write-back guards when
        # reverse_compute_at and reverse_compute_inline meet a partial tile.
        before = {sch.get(b).name_hint for b in top_blocks(sch)}
        if wl["M"] % (im * mr) or wl["N"] % (jn * nr) or wl["K"] % ku:
            pad_gemm(sch, block, im * mr, jn * nr, ku)
        canonicalize_gemm(sch, block)
        pads = {sch.get(b).writes[0].source.name: b for b in top_blocks(sch) if sch.get(b).name_hint not in before}
        a_read, b_read = (region.source.name for region in sch.get(block).reads)
        pack = self._pack_b(sch, block, pads.get(b_read), nr, cfg)
        if reads_layout_free_param(sch, pack):  # a model's weight: packed once, when the model is compiled
            sch.annotate(pack, LAYOUT_REWRITE_PREPROC, 1)
        if a_read in pads:
            *rows, cols = sch.get_loops(pads[a_read])
            cols_outer, cols_inner = sch.split(cols, [None, lanes])
            sch.parallel(sch.fuse(*rows, cols_outer))
            sch.vectorize(cols_inner)

        s, i, j, k = sch.get_loops(block)
        i0, i1, i2 = sch.split(i, [None, im, mr])
        j0, j1, j2 = sch.split(j, [None, jn, nr])
        k0, k1 = sch.split(k, [None, ku])
        if cfg["order"] == "ij":
            sch.reorder(s, i0, j0, i1, j1, k0, k1, i2, j2)
            outer, tile = sch.fuse(s, i0, j0), j1
        else:
            sch.reorder(s, j0, i0, j1, i1, k0, k1, i2, j2)
            outer, tile = sch.fuse(s, j0, i0), i1
        write_back = sch.cache_write(block, 0, "local")
        sch.reverse_compute_at(write_back, tile)
        leftovers = fuse_epilogue(sch, write_back)
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
        vectorize_native(sch, sch.get_loops(write_back)[-1], device, wl["dtype"])
        schedule_leftover_blocks(sch, leftovers, lanes)

    def _pack_b(self, sch: s_tir.Schedule, block, b_pad, nr: int, cfg: Config) -> SBlockRV:
        """Copy B into panels Bp[.., j // nr, k, j % nr] (reusing pad_einsum's copy when there is one); the copy's block."""
        pack = b_pad if b_pad is not None else sch.cache_read(block, 1, "global")
        shape = sch.get(pack).writes[0].source.shape
        ndim = len(shape)
        transpose_b = self.transpose_b

        def panels(*index):
            *lead, row, col = index
            k, j = (col, row) if transpose_b else (row, col)
            return (*lead, j // nr, k, j % nr)

        sch.transform_layout(block, ("read", 1), tirx.IndexMap.from_func(panels, ndim=ndim, index_dtype=str(shape[0].ty)), pad_value=0.0)
        pack_loops = sch.get_loops(pack)
        lead, loops = pack_loops[: ndim - 2], pack_loops[ndim - 2:]
        if len(loops) == 2:  # transform_layout reorders the copy's loops only when it pads
            k, j = reversed(loops) if transpose_b else loops
            panel, j_inner = sch.split(j, [None, nr])
            sch.reorder(panel, k, j_inner)
            loops = [panel, k, j_inner]
        panel, k, j_inner = loops
        if transpose_b and cfg["pack"] == "tile":
            # B^T rows are contiguous in k: copy 16 x nr tiles, vectorized along k.
            k_outer, k_inner = sch.split(k, [None, 16])
            sch.reorder(panel, k_outer, j_inner, k_inner)
            sch.parallel(sch.fuse(*lead, panel, k_outer))
            sch.vectorize(k_inner)
        else:
            sch.parallel(sch.fuse(*lead, panel, k))
            sch.vectorize(j_inner)
        return pack

    def flops(self, wl: Workload) -> int:
        return 2 * dict(wl.args).get("B", 1) * wl["M"] * wl["N"] * wl["K"]

    def make_inputs(self, wl: Workload, rng: np.random.Generator) -> list[np.ndarray]:
        return [rng.uniform(-1, 1, shape).astype(wl["dtype"]) for shape in self._input_shapes(wl)]

    def reference(self, wl: Workload, inputs: Sequence[np.ndarray]) -> np.ndarray:
        a, b = inputs
        return a @ (np.swapaxes(b, -1, -2) if self.transpose_b else b)


class DenseCPU(MatmulCPU):
    name = "dense.cpu"
    op = "dense"
    transpose_b = True


class BatchMatmulCPU(MatmulCPU):
    """C[b] = A[b] @ B[b] (B stored K x N per batch, as attention's products reach it)."""

    name = "batch_matmul.cpu"
    op = "batch_matmul"
    version = 1
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


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)
