"""conv2d on CPU in the blocked channel layout of `schedules.conv2d.compute`.

The inner kernel is a vector FMA per (output pixel, input channel). The schedule keeps an
(ohr x owr x kor) tile of output vectors in a local accumulator, reduces over (input
block, r, s, unrolled channels), pads in a stage of its own, runs (n, oh, ko) in parallel
(tiny convs on the calling thread: `schedules.threading.pays_for_threads`) and applies a
model's epilogue (bias, ReLU, residual add) in the accumulator's write-back. The tile is
counted in the core's vector registers (`schedules.registers`): on NEON, where a block of
16 channels takes four, a tile may cover part of the block (`tile_ki`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tvm import s_tir

from schedules.conv2d.compute import Conv2dCompute, channel_blocks, out_size
from schedules.default.cpu import schedule_leftover_blocks
from schedules.matching import anchor_block, producer_of
from schedules.registers import (accumulator_budget, define_sub_block, epilogue_per_task, register_tile, registers_of,
                                 sub_block, max_unroll, min_unroll, sub_blocks, tile_fits, write_back_at,
                                 vectorize_native)
from schedules.space import Config, ConfigSpace
from schedules.template import Workload
from schedules.threading import pays_for_threads
from targets import Device


class Conv2dCPU(Conv2dCompute):
    name = "conv2d_nchwc.cpu"
    family = "cpu"
    version = 2  # 2: convs of fewer than 32k multiply-adds run on the calling thread

    def upgrade_config(self, from_version: int, knobs: dict) -> dict | None:
        """v1's configs as they are (the space is the same); a tiny conv's logged time counted the pool's wake-up."""
        return dict(knobs) if from_version == 1 else None

    def define_space(self, wl: Workload, device: Device) -> ConfigSpace:
        cb, kb = channel_blocks(wl)
        oh, ow = out_size(wl)
        space = ConfigSpace()
        space.define_split("tile_ow", ow, 2, policy="factors", max_factor=16)
        space.define_split("tile_oh", oh, 2, policy="factors", max_factor=2)
        space.define_split("tile_ko", wl["K"] // kb, 2, policy="factors", max_factor=4)
        space.define_split("tile_ci", cb, 2, policy="factors", max_factor=max_unroll(device, 16),
                           min_factor=min_unroll(device, cb))
        space.define_knob("order", ["hk", "kh"])
        define_sub_block(space, kb, device, wl["dtype"])
        space.add_constraint(
            f"accumulator tile of at most {accumulator_budget(device)} vector registers, beside its operands",
            lambda c: tile_fits(device, c["tile_ow"][1] * c["tile_oh"][1], c["tile_ko"][1] * _registers(device, wl, c)),
        )
        return space

    def default_values(self, wl: Workload, device: Device, space: ConfigSpace) -> dict[str, Any]:
        """A 4-8 wide row of pixels times 2 output blocks, 4 input channels unrolled (measured near the best on AVX-512).

        Where that does not fit the registers (odd widths, NEON), the tile of most
        multiply-adds per loaded operand that fits: pixels x output blocks x part of a block.
        """
        cb, kb = channel_blocks(wl)
        oh, ow = out_size(wl)
        kblocks = wl["K"] // kb
        owr = next(d for d in (8, 7, 4, 14, 16, 2, 1) if ow % d == 0)
        kor, sub = (2 if kblocks % 2 == 0 else 1), kb
        if "tile_ki" in space.knobs:  # registers narrower than the block (NEON): the tile of most reuse that fits
            owr, kor, sub = register_tile(device, wl["dtype"], [w for w in range(1, 17) if ow % w == 0],
                                          [k for k in (1, 2) if kblocks % k == 0], sub_blocks(space, kb))
        elif owr < 4:  # odd widths (13, 27, 55): the widest tile of pixels x output blocks that fits the registers
            owr, kor = max(((w, k) for w in range(1, 17) for k in (2, 1) if ow % w == 0 and kblocks % k == 0
                            and tile_fits(device, w, k)), key=lambda t: (t[0] * t[1], t[1]))
        cu = next(d for d in (4, 3, 2, 1) if cb % d == 0)
        values = {"tile_ow": (ow // owr, owr), "tile_oh": (oh, 1), "tile_ko": (wl["K"] // kb // kor, kor),
                  "tile_ci": (cb // cu, cu), "order": "hk"}
        if "tile_ki" in space.knobs:
            values["tile_ki"] = (kb // sub, sub)
        return values

    def apply(self, sch: s_tir.Schedule, wl: Workload, cfg: Config, device: Device) -> None:
        _, kb = channel_blocks(wl)
        block = anchor_block(sch)
        pad = producer_of(sch, block, sch.get(block).reads[0].source)
        n, ko, oh, ow, ki, co, r, s, ci = sch.get_loops(block)
        ko0, ko1 = sch.split(ko, list(cfg["tile_ko"]))
        oh0, oh1 = sch.split(oh, list(cfg["tile_oh"]))
        ow0, ow1 = sch.split(ow, list(cfg["tile_ow"]))
        ci0, ci1 = sch.split(ci, list(cfg["tile_ci"]))
        outer = [n, oh0, ko0] if cfg["order"] == "hk" else [n, ko0, oh0]
        tile = [ow0]
        if sub_block(cfg, kb) < kb:  # the register tile computes part of each output block at a time
            ki0, ki = sch.split(ki, [None, sub_block(cfg, kb)])
            tile.append(ki0)
        sch.reorder(*outer, *tile, co, r, s, ci0, ci1, oh1, ow1, ko1, ki)
        write_back = sch.cache_write(block, 0, "local")
        leftovers, epilogue = write_back_at(sch, write_back, tile[-1], device)
        tasks = sch.fuse(*outer)
        threaded = pays_for_threads(self.flops(wl) // 2)
        if threaded:
            sch.parallel(tasks)
        epilogue_per_task(sch, epilogue, tasks, device, wl["dtype"])
        for loop in (ci1, oh1, ow1, ko1):
            sch.unroll(loop)
        sch.vectorize(ki)
        if pad is not None:
            pad_loops = sch.get_loops(pad)
            if threaded:
                sch.parallel(sch.fuse(*pad_loops[:3]))
            sch.vectorize(pad_loops[-1])
        init = sch.decompose_reduction(block, co)
        sch.vectorize(sch.get_loops(init)[-1])
        vectorize_native(sch, sch.get_loops(write_back)[-1], device, wl["dtype"])
        schedule_leftover_blocks(sch, leftovers, device.vector_lanes(wl["dtype"]))


def _registers(device: Device, wl: Workload, config: Mapping[str, Any]) -> int:
    """Registers of one output vector of the tile (its part of the output block)."""
    return registers_of(device, sub_block(config, channel_blocks(wl)[1]), wl["dtype"])
