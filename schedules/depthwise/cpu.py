"""Depthwise conv2d (`schedules.depthwise.compute`) on CPU.

Every channel is its own convolution, so the kernel is memory-bound (2 * R * S flops per
output value): the schedule streams the data once. It keeps a (cor x ohr x owr) tile of
block-wide output vectors in a local accumulator, adds the R x S taps into it unrolled
(tap by tap over the tile, or pixel by pixel over the taps), runs (n, c-block,
oh-outer) in parallel in either order of the last two, and inlines the padding into the
convolution (measured faster here than a padded copy, in a stage of its own or per row
band, on every MobileNetV2 shape). A model's bias and ReLU6 are folded into the
accumulator's write-back.

An 8-channel block fills half an AVX-512 register. Packing 2 pixels x 8 channels into one
16-lane vector measured about 3x slower on MobileNetV3's 88-channel conv (the inlined
padding's bounds then differ between lanes, and the kernel index is lane % 8), so 8-wide
vectors it is, with the same knobs and default rule: on MobileNetV3 / ShuffleNet shapes no
other simple rule (2 rows, taps inside, 16 accumulators) was faster beyond the noise of
this shared machine.
"""
from __future__ import annotations

from typing import Any

from tvm import s_tir

from schedules.conv2d.compute import channel_block, out_size
from schedules.default.cpu import schedule_leftover_blocks
from schedules.depthwise.compute import DepthwiseConv2dCompute
from schedules.matching import anchor_block, fuse_epilogue
from schedules.registers import (accumulator_budget, epilogue_per_task, registers_of, tile_fits, tile_write_back,
                                 vectorize_native)
from schedules.space import Config, ConfigSpace
from schedules.template import Workload
from targets import Device


class DepthwiseConv2dCPU(DepthwiseConv2dCompute):
    name = "depthwise_conv2d_nchwc.cpu"
    family = "cpu"
    version = 1

    def define_space(self, wl: Workload, device: Device) -> ConfigSpace:
        oh, ow = out_size(wl)
        space = ConfigSpace()
        space.define_split("tile_ow", ow, 2, policy="factors", max_factor=16)
        # two rows of outputs read two rows of inputs per tap: on NEON more loads than registers
        space.define_split("tile_oh", oh, 2, policy="factors", max_factor=2 if device.core.fma_memory_operand else 1)
        space.define_split("tile_c", wl["C"] // channel_block(wl["C"]), 2, policy="factors", max_factor=4)
        space.define_knob("order", ["ch", "hc"])  # parallel loop: (n, c-block, oh) or (n, oh, c-block)
        space.define_knob("taps", ["outer", "inner"])  # (r, s) around the register tile, or inside it
        block_registers = registers_of(device, channel_block(wl["C"]), wl["dtype"])
        space.add_constraint(
            f"accumulator tile of at most {accumulator_budget(device)} vector registers, beside its operands",
            lambda c: tile_fits(device, c["tile_ow"][1] * c["tile_oh"][1], c["tile_c"][1] * block_registers),
        )
        return space

    def default_values(self, wl: Workload, device: Device, space: ConfigSpace) -> dict[str, Any]:
        """A row of about half the accumulator budget (8 pixels on AVX-512), 2 channel blocks on small planes.

        The row is the divisor of OW nearest that target (OW itself when it is prime and
        small); a plane of at most 14 x 14 outputs also takes two channel blocks, which
        gives a parallel task more work, where a block is one register (on NEON two blocks
        are 8 registers of kernel per tap: measured to spill).
        """
        oh, ow = out_size(wl)
        budget = _tile_budget(wl, device)
        target = max(1, budget // 2)
        owr = min((d for d in range(1, min(ow, budget) + 1) if ow % d == 0), key=lambda d: (abs(d - target), d))
        cblocks = wl["C"] // channel_block(wl["C"])
        one_register = registers_of(device, channel_block(wl["C"]), wl["dtype"]) == 1
        cor = 2 if one_register and oh * ow <= 196 and cblocks % 2 == 0 and 2 * owr <= budget else 1
        return {"tile_ow": (ow // owr, owr), "tile_oh": (oh, 1), "tile_c": (cblocks // cor, cor),
                "order": "ch", "taps": "outer"}

    def apply(self, sch: s_tir.Schedule, wl: Workload, cfg: Config, device: Device) -> None:
        block = anchor_block(sch)
        for producer in sch.get_producers(block):  # the padding: read in place, no copy
            sch.compute_inline(producer)
        n, c, oh, ow, ci, r, s = sch.get_loops(block)
        c0, c1 = sch.split(c, list(cfg["tile_c"]))
        oh0, oh1 = sch.split(oh, list(cfg["tile_oh"]))
        ow0, ow1 = sch.split(ow, list(cfg["tile_ow"]))
        outer = [n, c0, oh0] if cfg["order"] == "ch" else [n, oh0, c0]
        if cfg["taps"] == "outer":  # each tap is added to the whole tile (the kernel vector is reused)
            sch.reorder(*outer, ow0, r, s, c1, oh1, ow1, ci)
        else:  # each output vector takes all its taps in turn
            sch.reorder(*outer, ow0, c1, oh1, ow1, r, s, ci)
        write_back = sch.cache_write(block, 0, "local")
        leftovers = fuse_epilogue(sch, write_back)
        write_back, epilogue = tile_write_back(sch, write_back, device)
        sch.reverse_compute_at(write_back, ow0)
        task = sch.fuse(*outer)
        sch.parallel(task)
        epilogue_per_task(sch, epilogue, task, device, wl["dtype"])
        # Rows of taps stay a loop where a block spans several registers: fully unrolled, LLVM
        # loads every tap's kernel registers up front and spills them (NEON has no FMA with a
        # memory operand; AVX-512 folds those loads into its FMAs).
        unrolled = (r, s) if registers_of(device, channel_block(wl["C"]), wl["dtype"]) == 1 else (s,)
        for loop in (*unrolled, c1, oh1, ow1):
            sch.unroll(loop)
        sch.vectorize(ci)
        init = sch.decompose_reduction(block, r)
        sch.vectorize(sch.get_loops(init)[-1])
        vectorize_native(sch, sch.get_loops(write_back)[-1], device, wl["dtype"])
        schedule_leftover_blocks(sch, leftovers, device.vector_lanes(wl["dtype"]))

def _tile_budget(wl: Workload, device: Device) -> int:
    """Output pixels of one channel block the accumulator tile may hold."""
    return max(1, accumulator_budget(device) // registers_of(device, channel_block(wl["C"]), wl["dtype"]))
