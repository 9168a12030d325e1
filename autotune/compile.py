"""From a lowered model to tasks, and from tuning logs to a scheduled, compiled model.

Every PrimFunc of the model is offered to the templates of the device's family; the
first whose matcher recognises it owns it. Functions with the same workload share one
task, weighted by how often one inference calls them. Where a template offers another
algorithm for a task's operator (Winograd for a 3x3 conv2d), tuning measures that too,
and compiling lowers each operator with the algorithm its logs found faster. Compiling
schedules each owned function with its task's best logged config (the template's
default when the logs have none) and every other function with the default schedule of the
device's family, and says which got what. On an OpenCL device no function may stay without
a thread binding (it would silently run as host code): scheduling fails loudly instead, and
compiling checks every kernel's launch against the GPU's limits.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import tvm
from tvm import relax, s_tir, tirx

from autotune.layout_plan import PLAIN_LAYOUT_ATTR
from autotune.model import first_line, lower
from autotune.log.packs import PackRecords, best_config
from autotune.log.record import Record
from autotune.log.store import as_store
from autotune.task import Task
from schedules import Config, Template, TemplateRegistry, Workload, default_registry
from schedules.registry import default_schedule
from schedules.threading import thread_pool_setting
from targets import Device, get_device
from targets.kernel_launch import KernelLaunch, LaunchLimitError, compile_recording_launches, hard_violations
from targets.tvm_compat import config_threadpool


@dataclass
class ModelTask:
    """A task of a model: its workload, the functions that compute it and their calls per inference."""

    task: Task
    functions: list[str] = field(default_factory=list)
    calls: int = 0
    alternative_of: ModelTask | None = None  # the task whose operator this one computes another way

    @property
    def flops(self) -> int:
        return self.task.flops * self.calls

    @property
    def operator_key(self) -> str:
        """The key of the operator instance this task computes: alternatives of one task share it."""
        return (self.alternative_of or self).task.workload.key


def match_function(func: tirx.PrimFunc, registry: TemplateRegistry, family: str) -> tuple[Template, Workload] | None:
    """The template that recognises `func`, with the workload it computes."""
    for template in registry.templates(family):
        try:
            workload = template.match(s_tir.Schedule(func))
        except Exception:  # noqa: BLE001 - an unusual function (no root block: a scatter) is no template's
            continue
        if workload is not None:
            return template, workload
    return None


def primfuncs(module: tvm.IRModule) -> dict[str, tirx.PrimFunc]:
    return {gv.name_hint: func for gv, func in module.functions.items() if isinstance(func, tirx.PrimFunc)}


def call_counts(module: tvm.IRModule) -> Counter:
    """How often `main` calls each PrimFunc per inference."""
    call_tir = tvm.ir.Op.get("relax.call_tir")
    counts: Counter = Counter()
    for block in module["main"].body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Call) and value.op.same_as(call_tir):
                counts[value.args[0].name_hint] += 1
    return counts


def extract_tasks(module: tvm.IRModule, device: Device, registry: TemplateRegistry | None = None) -> list[ModelTask]:
    """One task per distinct workload a template recognises, heaviest (FLOPs x calls) first; each
    carries the first function of its workload, which tuning builds and times."""
    registry = registry or default_registry()
    counts = call_counts(module)
    tasks: dict[tuple[str, str], ModelTask] = {}
    for name, func in primfuncs(module).items():
        matched = match_function(func, registry, device.family)
        if matched is None:
            continue
        template, workload = matched
        entry = tasks.setdefault((template.name, workload.key), ModelTask(Task(template, workload, device, func)))
        entry.functions.append(name)
        entry.calls += counts[name]
    return sorted(tasks.values(), key=lambda t: -t.flops)


def with_alternatives(tasks: list[ModelTask], registry: TemplateRegistry | None = None) -> list[ModelTask]:
    """`tasks`, each followed by a task per other algorithm a template offers for it (to tune both)."""
    registry = registry or default_registry()
    result = []
    for model_task in tasks:
        result.append(model_task)
        task = model_task.task
        for template in registry.templates(task.device.family):
            if template.alternative_to == task.workload.op and template.serves(task.workload):
                workload = Workload.make(template.op, **dict(task.workload.args))
                result.append(ModelTask(Task(template, workload, task.device), [], model_task.calls, model_task))
    return result


def replaced_by_alternatives(
    tasks: list[ModelTask], records: Iterable[Record], packs: Sequence[PackRecords] = ()
) -> set[Workload]:
    """Workloads of the tasks whose logged alternative algorithm beat their own best config (logs first, then packs)."""
    records = as_store(records)

    def best_cost(task: Task) -> float:
        best = best_config(task, records, packs)
        return best[1].cost if best else float("inf")

    return {t.alternative_of.task.workload for t in tasks
            if t.alternative_of and best_cost(t.task) < best_cost(t.alternative_of.task)}


def lower_for_logs(
    imported: tvm.IRModule,
    device: Device,
    records: Iterable[Record] = (),
    packs: Sequence[PackRecords] = (),
    registry: TemplateRegistry | None = None,
    lowered: tvm.IRModule | None = None,
) -> tuple[tvm.IRModule, list[ModelTask]]:
    """The imported model lowered with, per operator, the algorithm the logs measured fastest; and its tasks.

    Winograd's is the one alternative algorithm today (`lower`'s `winograd_convs`).
    `lowered`: `lower(imported, layout=device.conv_layout)`, when the caller has it already.
    """
    records = as_store(records)
    module = lowered if lowered is not None else lower(imported, layout=device.conv_layout)
    tasks = extract_tasks(module, device, registry)
    winograd_convs = replaced_by_alternatives(with_alternatives(tasks, registry), records, packs)
    if winograd_convs:
        module = lower(imported, winograd_convs, device.conv_layout)
        tasks = extract_tasks(module, device, registry)
    return module, tasks


@dataclass
class Coverage:
    """How each PrimFunc of a compiled model was scheduled."""

    tuned: list[str] = field(default_factory=list)  # tasks with a logged config
    from_packs: dict[str, list[str]] = field(default_factory=dict)  # of which, per pack label, configs from a pack
    fallback: list[str] = field(default_factory=list)  # tasks on their template's default config
    default_schedule: list[str] = field(default_factory=list)  # functions no template owns
    default_rules: Counter = field(default_factory=Counter)  # of which, per default rule, how many it scheduled
    gpu: bool = False  # an OpenCL device's coverage: its default schedule is the GPU one
    unscheduled: list[str] = field(default_factory=list)  # functions nothing could schedule
    failed: list[str] = field(default_factory=list)  # functions their chosen config did not apply to
    plain_layout: list[str] = field(default_factory=list)  # operators lowered without a template, with why

    def summary(self) -> str:
        total = len(self.tuned) + len(self.fallback)
        packs = ", ".join(f"{len(names)} from {label}" for label, names in self.from_packs.items())
        packs = f" ({packs})" if packs else ""
        text = (f"coverage: {len(self.tuned)}/{total} tasks tuned{packs}, {len(self.fallback)} on default configs; "
                f"{len(self.default_schedule)} other functions on default schedules")
        if self.gpu:
            rules = ", ".join(f"{rule} {n}" for rule, n in self.default_rules.most_common())
            text = (f"coverage: {total} tasks on templates ({len(self.tuned)} tuned{packs}, {len(self.fallback)} on "
                    f"default configs); {len(self.default_schedule)} other functions on the GPU default schedule"
                    + (f" ({rules})" if rules else ""))
        if self.failed:
            text += f"; the chosen config did not apply to {len(self.failed)} functions (default config used)"
        if self.unscheduled:
            text += f", {len(self.unscheduled)} unscheduled ({', '.join(self.unscheduled)})"
        if self.plain_layout:
            text += f"; {len(self.plain_layout)} convs without a template, on TVM's compute and a default schedule"
        return text

    def details(self) -> list[str]:
        """One line per fallback, saying what fell back and why."""
        return ([f"  no template: {entry}" for entry in self.plain_layout]
                + [f"  chosen config did not apply: {name}" for name in self.failed]
                + [f"  not scheduled: {name}" for name in self.unscheduled])


def schedule_model(
    module: tvm.IRModule,
    device: Device,
    records: Iterable[Record] = (),
    registry: TemplateRegistry | None = None,
    tuned: bool = True,
    packs: Sequence[PackRecords] = (),
    tasks: list[ModelTask] | None = None,
) -> tuple[tvm.IRModule, Coverage]:
    """`module` with every PrimFunc scheduled: best logged configs (`tuned`), else defaults.

    `packs` (pre-tuned records shipped with the package, exact before nearest) serve the
    tasks that `records` (the user's logs) do not cover, before the templates' defaults. `tasks`: the module's
    `extract_tasks`, when the caller has them already.
    """
    registry = registry or default_registry()
    records = as_store(records)
    default = default_schedule(device)
    coverage = Coverage(plain_layout=[str(entry) for entry in (module.attrs or {}).get(PLAIN_LAYOUT_ATTR, [])],
                        gpu=device.family == "opencl")
    module = tvm.IRModule(dict(module.functions.items()), attrs=module.attrs)
    scheduled: dict[str, tirx.PrimFunc | None] = {}
    for model_task in tasks if tasks is not None else extract_tasks(module, device, registry):
        if model_task.alternative_of:  # another algorithm's task: this module does not compute it
            continue
        task = model_task.task
        best = best_config(task, records, packs) if tuned else None
        config = best[0] if best else task.default_config
        (coverage.tuned if best else coverage.fallback).append(str(task.workload))
        if best and best[2]:
            coverage.from_packs.setdefault(best[2].label, []).append(str(task.workload))
        for name in model_task.functions:
            func = module[name]
            scheduled[name], error = _apply(task, func, config)
            if error:  # reported, then the default config, then a default schedule
                coverage.failed.append(f"{name} ({error})")
                scheduled[name] = _apply(task, func, task.default_config)[0] or _first(default(func))
    for name, func in primfuncs(module).items():
        if name not in scheduled:
            result = default(func)
            scheduled[name] = _first(result)
            (coverage.unscheduled if result is None else coverage.default_schedule).append(name)
            if result is not None:
                coverage.default_rules[result[1]] += 1
    if device.family == "opencl":
        check_bound(scheduled, device)
    for name, func in scheduled.items():
        if func is not None:
            module.update_func(module.get_global_var(name), func.with_attr("tirx.is_scheduled", True))
    return module, coverage


class UnboundFunctionError(RuntimeError):
    """Functions of a model for a GPU that no schedule bound to threads (they would run as host code)."""


def check_bound(scheduled: dict[str, tirx.PrimFunc | None], device: Device) -> None:
    """UnboundFunctionError naming every function whose blocks are not all bound to GPU threads."""
    from schedules.default.gpu import unbound_blocks

    unbound = {name: ["not scheduled"] if func is None else unbound_blocks(func) for name, func in scheduled.items()}
    unbound = {name: blocks for name, blocks in unbound.items() if blocks}
    if unbound:
        named = "; ".join(f"{name} ({', '.join(blocks)})" for name, blocks in sorted(unbound.items()))
        raise UnboundFunctionError(f"{len(unbound)} functions would run as host code on {device.name}, "
                                   f"bound to no GPU thread: {named}")


def _first(result: tuple[tirx.PrimFunc, str] | None) -> tirx.PrimFunc | None:
    return None if result is None else result[0]


def _apply(task: Task, func: tirx.PrimFunc, config: Config) -> tuple[tirx.PrimFunc | None, str | None]:
    """`func` scheduled with `config`; or None and why the template could not apply it there."""
    try:
        return task.template.schedule(task.workload, config, task.device, func), None
    except Exception as error:  # noqa: BLE001 - a config that fails on one function falls back, reported in the coverage
        return None, first_line(error)



def compile_model(module: tvm.IRModule, device: Device) -> relax.Executable:
    """Build a scheduled model for the device (the device's host target for the VM code); for a GPU,
    LaunchLimitError when a kernel's launch is past the GPU's limits."""
    return compile_model_with_launches(module, device)[0]


def compile_model_with_launches(module: tvm.IRModule, device: Device) -> tuple[relax.Executable, list[KernelLaunch]]:
    """`compile_model`, and the launch of each of its GPU kernels (none on a CPU)."""
    module = prepack_weights(module)
    if device.gpu is None:
        return tvm.compile(module, target=device.tvm_target), []
    executable, launches = compile_recording_launches(module, device.tvm_target)
    hosted = functions_without_kernels(module, launches)
    if hosted:
        raise UnboundFunctionError(f"{len(hosted)} functions compiled to host code on {device.name}, with no OpenCL "
                                   f"kernel: {', '.join(hosted)}")
    violations = hard_violations(launches, device.gpu)
    if violations:
        raise LaunchLimitError(device.name, violations)
    return executable, launches


def functions_without_kernels(module: tvm.IRModule, launches: Sequence[KernelLaunch]) -> list[str]:
    """The PrimFuncs of `module` none of `launches` comes from. TVM names a function's kernels
    "<function>_kernel", "<function>_kernel_1", ...; where `tvm.compile`'s own FuseOps/FuseTIR fuse a
    call again (ShuffleNet's channel pad with the split it reads), "fused_<function>_<other>..._kernel"."""
    names = set(primfuncs(module))
    bases = {re.sub(r"_kernel(_\d+)?$", "", launch.kernel) for launch in launches}
    refused = [base.removeprefix("fused_") for base in bases - names if base.startswith("fused_")]
    return sorted(name for name in names
                  if name not in bases and not any(re.search(rf"(^|_){re.escape(name)}(_|$)", r) for r in refused))


def prepack_weights(module: tvm.IRModule) -> tvm.IRModule:
    """Run the weight copies the templates marked as layout rewrites (matmul's packed B) once, now.

    Each becomes a function of its own (`SplitLayoutRewritePreproc`), which constant
    folding evaluates on the weight, so the model calls only the compute. The pass fails
    on some functions of other shapes (a scatter's loop nest without a compute block):
    the model then packs weights on every call, slower but right.
    """
    try:
        module = relax.transform.SplitLayoutRewritePreproc()(module)
    except tvm.error.InternalError:
        return module
    return relax.transform.DeadCodeElimination()(relax.transform.FoldConstant()(module))


def thread_pool_for(tasks: list[ModelTask], records: Iterable[Record]) -> tuple[int, int] | None:
    """(mode, threads) for `runtime.config_threadpool` at deployment, from the tuned configs.

    On big.LITTLE devices thread count and core affinity are knobs of every task; a model
    runs with one thread pool, so it takes the setting of the task that costs the model
    the most time. None when the device has no such knobs or nothing was tuned.
    """
    records = as_store(records)
    weighted = []
    for model_task in tasks:
        best = model_task.task.best(records)
        if best is not None and thread_pool_setting(best[0].values) is not None:
            weighted.append((model_task.calls * best[1].cost, thread_pool_setting(best[0].values)))
    return max(weighted)[1] if weighted else None


def export_model(executable: relax.Executable, device: Device, path: str, inputs: dict[str, tuple[list[int], str]],
                 thread_pool: tuple[int, int] | None = None) -> str:
    """Write the device's shared library and, beside it, a manifest (`<path>.json`) of what it needs at run time."""
    device.export_library(executable, path)
    manifest = {"device": device.name, "target": device.target, "inputs": inputs,
                "thread_pool": list(thread_pool) if thread_pool else None}
    with open(path + ".json", "w") as stream:
        json.dump(manifest, stream, indent=1)
    return path + ".json"


def load_model(path: str, session=None, device: Device | None = None) -> relax.VirtualMachine:
    """A compiled model's VM on its device's runtime device, with its manifest's thread pool applied first.

    `session` is a TVM RPC session for a model that runs on a remote device (the library
    is uploaded there); None runs on this machine. `device`: the device it was compiled for
    (default: the preset its manifest names). Set TVM_NUM_THREADS in the process
    before TVM's thread pool starts: parallel regions launch much faster with it.
    """
    with open(path + ".json") as stream:
        manifest = json.load(stream)
    device = device or get_device(manifest["device"])
    if session is None:
        dev = device.runtime_device()  # first: an OpenCL module loads with the OpenCL runtime only
        lib = tvm.runtime.load_module(path)
    else:
        session.upload(path)
        dev, lib = device.runtime_device(session), session.load_module(os.path.basename(path))
    if manifest.get("thread_pool"):
        config_threadpool(session)(*manifest["thread_pool"])
    return relax.VirtualMachine(lib, dev)
