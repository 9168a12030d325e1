"""Winograd F(2x2, 3x3) conv2d (`schedules.winograd.compute`) on CPU.

The batched GEMM of the 16 tile positions has a register tile of (mr tiles x nr output
vectors), as the matmul template does; the output transform drives the loop nest, with a
model's epilogue in its write. The `order` knob picks the parallel unit: blocks of tile
rows ("rows": the input transform of a block runs right before the GEMMs that read it,
still in cache) or blocks of output channels ("channels": the whole input transform
first; each block then reads its slice of U once, which wins when U is large: 4 MB for
256 channels).
"""
from __future__ import annotations

from typing import Any

from tvm import s_tir

from schedules.conv2d.compute import channel_block, out_size
from schedules.default.cpu import schedule_leftover_blocks
from schedules.matching import anchor_block, fuse_epilogue, producer_of
from schedules.registers import (accumulator_budget, define_sub_block, register_tile, registers_of, sub_block,
                                 max_unroll, min_unroll, sub_blocks, tile_fits, vectorize_native)
from schedules.space import Config, ConfigSpace
from schedules.template import Workload
from schedules.winograd.compute import Conv2dWinogradCompute
from targets import Device


class Conv2dWinogradCPU(Conv2dWinogradCompute):
    """conv2d by Winograd F(2x2, 3x3) on CPU."""

    name = "conv2d_winograd.cpu"
    family = "cpu"
    version = 1

    def define_space(self, wl: Workload, device: Device) -> ConfigSpace:
        oh, ow = out_size(wl)
        space = ConfigSpace()
        space.define_split("tile_ty", oh // 2, 2, policy="factors")  # (row blocks, tile rows per block)
        space.define_split("tile_tx", ow // 2, 2, policy="factors", max_factor=16)  # (.., mr tiles)
        space.define_split("tile_ko", wl["K"] // channel_block(wl["K"]), 2, policy="factors", max_factor=4)  # (.., nr)
        space.define_split("tile_c", wl["C"], 2, policy="factors", max_factor=max_unroll(device, 8),
                           min_factor=min_unroll(device, wl["C"]))  # (.., unrolled channels)
        space.define_knob("order", ["rows", "channels"])  # the parallel blocks: of tile rows, of output channels
        kb = channel_block(wl["K"])
        define_sub_block(space, kb, device, wl["dtype"])
        space.add_constraint(
            f"accumulator tile of at most {accumulator_budget(device)} vector registers, beside its operands",
            lambda c: tile_fits(device, c["tile_tx"][1], c["tile_ko"][1] * registers_of(device, sub_block(c, kb), wl["dtype"])),
        )
        return space

    def default_values(self, wl: Workload, device: Device, space: ConfigSpace) -> dict[str, Any]:
        """Two tile rows per block, 7 (or 8, 4, ..) tiles x 2 output vectors (measured near the best for ResNet's
        sizes on AVX-512); where a block spans several registers (NEON), the register tile of most reuse that fits."""
        oh, ow = out_size(wl)
        kb = channel_block(wl["K"])
        th, tw, kblocks = oh // 2, ow // 2, wl["K"] // kb
        rows = 2 if th % 2 == 0 else 1
        mr = next(d for d in (7, 8, 4, 6, 5, 3, 2, 1) if tw % d == 0)
        nr, sub = (2 if kblocks % 2 == 0 else 1), kb
        if "tile_ki" in space.knobs:
            mr, nr, sub = register_tile(device, wl["dtype"], [d for d in range(1, 17) if tw % d == 0],
                                        [k for k in (1, 2, 4) if kblocks % k == 0], sub_blocks(space, kb))
        cu = next(d for d in (4, 2, 1) if wl["C"] % d == 0)
        values = {"tile_ty": (th // rows, rows), "tile_tx": (tw // mr, mr), "tile_ko": (kblocks // nr, nr),
                  "tile_c": (wl["C"] // cu, cu), "order": "rows"}
        if "tile_ki" in space.knobs:
            values["tile_ki"] = (kb // sub, sub)
        return values

    def apply(self, sch: s_tir.Schedule, wl: Workload, cfg: Config, device: Device) -> None:
        gemm = anchor_block(sch)
        tiles = producer_of(sch, gemm, sch.get(gemm).reads[0].source)
        padding = producer_of(sch, tiles, sch.get(tiles).reads[0].source)
        (output,) = sch.get_consumers(gemm)
        leftovers = fuse_epilogue(sch, output)
        # The output transform drives the loop nest: per block of tile rows and of output vectors.
        sch.transform_block_layout(output, lambda b, ko, y, x, ki: (b, y // 2, ko, x // 2, y % 2, x % 2, ki))
        b, ty, ko, tx, i, j, ki = sch.get_loops(output)
        ty0, ty1 = sch.split(ty, list(cfg["tile_ty"]))
        ko0, ko1 = sch.split(ko, list(cfg["tile_ko"]))
        by_rows = cfg["order"] == "rows"
        sch.reorder(b, *((ty0, ko0) if by_rows else (ko0, ty0)), ty1, tx, ko1, i, j, ki)
        blocks = sch.fuse(b, ty0 if by_rows else ko0)
        sch.parallel(blocks)
        sch.unroll(i)
        sch.unroll(j)
        vectorize_native(sch, ki, device, wl["dtype"])
        # The GEMMs of a block right before its output transform, with a register tile.
        sch.compute_at(gemm, ko0 if by_rows else ty0, preserve_unit_loops=True)
        e, nu, _, gty, gtx, gko, gki, c = sch.get_loops(gemm)[-8:]
        tx0, mr = sch.split(gtx, list(cfg["tile_tx"]))
        c0, cu = sch.split(c, list(cfg["tile_c"]))
        tile = [tx0]
        kb = channel_block(wl["K"])
        if sub_block(cfg, kb) < kb:  # the register tile computes part of each output block at a time
            gki0, gki = sch.split(gki, [None, sub_block(cfg, kb)])
            tile.append(gki0)
        sch.reorder(e, nu, gty, *tile, c0, cu, mr, gko, gki)
        accumulator = sch.cache_write(gemm, 0, "local")
        sch.reverse_compute_at(accumulator, tile[-1], preserve_unit_loops=True)
        for loop in (cu, mr, gko):
            sch.unroll(loop)
        sch.vectorize(gki)
        init = sch.decompose_reduction(gemm, c0)
        sch.vectorize(sch.get_loops(init)[-1])
        vectorize_native(sch, sch.get_loops(accumulator)[-1], device, wl["dtype"])
        # The input transform: of a block of rows before its GEMMs ("rows"), or all of it first.
        if by_rows:
            sch.compute_at(tiles, blocks, preserve_unit_loops=True)
        e, nu, vb, vty, vtx, vc = sch.get_loops(tiles)[-6:]
        # One register of channels per tile transform: a 4x4 tile of 16-channel vectors is 64 NEON registers.
        lanes, piece = device.vector_lanes(wl["dtype"]), channel_block(wl["C"])
        vc0, vc1 = sch.split(vc, [None, lanes if piece > lanes and piece % lanes == 0 else piece])
        sch.reorder(vb, vty, vtx, vc0, e, nu, vc1)
        if not by_rows:
            sch.parallel(sch.fuse(vb, vty))
        sch.unroll(e)
        sch.unroll(nu)
        sch.vectorize(vc1)
        if padding is not None:
            pad_loops = sch.get_loops(padding)
            sch.parallel(sch.fuse(*pad_loops[:3]))
            sch.vectorize(pad_loops[-1])
        schedule_leftover_blocks(sch, leftovers, device.vector_lanes(wl["dtype"]))
