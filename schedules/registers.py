"""Register tiles sized to the device's core, so a template's tile fits its vector registers.

A template's accumulator tile is counted in the core's registers, not in vectors of a
channel block: a block of 16 float32 is one AVX-512 register but four NEON ones, so the
same (pixels x blocks) tile that fits AVX-512 spills on NEON. Where a block spans several
registers, a `tile_ki` knob lets one register tile compute part of the block (4 or 8 of
its 16 channels, as NEON GEMMs keep 8x12 or 6x16 tiles), the rest of the block a loop
around it, so a row of pixels still fits.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import tvm
import tvm_ffi
from tvm import s_tir, tirx

from schedules.matching import fuse_epilogue
from schedules.space import ConfigSpace
from targets import Device


def accumulator_budget(device: Device) -> int:
    """Vector registers the accumulator tile may take (the rest hold operands)."""
    return device.core.accumulators


def registers_of(device: Device, lanes: int, dtype: str) -> int:
    """Registers one vector of `lanes` elements of `dtype` takes on the device's core."""
    return device.core.registers_per_vector(lanes, tvm.DataType(dtype).bits)


def tile_fits(device: Device, rows: int, vectors: int) -> bool:
    """Whether an accumulator tile of `rows` x `vectors` registers fits beside its operands.

    Per reduction step the tile loads `vectors` weight registers and broadcasts (or loads)
    inputs into a few temporaries; LLVM spills once these and the accumulators exceed the
    register file (measured on the Cortex-A76 over a grid of conv2d tiles: 4 pixels x 6
    registers spill, 8 x 3 and 7 x 3 do not).
    """
    core = device.core
    return rows * vectors <= core.accumulators and rows * vectors + vectors + 4 <= core.vector_registers


def max_unroll(device: Device, unroll: int) -> int:
    """Most reduction steps a tile may unroll: `unroll` where FMAs read weights from memory (x86),
    else 4 (NEON: LLVM hoists the weight loads of more unrolled steps and spills them)."""
    return unroll if device.core.fma_memory_operand else min(unroll, 4)


def min_unroll(device: Device, extent: int) -> int:
    """Fewest reduction steps a tile unrolls: 1 on x86; 2 on NEON, where LLVM fully unrolls a
    short loop of single steps by itself and then hoists (and spills) all their loads."""
    return 1 if device.core.fma_memory_operand else min(2, extent)


def define_sub_block(space: ConfigSpace, block: int, device: Device, dtype: str) -> None:
    """A `tile_ki` split of the channel block, on cores whose registers are narrower than the block."""
    lanes = device.vector_lanes(dtype)
    if block > lanes and block % lanes == 0:
        space.define_split("tile_ki", block, 2, policy="factors", min_factor=lanes)


def sub_block(config: Mapping[str, Any], block: int) -> int:
    """Channels of the block one register tile computes (the whole block without a `tile_ki` knob)."""
    return config["tile_ki"][1] if "tile_ki" in config else block


