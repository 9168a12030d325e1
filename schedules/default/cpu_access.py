"""What the default CPU schedules (`schedules.default.cpu`) ask of a block: its loops, its accesses'
strides along them, guarded loads, and how wide a vector its contiguous loop takes."""
from __future__ import annotations

from collections.abc import Callable

import tvm
import tvm_ffi
from tvm import DataType, s_tir, tirx
from tvm.ir import Range
from tvm.s_tir.dlight.analysis import collect_vars_used_in_prim_expr
from tvm.s_tir.schedule import LoopRV, SBlockRV
from tvm.sym import Analyzer
from tvm.target import Target
from tvm.target.codegen import llvm_get_vector_width

from schedules.matching import top_blocks
from targets.tvm_compat import sblock_realize

#: SIMD width assumed when the target does not say (128-bit NEON / SSE).
FALLBACK_VECTOR_BITS = 128

_IF_THEN_ELSE = tvm.ir.Op.get("prim.if_then_else")


def contiguous_width(sch: s_tir.Schedule, block: SBlockRV, loops: list[LoopRV], k: int, lanes: int) -> int:
    """Vector width for loop k if the store is contiguous and every load contiguous or broadcast along it, else 1."""
    width = vector_width(const_int(sch.get(loops[k]).extent) or 0, lanes)
    if width < 2 or guarded_load(sch, block, loops[k]):
        return 1
    write, *reads = access_strides(sch, block, loops, width)
    return width if write[k] == 1 and all(r[k] in (0, 1) for r in reads) else 1


