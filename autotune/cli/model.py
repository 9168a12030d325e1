"""Commands on an ONNX model: `tasks`, `tune`, `compile`, `bench`, sharing one set-up (`open_model`)."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autotune.cli.common import (
    Exit, UsageError, add_this_host_flag, add_tuning_flags, check_readable, check_writable, parse_shape, rpc_tracker,
    run_tuning, tune_options,
)
from autotune.cli.display import ModelProgressLine, note
from autotune.log.text import table
from targets import Device

if TYPE_CHECKING:
    import onnx
    import tvm

    from autotune.compile import ModelTask
    from autotune.log.packs import PackRecords
    from autotune.log.record import Record


@dataclass
class OpenModel:
    """A model command's inputs: the model as given and as lowered, its device, and the usable tuning records."""

    model: onnx.ModelProto
    shapes: dict[str, list[int]]
    imported: tvm.IRModule  # Relax, as imported
    module: tvm.IRModule  # lowered with template defaults
    device: Device
    records: list[Record]  # from the --log files
    packs: list[PackRecords]  # the pre-tuned packs that serve the device, exact ones before the nearest

    def tasks(self) -> list[ModelTask]:
        from autotune.compile import extract_tasks, with_alternatives

        return with_alternatives(extract_tasks(self.module, self.device))


def open_model(args: argparse.Namespace) -> OpenModel:
    """Device, model, input shapes, import, lowering and logs for a model command; usage errors in one line."""
    from autotune.model import ModelError, first_line, import_onnx, lower, read_model, resolve_shapes
    from autotune.log.packs import pack_records
    from targets import get_device

    try:
        device = get_device(args.device)
        if getattr(args, "this_host", False):
            device = device.driven_from_this_machine()
        model = read_model(args.model)
        shapes = resolve_shapes(model, parse_input_shapes(args.input_shape))
    except (ModelError, ValueError) as error:
        raise UsageError(str(error)) from None
    records = read_logs(args.logs, device)
    # TVM's thread pool reads this when it starts: without it each parallel region of a
    # model costs far more to launch (ResNet-18 here: 16.8 ms instead of 9.9 ms).
    os.environ.setdefault("TVM_NUM_THREADS", str(device.num_threads))
    note(f"importing {args.model} ...")
    try:
        imported = import_onnx(model, shapes)
    except Exception as error:  # noqa: BLE001 - the importer's failures on a checked model: one line
        raise UsageError(f"TVM's ONNX importer cannot read {args.model}: {first_line(error)}") from None
    module = lower(imported, layout=device.conv_layout)  # LoweringError names the operator
    return OpenModel(model, shapes, imported, module, device, records, pack_records(device))


def parse_input_shapes(items: list[str] | None) -> dict[str, list[int]]:
    """--input-shape name:1x3x224x224 (repeatable)."""
    shapes = {}
    for item in items or []:
        name, sep, dims = item.rpartition(":")
        if not sep or not name:
            raise UsageError(f"malformed --input-shape {item!r}: expected NAME:DIMS like input:1x3x224x224")
        shapes[name] = parse_shape(dims)
    return shapes


def read_logs(paths: list[str] | None, device: Device) -> list[Record]:
    """The usable records of the given logs; one line per log that has unusable ones."""
    from autotune.log.validate import validate

    records = []
    for path in paths or []:
        check_readable(path)
        report = validate(path, device)
        records += report.usable()
        if not report.ok:
            counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in report.counts().items() if n and kind != "valid")
            upgrade = f"; `autotune log upgrade {path} -o NEW` converts stale ones" if report.stale else ""
            note(f"{path}: {len(report.valid)} of {report.total} lines used ({counts}; `autotune log validate` lists them"
                 f"{upgrade})")
    return records


