"""Default GPU schedules for the PrimFuncs of a model that no OpenCL template covers.

On an OpenCL target every PrimFunc must become a kernel: one whose loops are bound to no
work group or thread compiles, without a word, to host code that runs on the CPU (the
compiled module then has no OpenCL part at all). So each function gets the first of
these rules that binds every one of its blocks, each tried on a fresh schedule:

1. TVM's own dlight GPU rules, `Matmul`, `GEMV`, `Reduction` and `GeneralReduction`
   (`tvm.s_tir.dlight.gpu`): shared-memory tiles and cross-thread reductions, sized from
   the target's limits (the presets put the GPU spec's there).
2. `WorkGroupFallback`: dlight's `Fallback` (inline what inlines; per block, the spatial
   loops fused into one dimension of threads, any reduction loop serial in each thread),
   with the work group from the rule-based work-group size (`schedules.workgroup`) instead
   of always the target's largest: a multiple of the lock-step width that divides (or pads)
   the fused extent and leaves enough work groups for every shader core.
3. dlight's own `Fallback`, for a function the above cannot take (a symbolic extent).

`schedule_gpu_default` returns the scheduled function and the rule's name, or None when no
rule binds the whole function; `unbound_blocks` tells which blocks of a function run on no
thread, for the check after scheduling a model.
"""
from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir import dlight
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.schedule import SBlockRV
from tvm.target import Target

from schedules.default.rules import apply_rule
from schedules.workgroup import work_group
from targets.gpu_spec import GpuSpec


class WorkGroupFallback(dlight.gpu.Fallback):
    """dlight's `Fallback`, with rule-based work groups (see the module docstring)."""

    def __init__(self, gpu: GpuSpec):
        self.gpu = gpu

    def apply(self, func: tirx.PrimFunc, target: Target, _: bool) -> s_tir.Schedule | None:
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        sch = s_tir.Schedule(func)
        infos = normalize_prim_func(sch)
        if infos is None:
            return None
        reductions = []
        for info in dlight.try_inline(sch, infos):
            block = info.block_rv
            loops = sch.get_loops(block)
            if any(sch.get(loop).thread_binding is not None for loop in loops):
                continue
            kinds = info.dom_kind()
            if len(kinds) != len(loops):
                return None
            spatial = [loop for loop, kind in zip(loops, kinds) if kind == "S"]
            reduction = [loop for loop, kind in zip(loops, kinds) if kind == "R"]
            other = [loop for loop, kind in zip(loops, kinds) if kind == "O"]
            if not spatial:
                spatial = [sch.add_unit_loop(block)]
            sch.reorder(*spatial, *reduction, *other)
            fused = sch.fuse(*spatial)
            extent = sch.get(fused).extent
            if not isinstance(extent, tirx.IntImm):
                return None
            threads = work_group([int(extent)], self.gpu).local[0]
            groups, lanes = sch.split(fused, factors=[None, threads])
            sch.bind(groups, "blockIdx.x")
            sch.bind(lanes, "threadIdx.x")
            if reduction:
                reductions.append((block, reduction[0]))
        for block, loop in reductions:
            sch.decompose_reduction(block, loop)
        return sch


def gpu_rules(gpu: GpuSpec) -> list[tuple[str, dlight.ScheduleRule]]:
    """The rules `schedule_gpu_default` tries, in order, with their names."""
    return [("dlight Matmul", dlight.gpu.Matmul()), ("dlight GEMV", dlight.gpu.GEMV()),
            ("dlight Reduction", dlight.gpu.Reduction()), ("dlight GeneralReduction", dlight.gpu.GeneralReduction()),
            ("work-group Fallback", WorkGroupFallback(gpu)), ("dlight Fallback", dlight.gpu.Fallback())]


def schedule_gpu_default(func: tirx.PrimFunc, target: Target, gpu: GpuSpec) -> tuple[tirx.PrimFunc, str] | None:
    """`func` scheduled by the first rule that binds all its blocks to threads, with the rule's name;
    None when none does. The result carries `tirx.is_scheduled`."""
    for name, rule in gpu_rules(gpu):
        sch = apply_rule(rule, func, target)
        if sch is not None and not unbound_blocks(sch.mod["main"]):
            return sch.mod["main"].with_attr("tirx.is_scheduled", True), name
    return None


def unbound_blocks(func: tirx.PrimFunc) -> list[str]:
    """The blocks of `func` under no thread-bound loop (on a GPU target they would run as host code)."""
    sch = s_tir.Schedule(func)
    unbound: list[str] = []

    def visit(block: SBlockRV, bound: bool) -> None:
        bound = bound or any(sch.get(loop).thread_binding is not None for loop in sch.get_loops(block))
        children = list(sch.get_child_blocks(block))
        if not children and not bound:
            unbound.append(sch.get(block).name_hint)
        for child in children:
            visit(child, bound)

    for block in sch.get_child_blocks(sch.get_sblock("root")):
        visit(block, False)
    return unbound