def is_spatial(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    """Whether the block is injective: data-parallel iterators only and no reduction init."""
    stmt = sch.get(block)
    return stmt.init is None and all(iv.iter_type == tirx.IterVar.DataPar for iv in stmt.iter_vars)


def block_lanes(sch: s_tir.Schedule, block: SBlockRV, target: Target) -> int:
    """SIMD lanes of the target for the dtype the block writes (bool counted as a byte)."""
    stmt = sch.get(block)
    bits = max([DataType(str(r.source.dtype)).bits for r in stmt.writes] + [8])
    vector_bits = int(llvm_get_vector_width(target)) if target.kind.name == "llvm" else 0
    return max(1, (vector_bits if vector_bits > 0 else FALLBACK_VECTOR_BITS) // bits)


def vector_width(extent: int, lanes: int) -> int:
    """Vector length for a loop of `extent`: no remainder, since TVM scalarizes a vector loop with one.

    The native lanes when they divide the loop; the whole loop when it is at most four
    registers long (LLVM splits a 37-lane vector into 16+16+4+1: measured 10x faster
    than the scalar loop); else half or a quarter of the lanes; else 1: long rows of
    odd length stay scalar loops, which LLVM vectorizes itself with a remainder loop.
    """
    if extent < 2 or lanes < 2:
        return 1
    if extent % lanes == 0:
        return lanes
    if extent <= 4 * lanes:
        return extent
    for width in (lanes // 2, lanes // 4):
        if width >= 2 and extent % width == 0:
            return width
    return 1


def access_strides(sch: s_tir.Schedule, block: SBlockRV, loops: list[LoopRV], width: int = 1) -> list[list[int | None]]:
    """Per buffer access (the write first, then the reads), its element stride along each loop.

    None where the access does not move linearly along the loop (a gather through an
    index buffer, a reshape whose div/mod wraps inside the loop). Found symbolically:
    with the loop at base + t, the flattened offset minus its value at t = 0 must
    simplify to t * stride. With `width`, each loop it divides is taken as
    q * width + t: the stride within one vector or tile (a reshape that wraps every 64
    elements is contiguous in pieces of 16).
    """
    stmt = sch.get(block)
    if len(stmt.writes) != 1:
        raise ValueError("expected one write")
    offsets = []
    for region in (stmt.writes[0], *stmt.reads):
        if any(const_int(r.extent) != 1 for r in region.region):
            offsets.append(None)
        else:
            offsets.append(region.source.offset_of([r.min for r in region.region])[0])
    bindings = list(zip(stmt.iter_vars, sblock_realize(sch, block).iter_values))
    fors = [sch.get(loop) for loop in loops]
    strides = [[None] * len(loops) for _ in offsets]
    for k, moved in enumerate(fors):
        extent = const_int(moved.extent)
        if extent == 1:
            for i, offset in enumerate(offsets):
                strides[i][k] = None if offset is None else 0
            continue
        # Linear along the whole loop (a fused loop whose div/mod recombine), or else
        # within each width-sized piece of it (a reshape that wraps every 64).
        for chunk in (1, width) if width > 1 and extent is not None and extent % width == 0 else (1,):
            pending = [i for i, offset in enumerate(offsets) if offset is not None and strides[i][k] is None]
            for i, stride in zip(pending, linear_steps(fors, k, bindings, [offsets[i] for i in pending], chunk)):
                strides[i][k] = stride
    return strides


def linear_steps(fors: list[tirx.For], k: int, bindings, offsets: list, chunk: int) -> list[int | None]:
    """For each offset, c if it equals origin + c * t with loop k at base + t (t < chunk, or the whole loop)."""
    moved = fors[k]
    dtype = moved.loop_var.ty.dtype
    t, q = tirx.Var("t", dtype), tirx.Var("q", dtype)
    extent = const_int(moved.extent)

    def analyzer(lane) -> Analyzer:
        result = Analyzer()
        for loop in fors:
            if loop is not moved:
                result.bind(loop.loop_var, Range.from_min_extent(loop.min, loop.extent))
        if chunk > 1:
            result.bind(q, Range.from_min_extent(tirx.const(0, dtype), tirx.const(extent // chunk, dtype)))
            result.bind(t, Range.from_min_extent(tirx.const(0, dtype), tirx.const(chunk, dtype)))
            result.bind(moved.loop_var, moved.min + q * chunk + lane)
        else:
            result.bind(t, Range.from_min_extent(tirx.const(0, dtype), moved.extent))
            result.bind(moved.loop_var, moved.min + lane)
        for iter_var, value in bindings:
            result.bind(iter_var.var, value)
        return result

    at_t, at_0, at_1 = analyzer(t), analyzer(tirx.const(0, dtype)), analyzer(tirx.const(1, dtype))
    steps = []
    for offset in offsets:
        origin = at_0.simplify(offset)
        stride = const_int(at_t.simplify(at_1.simplify(offset) - origin))
        linear = stride is not None and const_int(at_t.simplify(at_t.simplify(offset) - origin - t * stride)) == 0
        steps.append(stride if linear else None)
    return steps


def guarded_load(sch: s_tir.Schedule, block: SBlockRV, loop: LoopRV | None = None) -> bool:
    """Whether the block loads under an `if_then_else` (padding) whose condition varies along `loop`.

    TVM scalarizes a vector loop whose load sits behind a per-lane condition; one that
    is the same for all lanes (a pad of H and W, vectorized along channels) is fine.
    With no loop: whether there is any guarded load at all.
    """
    stmt = sch.get(block)
    moving = set()
    loop_var = sch.get(loop).loop_var if loop is not None else None
    for iter_var, value in zip(stmt.iter_vars, sblock_realize(sch, block).iter_values):
        if loop_var is None or loop_var in collect_vars_used_in_prim_expr(value):
            moving.add(iter_var.var)
    found = []

    def visit(node) -> None:
        if isinstance(node, tvm.ir.Call) and node.op.same_as(_IF_THEN_ELSE):
            loads = []
            for branch in node.args[1:]:
                tvm_ffi.structural_walk(branch, lambda n: loads.append(n) if isinstance(n, tvm.ir.TensorLoad) else None)
            if loads and (loop_var is None or collect_vars_used_in_prim_expr(node.args[0]) & moving):
                found.append(node)

    tvm_ffi.structural_walk(stmt.body, visit)
    return bool(found)


def own_loops(sch: s_tir.Schedule, block: SBlockRV) -> list[LoopRV] | None:
    """The block's loops if they hold only this spatial block and nothing has scheduled them yet."""
    if not is_spatial(sch, block):
        return None
    loops = sch.get_loops(block)
    if not loops or not all(untouched(sch, loop) for loop in loops):
        return None
    children = sch.get_child_blocks(loops[0])
    if len(children) != 1 or not sch.get(children[0]).same_as(sch.get(block)):
        return None
    return loops


def loop_kinds(sch: s_tir.Schedule, block: SBlockRV, loops: list[LoopRV]) -> list[str] | None:
    """'S' or 'R' per loop, from the block iterator it is bound to (None unless one-to-one)."""
    stmt = sch.get(block)
    kind_of = {}
    for iter_var, value in zip(stmt.iter_vars, sblock_realize(sch, block).iter_values):
        if isinstance(value, tirx.Var):
            kind_of[value] = "S" if iter_var.iter_type == tirx.IterVar.DataPar else "R"
        elif const_int(value) is None:
            return None
    kinds = [kind_of.get(sch.get(loop).loop_var) for loop in loops]
    return None if None in kinds else kinds


def inline_spatial_chains(sch: s_tir.Schedule) -> None:
    """Inline spatial blocks whose consumers are all spatial (not into reductions: see SpatialReduction)."""
    changed = True
    while changed:
        changed = False
        for block in top_blocks(sch):
            consumers = sch.get_consumers(block)
            if consumers and is_spatial(sch, block) and all(is_spatial(sch, c) for c in consumers):
                changed = attempt(sch.compute_inline, block) or changed


def loop_product(sch: s_tir.Schedule, loops: list[LoopRV]) -> int:
    size = 1
    for loop in loops:
        size *= const_int(sch.get(loop).extent) or 1
    return size


def untouched(sch: s_tir.Schedule, loop: LoopRV) -> bool:
    stmt = sch.get(loop)
    return stmt.kind == tirx.ForKind.SERIAL and not stmt.annotations and stmt.thread_binding is None


def attempt(primitive: Callable, *args, **kwargs) -> bool:
    """Apply a schedule primitive that may not apply here (TVM refuses before changing anything)."""
    try:
        primitive(*args, **kwargs)
    except (RuntimeError, ValueError):  # ScheduleError, TVM internal errors, stale block handles
        return False
    return True


def const_int(expr) -> int | None:
    return int(expr.value) if isinstance(expr, tirx.IntImm) else None