def sub_blocks(space: ConfigSpace, block: int) -> list[int]:
    """The sub-block sizes the space's `tile_ki` knob offers (just the block without one)."""
    return [block // outer for outer, _ in space.knobs["tile_ki"].candidates] if "tile_ki" in space.knobs else [block]


def register_tile(device: Device, dtype: str, rows: Iterable[int], blocks: Iterable[int],
                  subs: Iterable[int]) -> tuple[int, int, int]:
    """The (rows x blocks x sub-block) accumulator tile that fits the registers with about the most
    vector FMAs per vector load, and of those the one that takes the fewest registers.

    Per reduction step such a tile broadcasts `rows` inputs and loads `blocks` weight vectors of
    `sub` channels, each sub-block `registers_of` registers wide; on NEON (no FMA with a memory
    operand) every one is a load, so reuse, not only size, makes the tile fast. Registers left
    free serve a fused epilogue: SiLU's exp keeps a dozen constants in registers across the
    kernel, and a tile 5% short of the best reuse with 8 registers fewer does not spill.
    """
    def vectors(block_count: int, sub: int) -> int:
        return block_count * registers_of(device, sub, dtype)

    def reuse(tile: tuple[int, int, int]) -> float:
        r, v = tile[0], vectors(tile[1], tile[2])
        return r * v / (r + v)

    def registers(tile: tuple[int, int, int]) -> int:
        return (tile[0] + 1) * vectors(tile[1], tile[2])

    fitting = [(r, b, s) for r in rows for b in blocks for s in subs if tile_fits(device, r, vectors(b, s))]
    best = max(map(reuse, fitting))
    return min((t for t in fitting if reuse(t) >= 0.95 * best), key=lambda t: (registers(t), -reuse(t), -t[2]))


def vectorize_native(sch: s_tir.Schedule, loop: s_tir.LoopRV, device: Device, dtype: str) -> None:
    """Vectorize `loop` one register at a time where it is wider than the core's registers.

    An epilogue (SiLU's exp, GELU's erf) on a 16-lane vector is 4 NEON registers per
    temporary: LLVM spills them; a loop over register-wide pieces keeps them in registers.
    """
    lanes = device.vector_lanes(dtype)
    extent = sch.get(loop).extent
    if isinstance(extent, tirx.IntImm) and int(extent) > lanes and int(extent) % lanes == 0:
        loop = sch.split(loop, [None, lanes])[1]
    sch.vectorize(loop)


#: Arithmetic operations per element above which an epilogue is heavy: SiLU's fast exp or GELU's erf
#: takes about 30, a bias and ReLU 2 or 3.
HEAVY_EPILOGUE_OPERATIONS = 16


def operations(sch: s_tir.Schedule, block: s_tir.SBlockRV) -> int:
    """Arithmetic operations and calls in the block's body (per element it writes)."""
    count = [0]

    def visit(node) -> None:
        if isinstance(node, (tvm.ir.prim.expr.BinaryOpExpr, tvm.ir.Call)):
            count[0] += 1

    tvm_ffi.structural_walk(sch.get(block).body, visit)
    return count[0]


def tile_write_back(sch: s_tir.Schedule, write_back: s_tir.SBlockRV, device: Device
                    ) -> tuple[s_tir.SBlockRV, s_tir.SBlockRV | None]:
    """(the block that writes a tile's accumulators out, a heavy epilogue to run per parallel task or None).

    `write_back` (its epilogue fused) and None, but on an in-order core (`Core.in_order`) when
    the epilogue is heavy, a copy of the accumulators and `write_back` itself. LLVM fully
    unrolls a tile's write-back, and the in-order core's scheduling model interleaves the
    unrolled pieces: with SiLU's exp (a dozen constants and a few temporaries per vector) 8
    register-wide pieces spill where 4 do not. So there the tile only copies its accumulators
    out, and `epilogue_per_task` reads them back once per task. Call on a top-level write-back.
    """
    if not (device.core.in_order and operations(sch, write_back) > HEAVY_EPILOGUE_OPERATIONS):
        return write_back, None
    accumulator = next(i for i, region in enumerate(sch.get(write_back).reads) if region.source.scope() == "local")
    return sch.cache_read(write_back, accumulator, "global"), write_back


def write_back_at(sch: s_tir.Schedule, write_back: s_tir.SBlockRV, tile: s_tir.LoopRV, device: Device
                  ) -> tuple[list[s_tir.SBlockRV], s_tir.SBlockRV | None]:
    """Place `write_back` at the `tile` loop with its epilogue fused: (blocks left unfused, a heavy
    epilogue for `epilogue_per_task` or None). On an in-order core the epilogue is fused first, so
    the write-back is still top-level when `tile_write_back` copies its accumulators out; elsewhere
    in the templates' order of old (the same code on x86 and out-of-order ARM cores)."""
    if not device.core.in_order:
        sch.reverse_compute_at(write_back, tile)
        return fuse_epilogue(sch, write_back), None
    leftovers = fuse_epilogue(sch, write_back)
    write_back, epilogue = tile_write_back(sch, write_back, device)
    sch.reverse_compute_at(write_back, tile)
    return leftovers, epilogue


def epilogue_per_task(sch: s_tir.Schedule, epilogue: s_tir.SBlockRV | None, task: s_tir.LoopRV, device: Device,
                      dtype: str) -> None:
    """Run a heavy epilogue (from `tile_write_back`) inside the parallel `task` loop, after its tiles, as
    one loop of register-wide pieces, a channel block's pieces outermost, whose inner trip count is a
    power of two.

    LLVM partially unrolls a loop by the largest count under its threshold that divides the trip
    count: 7 over the 7 x 2^k pieces of EfficientNet's rows, and the in-order model interleaves the
    copies (7 or 8 spill stores per SiLU function); over a power of two it unrolls by 4 or 8. With
    the block's pieces outermost, the unrolled copies share one bias vector instead of each hoisting
    its own (3 more spills). Pieces unrolled by TVM do not help: LLVM unrolls the loop around them
    too (12 spills with 2 or 4).
    """
    if epilogue is None:
        return
    sch.reverse_compute_at(epilogue, task)
    loops = sch.get_loops(epilogue)
    inner = loops[[sch.get(loop).same_as(sch.get(task)) for loop in loops].index(True) + 1:]
    lanes = device.vector_lanes(dtype)
    channels = sch.get(inner[-1]).extent
    if not (isinstance(channels, tirx.IntImm) and int(channels) > lanes and int(channels) % lanes == 0):
        vectorize_native(sch, sch.fuse(*inner) if len(inner) > 1 else inner[0], device, dtype)
        return
    piece, vector = sch.split(inner[-1], [None, lanes])
    sch.vectorize(vector)
    if len(inner) > 1:
        sch.reorder(piece, *inner[:-1])
        piece = sch.fuse(piece, *inner[:-1])
    extent = int(sch.get(piece).extent)
    if 1 < extent & -extent < extent:
        sch.split(piece, [None, extent & -extent])