def cmd_tasks(args: argparse.Namespace) -> int:
    from autotune.compile import primfuncs

    opened = open_model(args)
    tasks = opened.tasks()
    total = sum(t.flops for t in tasks if not t.alternative_of) or 1
    number = {id(t): n for n, t in enumerate(tasks, 1)}
    rows = [(str(number[id(t)]), str(t.task.workload), t.task.template.name, str(t.calls), f"{t.flops / 1e6:.1f}",
             f"alternative to #{number[id(t.alternative_of)]}" if t.alternative_of else f"{t.flops / total:.1%}")
            for t in tasks]
    print("\n".join(table(("#", "workload", "template", "calls", "MFLOP", "share"), rows)))
    owned = {name for t in tasks for name in t.functions}
    others = sorted(set(primfuncs(opened.module)) - owned)
    print(f"{len(tasks)} tasks; {len(others)} other functions get default schedules: {', '.join(others)}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from autotune.scheduler import tune_model

    if args.minutes is not None and args.minutes <= 0:
        raise UsageError(f"--minutes must be positive, got {args.minutes:g}")
    options = tune_options(args, max_seconds=args.minutes * 60 if args.minutes else None)
    opened = open_model(args)
    tasks = opened.tasks()
    if not tasks:
        print("no operator of this model has a template: nothing to tune")
        return 0
    tracker = rpc_tracker(args, opened.device)
    log = args.log or f"{os.path.splitext(os.path.basename(args.model))[0]}-{opened.device.name}.jsonl"
    check_writable(log)
    note(f"{len(tasks)} tasks, {args.trials} trials, tuner {args.tuner}, log {log}")
    progress = ModelProgressLine()
    result = run_tuning(args, tracker, opened.device, log, progress,
                        lambda runner: tune_model(tasks, log, options, runner=runner, on_progress=progress))
    total = result.latency or 1
    fastest = result.operator_latency()
    again = f" (and {result.remeasured} re-measurements of the tasks' best configs)" if result.remeasured else ""
    print(f"measured {result.measured} new configs{again} in {result.elapsed:.0f}s; "
          f"tuned operators: {result.latency * 1e3:.3f} ms per inference")
    rows = []
    for state in result.tasks:
        task, best = state.model_task.task, state.session.best_cost
        measured = best < float("inf")
        if not measured:
            share = "not measured"
        elif state.latency <= fastest[state.model_task.operator_key]:
            share = f"{state.latency / total:.1%}"
        else:
            share = "slower algorithm, not used"
        rows.append((str(task.workload), str(state.model_task.calls), str(state.trials),
                     f"{best * 1e3:.4f}" if measured else "-", f"{task.gflops(best):.1f}" if measured else "-", share))
    print("\n".join(table(("workload", "calls", "trials", "best ms", "GFLOPS", "share"), rows)))
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from autotune.compile import (UnboundFunctionError, compile_model_with_launches, export_model, load_model,
                                  lower_for_logs, schedule_model, thread_pool_for)
    from autotune.model import input_dtypes
    from targets.kernel_launch import LaunchLimitError

    opened = open_model(args)
    device, records, packs = opened.device, opened.records, opened.packs
    module, tasks = lower_for_logs(opened.imported, device, records, packs, lowered=opened.module)
    try:
        scheduled, coverage = schedule_model(module, device, records, packs=packs, tasks=tasks)
        print(coverage.summary())
        print(*coverage.details(), sep="\n", end="\n" if coverage.details() else "")
        if args.strict and (coverage.fallback or coverage.failed):
            for name in coverage.fallback:
                print(f"untuned: {name}")
            note(f"autotune: --strict: {len(coverage.fallback) + len(coverage.failed)} tasks would use a fallback")
            return 1
        executable, launches = compile_model_with_launches(scheduled, device)
    except (UnboundFunctionError, LaunchLimitError) as error:
        raise Exit(1, f"autotune: {error}") from None
    if device.gpu is not None:
        print(launch_summary(launches, device))
    dtypes = input_dtypes(opened.model)
    inputs = {name: (dims, dtypes[name]) for name, dims in opened.shapes.items()}
    export_model(executable, device, args.output, inputs, thread_pool_for(tasks, records))
    if not device.cross_compiler:  # it loads back (a GPU's library: where this machine runs OpenCL)
        from targets.opencl_runtime import opencl_unavailable_reason

        reason = opencl_unavailable_reason() if device.runtime_kind == "opencl" else None
        if reason:
            note(f"not loaded back here: {reason}")
        else:
            load_model(args.output, device=device)
    print(f"wrote {args.output} (and {args.output}.json)")
    return 0


def launch_summary(launches, device: Device) -> str:
    """One line on a GPU model's kernels against the GPU's limits."""
    from targets.kernel_launch import check_launches

    gpu = device.gpu
    unaligned = [v for v in check_launches(launches, gpu) if not v.hard and v.allowed]
    text = (f"{len(launches)} OpenCL kernels within the limits of the {gpu.name}: work groups of up to "
            f"{max((l.threads for l in launches), default=0)} threads (limit {gpu.max_threads_per_work_group}), "
            f"local memory up to {max((l.local_memory_bytes for l in launches), default=0)} bytes "
            f"(limit {gpu.local_memory_bytes})")
    if unaligned:
        text += f"; {len(unaligned)} work groups not a multiple of the lock-step width {gpu.lockstep_width}"
    return text


def cmd_bench(args: argparse.Namespace) -> int:
    from autotune.bench import ORTRunner, VMRunner, compare, onnxruntime_available, random_inputs
    from autotune.compile import compile_model, lower_for_logs, schedule_model

    opened = open_model(args)
    device, records, packs = opened.device, opened.records, opened.packs
    if device.cross_compiler or device.family != "cpu":
        raise UsageError(f"bench runs on this machine; device {device.name!r} is not it")
    feeds = random_inputs(opened.model, opened.shapes)
    runners = {}
    if records or packs:
        tuned_module, tasks = lower_for_logs(opened.imported, device, records, packs, lowered=opened.module)
        scheduled, coverage = schedule_model(tuned_module, device, records, packs=packs, tasks=tasks)
        note(f"tuned: {coverage.summary()}")
        runners["tuned"] = VMRunner(compile_model(scheduled, device), feeds, device)
    untuned, _ = schedule_model(opened.module, device, tuned=False)
    runners["untuned"] = VMRunner(compile_model(untuned, device), feeds, device)
    if not args.no_ort and onnxruntime_available():
        runners["onnxruntime"] = ORTRunner(opened.model, feeds, device.num_threads)
    elif not args.no_ort:
        note("onnxruntime is not installed (pip install 'autotune[ort]'): comparing the TVM builds only")
    reference = "onnxruntime" if "onnxruntime" in runners else "untuned"
    timings = compare(runners, reference, rounds=args.rounds, log=note)
    base = {t.name: t.median_seconds for t in timings}[reference]
    print(f"{'':12s} {'median ms':>10}  {'vs ' + reference:>16}  output vs {reference}")
    for t in timings:
        check = "reference" if t.name == reference else f"max abs diff {t.max_abs_diff:.2g}" + ("" if t.close else " (NOT within 1e-4)")
        print(f"{t.name:12s} {t.median_seconds * 1e3:10.3f}  {t.median_seconds / base:15.2f}x  {check}")
    return 0 if all(t.close for t in timings) else 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    def model_command(name: str, help: str, run, **kwargs) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help, **kwargs)
        parser.add_argument("model", help="ONNX model file")
        parser.add_argument("--input-shape", action="append", metavar="NAME:DIMS",
                            help="an input's shape, e.g. input:1x3x224x224 (repeatable)")
        parser.add_argument("--device", default="host", help="device preset (default host; see `autotune devices`)")
        parser.set_defaults(run=run, logs=None)  # compile and bench read logs (--log)
        return parser

    tune = model_command("tune", "tune an ONNX model's operators", cmd_tune,
                         description="Tune every operator of an ONNX model that has a template, within one trial budget.")
    add_tuning_flags(tune, default_trials=2000)
    tune.add_argument("--log", help="JSON-lines tuning log; resumed if it exists (default: <model>-<device>.jsonl)")
    tune.add_argument("--minutes", type=float, help="stop after this much wall time, whatever trials are left")
    add_this_host_flag(tune)

    model_command("tasks", "list the tuning tasks of an ONNX model", cmd_tasks)

    compile_ = model_command("compile", "compile an ONNX model with the best configs of tuning logs", cmd_compile)
    compile_.add_argument("--log", action="append", dest="logs",
                          help="tuning log (repeatable); untuned tasks get their template's default")
    compile_.add_argument("-o", "--output", required=True, help="shared library to write (a manifest goes beside it)")
    compile_.add_argument("--strict", action="store_true", help="fail, naming them, if any task would use a fallback")
    add_this_host_flag(compile_)

    bench = model_command("bench", "time an ONNX model tuned, untuned and in ONNX Runtime", cmd_bench)
    bench.add_argument("--log", action="append", dest="logs", help="tuning log (repeatable)")
    bench.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    bench.add_argument("--no-ort", action="store_true", help="do not compare with ONNX Runtime")
