"""conv2d on OpenCL GPUs (Mali, Adreno) in the blocked channel layout of `schedules.conv2d.compute`.

The computation, workload, matcher and numpy reference are the CPU template's own: data
[N, C/cb, H, W, cb], kernel [K/kb, C/cb, R, S, cb, kb], output [N, K/kb, OH, OW, kb], the
blocks 16 or 8 wherever the channels allow (`channel_block`), so a float4 (an Adreno texel)
is a quarter or half of a block and every vector access is contiguous. The schedule
(`OpenCLConvSchedule`, shared with `schedules.depthwise.opencl`) is a direct convolution:

1. each work item computes a tile of c_r output blocks x kv lanes of a block x rows x
   columns (`tile_c`, `tile_ki`, `tile_oh`, `tile_ow`: (work groups, threads, per thread);
   the lanes' split is (threads, per thread)) in registers (`cache_write` "local"), the
   model's epilogue (bias, ReLU, residual add) folded into its store;
2. the work group is (columns, rows, channel) threads, bound to threadIdx.x/y/z; the
   tiles of a launch to blockIdx.x/y and (batch, channel blocks) to blockIdx.z;
3. the kv lanes are vectors of `vector` lanes: the kernel is read and the output stored
   as float4 (float2, float8), the data value broadcast; input channels unrolled by
   `tile_ci`, the taps optionally (`unroll_taps`);
4. padding is read in place with a bound check (`pad` "inline", the direct conv) or
   copied first into a padded buffer by a kernel of its own ("stage", as a spatial pack:
   the convolution's reads then need no check);
5. 1x1 convs are GEMMs (pixels x output channels, reduced over input channels): their
   rows and columns are one axis of pixels (`tile_p`), so a 7x7 plane is 49 pixels in
   tiles of 4 or 8 rather than 7 rows of 7.

No `__local` memory: on Mali it is main memory. Every config keeps within the GPU spec:
threads per work group at most the preset's, the accumulators at most half a Mali thread's
64 registers and accumulators plus one step's operands at most all of them. Spatial and
channel-block splits are powers of two (edges are guarded); the default work group is
the rule's (`schedules.workgroup`) for the default tile's global size.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tvm import s_tir, tirx
from tvm.s_tir.schedule import LoopRV, SBlockRV

from schedules.conv2d.compute import Conv2dCompute, channel_blocks, out_size
from schedules.matching import anchor_block, fuse_epilogue, producer_of, top_blocks
from schedules.opencl_common import (VECTOR_WIDTHS, bind_elementwise, gpu_of, pow2_floor, pow2_work_group,
                                     register_budget, vectorize_inner)
from schedules.space import Config, ConfigSpace
from schedules.template import Workload
from targets import Device

#: Largest (threads, per-thread) factors of each split: channel blocks, rows, columns, pixels of a 1x1 conv.
MAX_FACTORS = {"tile_c": (64, 4), "tile_oh": (32, 4), "tile_ow": (64, 8), "tile_p": (256, 8)}


def accumulator_words(c: Config | dict) -> int:
    """32-bit registers of a work item's accumulator tile."""
    return c["tile_c"][2] * c["tile_ki"][1] * math.prod(c[name][2] for name in _pixel_knobs(c))


def operand_words(c: Config | dict) -> int:
    """Registers of one reduction step's operands: the kernel's vectors and the data values of the tile."""
    return c["tile_c"][2] * c["tile_ki"][1] + math.prod(c[name][2] for name in _pixel_knobs(c))


def work_group_threads(c: Config | dict) -> int:
    """Threads of the anchor's work group: channel blocks x lanes x pixels."""
    return c["tile_c"][1] * c["tile_ki"][0] * math.prod(c[name][1] for name in _pixel_knobs(c))


def _pixel_knobs(c) -> tuple[str, ...]:
    """The pixel splits, x first: columns then rows, or the pixels of a 1x1 conv."""
    return ("tile_p",) if "tile_p" in c else ("tile_ow", "tile_oh")


