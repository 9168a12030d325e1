"""Finding a template's operator in a fused PrimFunc, and fusing what surrounds it.

A model's PrimFunc (after `relax.get_pipeline("zero")`) is one anchor block (the
reduction: matmul, conv2d, ...) with producers (padding) before it and elementwise
consumers (bias, activation, residual add) after it. Templates recognise the anchor from
the TIR itself: its iteration kinds and the index pattern of its reads, never its name
alone.
"""
from __future__ import annotations

import math

from dataclasses import dataclass

from tvm import s_tir, tirx
from tvm.tirx.analysis import undefined_vars
from tvm.s_tir.schedule import SBlockRV, ScheduleError


#: Block annotation for a copy of a weight into another layout: `relax.transform.SplitLayoutRewritePreproc`
#: moves such a copy out of the function, and constant folding then runs it once, at compile time.
LAYOUT_REWRITE_PREPROC = "meta_schedule.layout_rewrite_preproc"


def reads_layout_free_param(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    """Whether `block` reads only a parameter that is a model weight (`layout_free_buffers`, set by
    `relax.transform.AttachAttrLayoutFreeBuffers`)."""
    func = sch.mod["main"]
    free = [int(i) for i in (func.attrs or {}).get("layout_free_buffers", [])]
    reads = sch.get(block).reads
    return len(reads) == 1 and any(func.params[i].same_as(reads[0].source) for i in free)


def top_blocks(sch: s_tir.Schedule) -> list[SBlockRV]:
    return list(sch.get_child_blocks(sch.get_sblock("root")))


def is_reduction(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    return any(iv.iter_type == tirx.IterVar.CommReduce for iv in sch.get(block).iter_vars)


def anchor_block(sch: s_tir.Schedule) -> SBlockRV | None:
    """The function's one reduction block (None when it has none or several)."""
    reductions = [b for b in top_blocks(sch) if is_reduction(sch, b)]
    return reductions[0] if len(reductions) == 1 else None


def producer_of(sch: s_tir.Schedule, block: SBlockRV, buffer) -> SBlockRV | None:
    """The block of this function that writes `buffer` for `block` (None for a function input)."""
    return next((p for p in sch.get_producers(block) if sch.get(p).writes[0].source.same_as(buffer)), None)


@dataclass(frozen=True)
class Gemm:
    """A block computing C[S, I, J] += A[S, I, K] * B[S?, K, J] up to axis order and unit axes."""

    batch: int  # product of the S axes (1 when there are none)
    m: int
    n: int
    k: int
    transpose_b: bool  # B stored [.., J, K] (dense, ONNX Gemm with transB) rather than [.., K, J]


#: canonical order of a GEMM block's iteration: batch, rows, columns, reduction
GEMM_KINDS = "SIJK"


def gemm_axis_kinds(stmt: tirx.SBlock) -> list[str] | None:
    """The kind of each iteration variable of `C += A * B`: S (batch: in A, B, C), I (in A, C),
    J (in B, C), K (reduced, in A, B); None when the block is no GEMM.

    Unlike dlight's `detect_iter_traits`, unit axes keep their kind, so M = 1 (a GEMV) or
    a batch of one are still GEMMs.
    """
    if len(stmt.reads) != 2 or len(stmt.writes) != 1 or not is_multiply_accumulate(stmt) or not _plain_indices(stmt):
        return None
    a, b, c = (_axes(region) for region in (stmt.reads[0], stmt.reads[1], stmt.writes[0]))
    kinds = []
    for iv in stmt.iter_vars:
        var, reduced = iv.var, iv.iter_type == tirx.IterVar.CommReduce
        where = (var in a, var in b, var in c)
        kind = {(False, True, True, True): "S", (False, True, False, True): "I",
                (False, False, True, True): "J", (True, True, True, False): "K"}.get((reduced, *where))
        if kind is None:
            return None
        kinds.append(kind)
    return kinds if {"I", "J", "K"} <= set(kinds) or {"J", "K"} <= set(kinds) else None


def match_gemm(sch: s_tir.Schedule, block: SBlockRV) -> Gemm | None:
    """The GEMM shape of `block`, or None when it is not `C += A * B` over I, J, K axes."""
    stmt = sch.get(block)
    kinds = gemm_axis_kinds(stmt)
    if kinds is None:
        return None
    extent = dict.fromkeys(GEMM_KINDS, 1)
    kind_of = {}
    for iv, kind in zip(stmt.iter_vars, kinds):
        extent[kind] *= int(iv.dom.extent)
        kind_of[iv.var] = kind
    b_index = [kind_of.get(v) for r in stmt.reads[1].region for v in undefined_vars(r.min)]
    return Gemm(extent["S"], extent["I"], extent["J"], extent["K"],
                transpose_b=[k for k in b_index if k in "JK"][-1] == "K")


def pad_gemm(sch: s_tir.Schedule, block: SBlockRV, m_tile: int, n_tile: int, k_tile: int) -> None:
    """Pad the block's I, J and K extents to whole tiles (`pad_einsum` on the innermost axis of each kind).

    Before `canonicalize_gemm`: pad_einsum needs every index to be one iteration variable.
    """
    kinds = gemm_axis_kinds(sch.get(block))
    padding = [1] * len(kinds)
    for kind, tile in (("I", m_tile), ("J", n_tile), ("K", k_tile)):
        if kind in kinds:
            padding[max(i for i, k in enumerate(kinds) if k == kind)] = tile
    sch.pad_einsum(block, padding)


def canonicalize_gemm(sch: s_tir.Schedule, block: SBlockRV) -> None:
    """Rewrite the block's iteration to exactly (s, i, j, k), fusing axes of a kind (unit ones for a missing kind)."""
    stmt = sch.get(block)
    kinds = gemm_axis_kinds(stmt)
    dtype = str(stmt.iter_vars[0].var.ty)
    inputs = [tirx.Var(f"v{n}", dtype) for n in range(len(kinds))]
    fused = {}
    for var, iv, kind in zip(inputs, stmt.iter_vars, kinds):
        fused[kind] = fused[kind] * iv.dom.extent + var if kind in fused else var
    zero = tirx.IntImm(dtype, 0)
    sch.transform_block_layout(block, tirx.IndexMap(inputs, [fused.get(kind, zero) for kind in GEMM_KINDS], None))


def _axes(region) -> set:
    return {v for r in region.region for v in undefined_vars(r.min)}


def _plain_indices(stmt: tirx.SBlock) -> bool:
    """Every access indexes each dimension by one iteration variable or a constant (no strides, no windows)."""
    regions = [r for access in (*stmt.reads, *stmt.writes) for r in access.region]
    return all(isinstance(r.min, (tirx.Var, tirx.IntImm)) for r in regions)


def is_multiply_accumulate(stmt: tirx.SBlock) -> bool:
    """The block body is `C[..] = C[..] + A[..] * B[..]`."""
    body = stmt.body
    if not isinstance(body, tirx.BufferStore) or not isinstance(body.value, tirx.Add):
        return False
    return isinstance(body.value.b, tirx.Mul)


def fuse_epilogue(sch: s_tir.Schedule, write_back: SBlockRV) -> list[SBlockRV]:
    """Fold the elementwise consumers of `write_back` into it, as far as TVM allows.

    Intermediate epilogue blocks are inlined into their consumers first, so the chain
    (bias, scale, erf, clip, residual add) ends as one block that reads the write-back's
    output; that block is then inlined into the write-back, which runs inside the
    anchor's tile while the results are still in cache. Returns the blocks that could
    not be fused (they need a schedule of their own).
    """
    changed = True
    while changed:
        changed = False
        for block in _epilogue_blocks(sch, write_back):
            if sch.get_consumers(block) and _try(sch.compute_inline, block):
                changed = True
        for block in _epilogue_blocks(sch, write_back):
            if not _broadcasts(sch, block) and _try(sch.reverse_compute_inline, block):
                changed = True
    return _epilogue_blocks(sch, write_back)


def _broadcasts(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    """Whether `block` computes more elements than a producer wrote (squeeze-excite's gate times the map).

    Such a block cannot be inlined into that producer, and TVM fails on it with an internal
    error (not a ScheduleError) that may leave the schedule half changed: never try.
    """
    domain = math.prod(int(iv.dom.extent) for iv in sch.get(block).iter_vars)
    return any(domain > math.prod(int(d) for d in buffer.shape)
               for producer in sch.get_producers(block) for buffer in (w.source for w in sch.get(producer).writes))


def _try(primitive, block: SBlockRV) -> bool:
    """Apply a schedule primitive that may not apply here; a ScheduleError leaves the schedule as it was."""
    try:
        primitive(block)
    except ScheduleError:
        return False
    return True


def _epilogue_blocks(sch: s_tir.Schedule, write_back: SBlockRV) -> list[SBlockRV]:
    """Top-level blocks after the write-back, in program order."""
    blocks = top_blocks(sch)
    target = sch.get(write_back)
    for position, block in enumerate(blocks):
        if sch.get(block).same_as(target):
            return blocks[position + 1:]
    return []
