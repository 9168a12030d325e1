"""Matmul, dense and batch_matmul (`schedules.dense.compute`) on CPU: padded, B packed, register-tiled.

The schedule first rewrites the block's iteration to the canonical (s, i, j, k), so one
schedule serves the template's own PrimFunc and a model's fused one. Then it
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

from typing import Any

from tvm import s_tir, tirx
from tvm.s_tir.schedule import SBlockRV

from schedules.default.cpu import schedule_leftover_blocks
from schedules.dense.compute import BatchMatmulCompute, DenseCompute, MatmulCompute
from schedules.matching import (
    LAYOUT_REWRITE_PREPROC, anchor_block, canonicalize_gemm, pad_gemm, reads_layout_free_param, top_blocks,
)
from schedules.registers import accumulator_budget, epilogue_per_task, tile_fits, write_back_at, vectorize_native
from schedules.space import Config, ConfigSpace
from schedules.template import Workload
from targets import Device


class MatmulCPU(MatmulCompute):
    name = "matmul.cpu"
    family = "cpu"
    version = 2

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
        leftovers, epilogue = write_back_at(sch, write_back, tile, device)
        sch.parallel(outer)
        epilogue_per_task(sch, epilogue, outer, device, wl["dtype"])
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

class DenseCPU(DenseCompute, MatmulCPU):
    name = "dense.cpu"
    family = "cpu"
    version = 2


class BatchMatmulCPU(BatchMatmulCompute, MatmulCPU):
    """C[b] = A[b] @ B[b] on CPU, with the matmul's schedule."""

    name = "batch_matmul.cpu"
    family = "cpu"
    version = 1


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)
