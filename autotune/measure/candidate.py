"""What a candidate runs: the function a compiled model calls, scheduled with the config.

A task of a model carries the model's own PrimFunc (the anchor with its fused epilogue:
bias, activation, residual add, a squeeze-excite gate), so tuning times what the model
runs; an operator tuned on its own has the template's compute. Weight packs that the
template marks as layout rewrites run once when a model is compiled
(`autotune.compile.prepack_weights`): a candidate is built the same way, with TVM's
`SplitLayoutRewritePreproc`, as a compute function "main" that reads the packed weight
and one "prepack_<argument>" function per packed weight, which the runner calls once
before timing.
"""
from __future__ import annotations

import tvm
from tvm import relax, s_tir, tirx

from autotune.measure.result import MeasureInput, PackedArg
from schedules.matching import LAYOUT_REWRITE_PREPROC, top_blocks


def scheduled_function(inp: MeasureInput) -> tirx.PrimFunc:
    """The candidate's PrimFunc: the model's function (or the template's compute) scheduled with its config."""
    return inp.template.schedule(inp.workload, inp.config, inp.device, inp.function)


def candidate_module(inp: MeasureInput) -> tuple[tvm.IRModule, tuple[PackedArg, ...]]:
    """The module to build: "main" without its weight packs, a "prepack_<i>" function per packed argument i."""
    func = scheduled_function(inp)
    if not _packs_weights(func):
        return tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), ()
    builder = relax.BlockBuilder()
    callee = builder.add_func(func.without_attr("global_symbol"), "candidate")
    params = [relax.Var(f"arg{i}", _type(p)) for i, p in enumerate(func.params[:-1])]
    with builder.function("main", params):
        with builder.dataflow():
            result = builder.emit_output(relax.call_tir(callee, params, _type(func.params[-1])))
        builder.emit_func_output(result)
    split = relax.transform.SplitLayoutRewritePreproc()(builder.get())
    functions, packed = {}, []
    for binding in split["main"].body.blocks[0].bindings:  # the packs' calls read arguments, the compute's their results
        call = binding.value
        if not isinstance(call, relax.Call) or not isinstance(call.args[0], relax.GlobalVar):
            continue
        function, args = split[call.args[0]], list(call.args[1].fields)
        positions = [next((i for i, p in enumerate(params) if p.same_as(a)), None) for a in args]
        if None in positions:
            functions["main"] = function
        else:
            functions[f"prepack_{positions[0]}"] = function
            packed.append((positions[0], tuple(int(d) for d in function.params[-1].shape), str(function.params[-1].dtype)))
    return tvm.IRModule({name: f.with_attr("global_symbol", name) for name, f in functions.items()}), tuple(packed)


def with_packs_unmarked(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """`func` without its layout-rewrite marks, as TVM's feature extractor needs it (it fails on a marked block)."""
    sch = s_tir.Schedule(func)
    for block in _pack_blocks(sch):
        sch.unannotate(block, LAYOUT_REWRITE_PREPROC)
    return sch.mod["main"]


def _packs_weights(func: tirx.PrimFunc) -> bool:
    return bool(_pack_blocks(s_tir.Schedule(func)))


def _pack_blocks(sch: s_tir.Schedule) -> list:
    """The blocks a template marked as weight packs (layout rewrites)."""
    return [block for block in top_blocks(sch) if LAYOUT_REWRITE_PREPROC in (sch.get(block).annotations or {})]


def _type(buffer) -> relax.TensorType:
    return relax.TensorType([int(d) for d in buffer.shape], str(buffer.dtype))
