"""Default CPU schedules for the PrimFuncs of a model that no tuning template covers.

TVM's default CPU pipeline schedules nothing: every PrimFunc left to it runs as one
serial loop nest. Templates cover the heavy operators (conv2d, matmul); this module
gives everything else (elementwise, broadcast, transposes, reshapes, layout transforms,
take, cast/where, softmax, layer norm, pooling, mean) a parallel outer loop and, where
the memory access allows, a vectorized inner loop, without tuning. The rules are tried
in order, each on a fresh schedule; the first that applies wins:

1. `Injective`: functions of spatial blocks only. Producers are inlined into
   consumers (dlight's `try_inline`); each remaining block gets `parallel_vectorize`.
2. `SpatialReduction`: functions with reductions (softmax, layer norm, pooling,
   mean): parallel over the output rows, reduction loops left whole for LLVM,
   vectorized along a contiguous innermost output axis (NCHW16c), elementwise
   producers and consumers computed in the same task.
3. `dlight.cpu.Reduction` (TVM's own), for what 2 declines. It is correct, parallel
   and vectorized on softmax and layer norm, but it splits each row's reduction into
   an unrolled chain LLVM no longer vectorizes: per core it ran 1.2-1.8x slower than
   the naive loop, and at 2 threads 1.1-1.8x slower than rule 2 (BERT's softmax and
   layer norm, a 64x1000 softmax, a 384x768 layer norm; mean the same).

dlight's `GEMV` rule is not used: matmuls belong to templates, and on GEMV-shaped
functions it was no faster than the naive loop here and left any epilogue serial.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from tvm import s_tir, tirx
from tvm.s_tir import dlight
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.schedule import LoopRV, SBlockRV
from tvm.target import Target

from schedules.default.cpu_access import (access_strides, attempt, block_lanes, const_int, contiguous_width,
                                          guarded_load, inline_spatial_chains, is_spatial, loop_kinds, loop_product,
                                          own_loops, untouched, vector_width)
from schedules.default.rules import apply_rule
from schedules.matching import top_blocks
from schedules.threading import MIN_TASK_ELEMENTS

#: Most parallel tasks per loop. TVM hands each thread a contiguous range of tasks, so
#: 64 balances any thread count up to 8 within an eighth.
MAX_TASKS = 64


def default_rules() -> list[dlight.ScheduleRule]:
    """The rules `schedule_default` tries, in order (also usable with `dlight.ApplyDefaultSchedule`)."""
    return [Injective(), SpatialReduction(), dlight.cpu.Reduction()]


def schedule_default(func: tirx.PrimFunc, target: Target) -> tirx.PrimFunc | None:
    """`func` scheduled by the first default rule that applies, or None when none does.

    The result carries `tirx.is_scheduled`, so `mod.update_func(gv, result)` keeps it
    through `tvm.compile`. A rule that fails on an unusual function is skipped, never
    fatal: the next rule (or the naive loop nest) still computes the right result.
    """
    for rule in default_rules():
        sch = apply_rule(rule, func, target)
        if sch is not None:
            return sch.mod["main"].with_attr("tirx.is_scheduled", True)
    return None


def schedule_leftover_blocks(sch: s_tir.Schedule, blocks: Iterable[SBlockRV], lanes: int) -> None:
    """Give each (unscheduled, injective, top-level) block a parallel outer + vectorized inner loop.

    For templates that fused what they could of an epilogue into their anchor and must
    schedule the rest. `lanes` is the SIMD width in elements of the blocks' dtype.
    Blocks that are not such blocks are skipped; one that cannot be vectorized is only
    parallelized, one that cannot be either is left as it is. Never raises.
    """
    for block in blocks:
        parallel_vectorize(sch, block, lanes)


class _CPURule(dlight.ScheduleRule):
    def is_target_available(self, target: Target) -> bool:
        return target.kind.name == "llvm"


class Injective(_CPURule):
    """Functions of spatial blocks only: inline what inlines, parallelize and vectorize the rest."""

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        sch = s_tir.Schedule(func)
        infos = normalize_prim_func(sch)
        if not infos or not all(is_spatial(sch, info.block_rv) for info in infos):
            return None
        for info in dlight.try_inline(sch, infos):
            parallel_vectorize(sch, info.block_rv, block_lanes(sch, info.block_rv, target))
        return sch


class SpatialReduction(_CPURule):
    """Functions with reductions (softmax, layer norm, pooling, mean): parallel over the output.

    A reduction block gets its outer spatial loops fused and split into parallel tasks.
    Its innermost spatial loop is vectorized, below the reduction loops, when output and
    inputs are contiguous along it (the channel block of NCHW16c); otherwise the
    reduction loops stay innermost and serial (across outputs the inputs are strided).
    Spatial producers (pad) are computed per task (`compute_at`), not inlined: inlined,
    the pad's bounds check runs for every tap of the window (measured 1.5x slower than
    the naive loop on an NCHW 3x3 max pool). Spatial consumers (a mean's division) run
    in the same task when they write as many elements as the reduction (a consumer that
    pads, as channel padding does after a global pool, would be cut to the reduction's
    region by `reverse_compute_at` and leave its padding unwritten); other spatial blocks
    as in `Injective`.
    """

    def apply(self, func: tirx.PrimFunc, target: Target, tunable: bool) -> s_tir.Schedule | None:
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        sch = s_tir.Schedule(func)
        if not normalize_prim_func(sch) or all(is_spatial(sch, b) for b in top_blocks(sch)):
            return None
        inline_spatial_chains(sch)
        parallel = False
        for block in top_blocks(sch):
            if is_spatial(sch, block):
                continue
            task = _parallel_reduction(sch, block, block_lanes(sch, block, target))
            if task is None:
                continue
            parallel = True
            for producer in sch.get_producers(block):
                if is_spatial(sch, producer) and attempt(sch.compute_at, producer, task, preserve_unit_loops=True):
                    _vectorize_innermost(sch, producer, block_lanes(sch, producer, target))
            for consumer in sch.get_consumers(block):
                if (is_spatial(sch, consumer) and _spatial_size(sch, consumer) == _spatial_size(sch, block)
                        and attempt(sch.reverse_compute_at, consumer, task, preserve_unit_loops=True)):
                    _vectorize_innermost(sch, consumer, block_lanes(sch, consumer, target))
        for block in top_blocks(sch):
            if is_spatial(sch, block):
                parallel_vectorize(sch, block, block_lanes(sch, block, target))
        return sch if parallel else None


def parallel_vectorize(sch: s_tir.Schedule, block: SBlockRV, lanes: int) -> None:
    """Parallel outer loop, vectorized inner loop for one top-level spatial block; never raises.

    The loop nest keeps its shape where it matters: fusing every loop would put a
    div/mod per element into indices and bounds checks. Adjacent loops along which
    every access is jointly contiguous (or broadcast) are fused, the loop the store is
    contiguous in goes inside and is vectorized when the loads are contiguous or
    broadcast along it too; the loops outside are fused and split into parallel tasks.
    When the loads are strided (a transpose, a layout transform), the vector loop is
    tiled with the loop they are contiguous in, so each cache line read serves a tile.
    """
    try:
        loops = own_loops(sch, block)
    except Exception:  # noqa: BLE001 - not a block of this schedule: leave it
        return
    if not loops:
        return
    try:
        loops = _fuse_contiguous(sch, block, loops)
        loops = _store_contiguous_innermost(sch, block, loops, lanes)
        tile, width = _plan(sch, block, loops, lanes)
        elements = loop_product(sch, loops)
        outer, vector = _split_inner(sch, loops, tile, width, lanes)
        _parallel_tasks(sch, outer, elements)
    except Exception:  # noqa: BLE001 - ScheduleError, TVM internal or analysis errors: keep what applied
        attempt(lambda: sch.parallel(sch.get_loops(block)[0]))
        return
    if vector is not None:
        attempt(sch.vectorize, vector)  # on refusal: parallel without SIMD, still correct


def _fuse_contiguous(sch: s_tir.Schedule, block: SBlockRV, loops: list[LoopRV]) -> list[LoopRV]:
    """Fuse runs of adjacent loops along which every access moves as one flat loop would.

    An NCHW clip fuses (C, H, W), so 28x28 planes become vectors of 16; a layout
    transform fuses (H, W), leaving one spatial loop to tile with the channels.
    Not with a guarded load: its bounds check needs the separate row and column.
    """
    if len(loops) < 2 or guarded_load(sch, block):
        return loops
    extents = [const_int(sch.get(loop).extent) for loop in loops]
    strides = access_strides(sch, block, loops)
    runs = [[0]]
    for k in range(1, len(loops)):
        joint = extents[k] is not None and all(
            s[k - 1] is not None and s[k] is not None and s[k - 1] == s[k] * extents[k] for s in strides)
        if joint:
            runs[-1].append(k)
        else:
            runs.append([k])
    return [sch.fuse(*[loops[k] for k in run]) if len(run) > 1 else loops[run[0]] for run in runs]


def _store_contiguous_innermost(sch: s_tir.Schedule, block: SBlockRV, loops: list[LoopRV], lanes: int) -> list[LoopRV]:
    """Move the innermost loop along which the store is contiguous to the inside.

    Layout transforms iterate in the order of their input, storing with a stride;
    with the store-contiguous loop inside, stores are whole vectors, and `_plan` tiles
    it with the loop the loads are contiguous in.
    """
    extents = [const_int(sch.get(loop).extent) for loop in loops]
    if any(e is None for e in extents):
        return loops
    for k in range(len(loops) - 1, -1, -1):
        width = vector_width(extents[k], lanes)
        if width < 2 or access_strides(sch, block, loops, width)[0][k] != 1:
            continue
        if k < len(loops) - 1:
            sch.reorder(*loops[k + 1:], loops[k])
            return [*loops[:k], *loops[k + 1:], loops[k]]
        return loops
    return loops


def _plan(sch: s_tir.Schedule, block: SBlockRV, loops: list[LoopRV], lanes: int) -> tuple[int | None, int]:
    """(index of the loop to tile with the innermost one, or None; vector width, 1 = no SIMD).

    The tile partner is the loop the strided loads are contiguous in (in pieces of
    `lanes`), so a tile reads whole cache lines.
    """
    extents = [const_int(sch.get(loop).extent) for loop in loops]
    inner = len(loops) - 1
    if any(e is None for e in extents):
        return None, 1
    width = vector_width(extents[inner], lanes)
    if width < 2 or guarded_load(sch, block, loops[inner]):
        return None, 1  # nothing to vectorize, or loads TVM would scalarize behind a per-lane check
    write, *reads = access_strides(sch, block, loops, width)
    if write[inner] != 1:
        return None, 1  # scattered stores
    strided = [i for i, r in enumerate(reads) if r[inner] not in (0, 1)]
    if not strided:
        return None, width
    if any(reads[i][inner] is None for i in strided):
        return None, 1  # gathers through an index buffer: leave the loop scalar
    _, *tiled = access_strides(sch, block, loops, lanes)
    for k in range(inner - 1, -1, -1):
        if extents[k] >= 2 and all(tiled[i][k] == 1 for i in strided):
            return k, width
    return None, 1


def _split_inner(sch: s_tir.Schedule, loops: list[LoopRV], tile: int | None, width: int, lanes: int) -> tuple[LoopRV, LoopRV | None]:
    """Split off the vector loop (and the tile), reorder; return (loop to split into tasks, vector loop).

    A tile is `lanes` steps of the partner loop (a remainder only adds a bounds check
    outside the vector loop) by one vector. The task loop fuses every loop outside
    the vector (or the tile) that it can, so a short outer extent still yields tasks.
    """
    *rest, inner = loops
    if width < 2:
        return (sch.fuse(*rest) if len(rest) > 1 else rest[0] if rest else inner), None
    inner_outer, vector = sch.split(inner, [None, width])
    if tile is None:
        return sch.fuse(*rest, inner_outer) if rest else inner_outer, vector
    tile_outer, tile_inner = sch.split(rest[tile], [None, min(lanes, const_int(sch.get(rest[tile]).extent))])
    middle = rest[tile + 1:]
    sch.reorder(tile_outer, *middle, inner_outer, tile_inner, vector)
    outer = [*rest[:tile], tile_outer] + ([] if middle else [inner_outer])
    return (sch.fuse(*outer) if len(outer) > 1 else outer[0]), vector


def _parallel_tasks(sch: s_tir.Schedule, loop: LoopRV, elements: int) -> LoopRV:
    """Split `loop` into at most MAX_TASKS parallel tasks of at least MIN_TASK_ELEMENTS elements."""
    extent = const_int(sch.get(loop).extent)
    if extent is None:
        sch.parallel(loop)
        return loop
    tasks = max(1, min(extent, elements // MIN_TASK_ELEMENTS, MAX_TASKS))
    task, _ = sch.split(loop, [None, -(-extent // tasks)])
    sch.parallel(task)
    return task


def _aligned_chunk(extents: list[int], wanted_tasks: int) -> int:
    """Iterations per parallel task of fused loops with these extents, so that each task is a box.

    A chunk of m x (product of the inner extents), m dividing its own loop's extent, covers
    whole rows: blocks computed per task (a mean's division, softmax's normalization) then
    cover exactly the task's outputs. A chunk across rows would make TVM widen their
    region to whole rows, and read what another task has not yet reduced.
    """
    total = math.prod(extents)
    candidates = {math.prod(extents[j + 1:]) * m for j, extent in enumerate(extents)
                  for m in range(1, extent + 1) if extent % m == 0}
    return min(candidates, key=lambda chunk: (abs(math.log(total / chunk / max(wanted_tasks, 1))), chunk))


def _spatial_size(sch: s_tir.Schedule, block: SBlockRV) -> int | None:
    """Elements of a block's spatial iteration domain (None when not constant)."""
    extents = [const_int(iv.dom.extent) for iv in sch.get(block).iter_vars if iv.iter_type == tirx.IterVar.DataPar]
    return None if None in extents else math.prod(extents)


def _parallel_reduction(sch: s_tir.Schedule, block: SBlockRV, lanes: int) -> LoopRV | None:
    """Parallel tasks over the outer spatial loops of a normalized reduction block; returns the task loop.

    Only as many leading spatial loops as give enough tasks are fused (never the
    vectorized one): the rest keep plain indices, and a pad computed per task covers
    whole rows. None when the block has no spatial loop outside its reduction loops
    (a full reduction would need rfactor) or TVM refuses.
    """
    loops = sch.get_loops(block)
    kinds = loop_kinds(sch, block, loops)
    if kinds is None:
        return None
    n_spatial = kinds.count("S")
    if not n_spatial or kinds != ["S"] * n_spatial + ["R"] * (len(loops) - n_spatial):
        return None
    spatial, reduction = loops[:n_spatial], loops[n_spatial:]
    if loop_product(sch, spatial) < 2:
        return None
    work = loop_product(sch, loops)
    vector = _reduction_vector(sch, block, loops, n_spatial, lanes) if reduction else None
    wanted_tasks = min(MAX_TASKS, work // MIN_TASK_ELEMENTS)
    outer, most = 1, n_spatial - 1 if vector is not None else n_spatial
    while outer < most and loop_product(sch, spatial[:outer]) < wanted_tasks:
        outer += 1  # the rest stays inside the task: whole output rows, plain indices
    spatial = spatial[:outer]
    extents = [const_int(sch.get(loop).extent) for loop in spatial]
    try:
        fused = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
        if None in extents:
            task = _parallel_tasks(sch, fused, work)
        else:
            task, _ = sch.split(fused, [None, _aligned_chunk(extents, wanted_tasks)])
            sch.parallel(task)
    except RuntimeError:
        return None
    if vector is not None:
        _vectorize_reduction(sch, block, loops[n_spatial - 1], reduction, vector)
    elif reduction:
        _vectorize_across_lanes(sch, block, lanes)
    elif not reduction and outer < n_spatial:  # reduction over a 1x1 window: only the init is left
        _vectorize_innermost(sch, block, lanes)
    return task


def _reduction_vector(sch: s_tir.Schedule, block: SBlockRV, loops: list[LoopRV], n_spatial: int, lanes: int) -> int | None:
    """Vector width for the innermost spatial loop of a reduction, if output and inputs are contiguous along it."""
    width = contiguous_width(sch, block, loops, n_spatial - 1, lanes) if n_spatial > 1 else 1
    return width if width > 1 else None


def _vectorize_reduction(sch: s_tir.Schedule, block: SBlockRV, loop: LoopRV, reduction: list[LoopRV], width: int) -> None:
    """Move `loop` below the reduction loops and vectorize it, init included; partial failure is harmless."""
    try:
        _, vector = sch.split(loop, [None, width])
        sch.reorder(*reduction, vector)
        sch.vectorize(vector)
        init = sch.decompose_reduction(block, reduction[0])
        sch.vectorize(sch.get_loops(init)[-1])
    except RuntimeError:
        pass  # loops moved but not vectorized: still a correct reduction


def _vectorize_across_lanes(sch: s_tir.Schedule, block: SBlockRV, lanes: int) -> None:
    """A reduction along the rows' contiguous axis (softmax, layer norm) as vector partial sums.

    The innermost reduction loop is split into (rows of) vectors; `rfactor` gives each
    lane its own partial result, accumulated with vector loads along the row, and the
    lanes are combined once at the end. Left serial (a chain of dependent scalar adds,
    latency-bound) when the loop does not split into whole vectors or an access is not
    contiguous or broadcast along it.
    """
    try:
        loops = sch.get_loops(block)
        inner = loops[-1]
        extent = const_int(sch.get(inner).extent)
        width = next((w for w in (lanes, lanes // 2, lanes // 4) if w >= 4 and extent and extent % w == 0 and extent > w), 0)
        if not width and extent and extent > 4 * lanes >= 16:  # a last, partial vector (softmax over 197 tokens)
            width = lanes
        if not width or guarded_load(sch, block, inner):
            return
        _, *reads = access_strides(sch, block, loops, width)
        if not all(r[-1] in (0, 1) for r in reads) or not any(r[-1] == 1 for r in reads):
            return
        outer, lane = sch.split(inner, [None, width])
        partial = sch.rfactor(lane, factor_axis=len(sch.get(block).writes[0].source.shape))  # lanes innermost
        sch.vectorize(sch.get_loops(partial)[-1])
        init = sch.decompose_reduction(partial, sch.get_loops(partial)[-2])
        sch.vectorize(sch.get_loops(init)[-1])
    except Exception:  # noqa: BLE001 - TVM refused a step: the reduction stays a correct serial loop
        return


def _vectorize_innermost(sch: s_tir.Schedule, block: SBlockRV, lanes: int) -> None:
    """Vectorize the block's innermost loop if it holds only this block and its accesses are contiguous."""
    try:
        inner = sch.get_loops(block)[-1]
        if not untouched(sch, inner) or len(sch.get_child_blocks(inner)) != 1:
            return
        width = contiguous_width(sch, block, [inner], 0, lanes)
        if width > 1:
            sch.vectorize(inner if width == const_int(sch.get(inner).extent) else sch.split(inner, [None, width])[1])
    except Exception:  # noqa: BLE001 - left serial: still correct
        return