class OpenCLConvSchedule:
    """The OpenCL schedule of a direct convolution in NCHW[x]c, mixed in before its computation.

    The anchor block's loops are (n, output block, oh, ow, lane, *reduction); subclasses say
    what the output blocks are (`out_channels`), and split, order and unroll the reduction.
    """

    family = "opencl"
    version = 1

    def out_channels(self, wl: Workload) -> tuple[int, int]:
        """(output channel blocks, lanes per block)."""
        raise NotImplementedError

    def define_reduction(self, space: ConfigSpace, wl: Workload) -> None:
        """The reduction's knobs (`unroll_taps` is every subclass's)."""
        space.define_knob("unroll_taps", [True, False])

    def default_reduction(self, wl: Workload) -> dict[str, Any]:
        return {"unroll_taps": wl["R"] * wl["S"] <= 25}

    def split_reduction(self, sch: s_tir.Schedule, loops: Sequence[LoopRV], cfg: Config) -> tuple[list[LoopRV], list[LoopRV]]:
        """(the reduction loops in order, those of them to unroll); the tile's loops go inside them all."""
        return list(loops), list(loops) if cfg["unroll_taps"] else []

    def pixel_extents(self, wl: Workload) -> list[int]:
        """Output pixels per tiled axis, x first: [OW, OH], or [OH * OW] for a 1x1 conv (a GEMM)."""
        oh, ow = out_size(wl)
        return [oh * ow] if wl["R"] == wl["S"] == 1 else [ow, oh]

    def define_space(self, wl: Workload, device: Device) -> ConfigSpace:
        gpu = gpu_of(device)
        blocks, lanes = self.out_channels(wl)
        space = ConfigSpace()
        space.define_split("tile_c", blocks, 3, max_factor=MAX_FACTORS["tile_c"])
        space.define_split("tile_ki", lanes, 2, policy="factors")
        for name, extent in zip(self._pixel_names(wl), self.pixel_extents(wl)):
            space.define_split(name, extent, 3, max_factor=MAX_FACTORS[name])
        space.define_knob("vector", list(VECTOR_WIDTHS))
        space.define_knob("pad", ["inline", "stage"] if wl["pad"] else ["inline"])
        self.define_reduction(space, wl)
        threads, budget = gpu.max_threads_per_work_group, register_budget(gpu)
        space.add_constraint(f"work group within {threads} threads", lambda c: work_group_threads(c) <= threads)
        space.add_constraint(f"accumulators within {budget // 2} registers", lambda c: accumulator_words(c) <= budget // 2)
        space.add_constraint(f"accumulators and a step's operands within {budget} registers",
                             lambda c: accumulator_words(c) + operand_words(c) <= budget)
        space.add_constraint("vector width divides the lanes per thread", lambda c: c["tile_ki"][1] % c["vector"] == 0)
        return space

    def default_values(self, wl: Workload, device: Device, space: ConfigSpace) -> dict[str, Any]:
        """float4 lanes (of the block's lanes the work group does not share), 4 columns per thread (fewer
        where the registers or the plane are short), and the rule's work group for that tile's global size."""
        gpu = gpu_of(device)
        blocks, lanes = self.out_channels(wl)
        extents = self.pixel_extents(wl)
        lane_threads = lanes // next(d for d in (4, 2, 1) if lanes % d == 0)
        names = self._pixel_names(wl)
        for columns in (4, 2, 1):
            per_thread = [min(columns, pow2_floor(extents[0])), *[1] * (len(extents) - 1)]
            tiled = [-(-e // r) for e, r in zip(extents, per_thread)]
            *pixel_threads, channel_threads = pow2_work_group([*tiled, blocks * lane_threads], gpu)
            ki_t = math.gcd(channel_threads, lane_threads)
            c_t = min(channel_threads // ki_t, _pow2_ceil(blocks), MAX_FACTORS["tile_c"][0])
            values = {"tile_c": (-(-blocks // c_t), c_t, 1), "tile_ki": (ki_t, lanes // ki_t)}
            for name, extent, t, r in zip(names, extents, pixel_threads, per_thread):
                t = min(t, _pow2_ceil(-(-extent // r)), MAX_FACTORS[name][0])
                values[name] = (-(-extent // (t * r)), t, r)
            values["vector"] = next(v for v in (4, 2, 1) if values["tile_ki"][1] % v == 0)
            values["pad"] = "inline"
            values.update(self.default_reduction(wl))
            if space.is_valid(values):
                return values
        raise AssertionError(f"no default config for {wl}")  # one column, one block per thread always fits

    def apply(self, sch: s_tir.Schedule, wl: Workload, cfg: Config, device: Device) -> None:
        gpu = gpu_of(device)
        block = anchor_block(sch)
        pad = producer_of(sch, block, sch.get(block).reads[0].source)
        if pad is not None and cfg["pad"] == "inline":  # read in place, with a bound check
            sch.compute_inline(pad)
        names = self._pixel_names(wl)
        write_back = sch.cache_write(block, 0, "local")
        fuse_epilogue(sch, write_back)
        if names == ("tile_p",):
            flatten_pixels(sch, block, write_back, out_size(wl)[1])
        n, c, *rows_columns, lane = sch.get_loops(block)[:len(names) + 3]
        reduction = sch.get_loops(block)[len(names) + 3:]
        c_g, c_t, c_r = sch.split(c, [None, *cfg["tile_c"][1:]])
        ki_t, kv = sch.split(lane, list(cfg["tile_ki"]))
        tiles = [sch.split(loop, [None, *cfg[name][1:]]) for loop, name in zip(rows_columns[::-1], names)][::-1]  # y first
        order, unrolled = self.split_reduction(sch, reduction, cfg)
        sch.reorder(n, c_g, *(t[0] for t in tiles), c_t, ki_t, *(t[1] for t in tiles), *order,
                    c_r, *(t[2] for t in tiles), kv)
        sch.bind(sch.fuse(n, c_g), "blockIdx.z" if len(tiles) == 2 else "blockIdx.y")
        for (groups, threads, _), axis in zip(tiles[::-1], "xy"):
            sch.bind(groups, f"blockIdx.{axis}")
            sch.bind(threads, f"threadIdx.{axis}")
        sch.bind(sch.fuse(c_t, ki_t), "threadIdx.z" if len(tiles) == 2 else "threadIdx.y")
        bound = 2 + 2 * len(tiles)  # loops of a block under the anchor's thread loops: the tile's own
        sch.reverse_compute_at(write_back, tiles[-1][1])
        for loop in (*unrolled, c_r, *(t[2] for t in tiles)):
            sch.unroll(loop)
        vectorize_inner(sch, kv, cfg["vector"])  # before the reduction is split: TVM vectorizes no bare update
        init = sch.decompose_reduction(block, order[0])
        for loops in (sch.get_loops(init)[bound:], sch.get_loops(write_back)[bound:]):  # none for a 1-element tile
            for loop in loops[:-1]:
                sch.unroll(loop)
            if loops:
                vectorize_inner(sch, loops[-1], cfg["vector"])
        for other in top_blocks(sch):  # the pad stage, an epilogue that did not fuse
            bind_elementwise(sch, other, gpu)

    def _pixel_names(self, wl: Workload) -> tuple[str, ...]:
        return ("tile_p",) if len(self.pixel_extents(wl)) == 1 else ("tile_ow", "tile_oh")


class Conv2dOpenCL(OpenCLConvSchedule, Conv2dCompute):
    """conv2d: the reduction is (input blocks, taps, input channels), the channels unrolled by `tile_ci`."""

    name = "conv2d_nchwc.opencl"

    def out_channels(self, wl: Workload) -> tuple[int, int]:
        _, kb = channel_blocks(wl)
        return wl["K"] // kb, kb

    def define_reduction(self, space: ConfigSpace, wl: Workload) -> None:
        space.define_split("tile_ci", channel_blocks(wl)[0], 2, policy="factors", max_factor=8)
        super().define_reduction(space, wl)

    def default_reduction(self, wl: Workload) -> dict[str, Any]:
        cb, _ = channel_blocks(wl)
        unroll = next(d for d in (4, 3, 2, 1) if cb % d == 0)
        return {"tile_ci": (cb // unroll, unroll), **super().default_reduction(wl)}

    def split_reduction(self, sch: s_tir.Schedule, loops: Sequence[LoopRV], cfg: Config) -> tuple[list[LoopRV], list[LoopRV]]:
        co, r, s, ci = loops
        ci0, ci1 = sch.split(ci, list(cfg["tile_ci"]))
        return [co, r, s, ci0, ci1], [ci1, *((r, s) if cfg["unroll_taps"] else ())]


def flatten_pixels(sch: s_tir.Schedule, block: SBlockRV, write_back: SBlockRV, width: int) -> None:
    """The rows and columns of the anchor, its accumulator and its write-back as one axis of pixels
    (y * width + x): a work item's pixels are then one contiguous range of the accumulator even where they
    wrap to the next row (with the anchor's loops fused instead, TVM sizes it as a box of two rows).
    The anchor keeps a loop per iteration variable (its unit taps become unit spatial loops)."""
    def flat(n_vars: int, dtype: str) -> tirx.IndexMap:
        v = [tirx.Var(f"v{i}", dtype) for i in range(n_vars)]
        return tirx.IndexMap(v, [v[0], v[1], v[2] * width + v[3], *v[4:]], None)

    def var_dtype(b: SBlockRV) -> str:
        return str(sch.get(b).iter_vars[0].var.ty)

    sch.transform_block_layout(block, flat(len(sch.get(block).iter_vars), var_dtype(block)))
    sch.transform_layout(block, ("write", 0), flat(5, str(sch.get(block).writes[0].source.shape[0].ty)))
    sch.transform_block_layout(write_back, flat(5, var_dtype(write_back)))


def _pow2_ceil(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())
