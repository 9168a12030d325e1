"""The `autotune` command line."""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from autotune.engine import DeviceLostError, Progress, tune_task
from autotune.measure import LocalBuilder, LocalRunner, TimingOptions
from autotune.measure.rpc_runner import RPCRunner, Tracker
from autotune.log.jsonl import LogWarning
from autotune.task import Task
from autotune.tuners import TUNERS
from targets import Device

EXIT_USAGE = 2


class UsageError(Exception):
    """A user mistake: reported as one line with exit code 2."""


def parse_shape(text: str) -> list[int]:
    try:
        shape = [int(part) for part in text.replace("x", ",").split(",")]
    except ValueError:
        raise UsageError(f"malformed shape {text!r}: expected positive integers like 1024,1024,1024") from None
    if not shape or any(d < 1 for d in shape):
        raise UsageError(f"malformed shape {text!r}: expected positive integers like 1024,1024,1024")
    return shape


def check_writable(path: str) -> None:
    """Fail before tuning, not after the first measured batch."""
    if os.path.isdir(path):
        raise UsageError(f"log path {path!r} is a directory")
    existed = os.path.exists(path)
    try:
        with open(path, "a"):
            pass
    except OSError as error:
        raise UsageError(f"cannot write log {path!r}: {error.strerror}") from None
    if not existed:
        os.unlink(path)  # the tuning run creates it; a failed command leaves nothing behind


def check_readable(path: str) -> None:
    if not os.path.isfile(path):
        raise UsageError(f"no such log file: {path!r}")


class ProgressLine:
    """One live status line on a terminal; a line per batch otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.live = stream.isatty()

    def __call__(self, p: Progress) -> None:
        best = f"{p.best_gflops:.1f} GFLOPS" if p.best_gflops else "none yet"
        self.write(f"[{p.measured:>{len(str(p.budget))}}/{p.budget}] errors {p.errors} | best {best} | {p.elapsed:.0f}s")

    def write(self, text: str) -> None:
        if self.live:
            self.stream.write("\r" + text + "\033[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.live:
            self.stream.write("\n")


def check_tuning_flags(args: argparse.Namespace) -> None:
    for flag in ("trials", "batch_size", "repeat", "early_stopping"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be positive, got {value}")
    for flag in ("min_repeat_ms", "cooldown_ms"):
        if getattr(args, flag) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must not be negative, got {getattr(args, flag)}")
    if args.run_timeout <= 0:
        raise UsageError(f"--run-timeout must be positive, got {args.run_timeout:g}")
    if (args.tracker or args.rpc_key) and not args.rpc:
        raise UsageError("--tracker and --rpc-key take effect with --rpc only")


def timing_options(args: argparse.Namespace) -> TimingOptions:
    return TimingOptions(repeat=args.repeat, min_repeat_ms=args.min_repeat_ms, cooldown_ms=args.cooldown_ms, timeout=args.run_timeout)


def cmd_tune_op(args: argparse.Namespace) -> int:
    check_tuning_flags(args)
    try:
        task = Task.create(args.op, parse_shape(args.shape), args.dtype, args.device)
        size = len(task.space)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.transfer_log:
        check_readable(args.transfer_log)
        if args.tuner != "xgb":
            raise UsageError("--transfer-log needs the model-guided tuner (--tuner xgb)")
    timing = timing_options(args)
    tracker = rpc_tracker(args, task.device)
    log = args.log or f"{task.workload.op}-{args.shape.replace(',', 'x')}-{task.device.name}.jsonl"
    check_writable(log)

    print(f"tuning {task}", file=sys.stderr)
    print(f"space: {size:,} configs; tuner {args.tuner}; log {log}", file=sys.stderr)
    progress = ProgressLine()
    try:
        runner = RPCRunner(tracker, task.device.family, timing) if tracker else LocalRunner(timing)
        with LocalBuilder() as builder, runner:
            result = tune_task(
                task, args.trials, args.tuner, log, builder, runner, batch_size=args.batch_size,
                early_stopping=args.early_stopping, seed=args.seed, on_progress=progress,
                transfer_log=args.transfer_log,
            )
    except KeyboardInterrupt:
        progress.done()
        print(f"interrupted: every finished measurement is in {log}; run the same command to resume", file=sys.stderr)
        return 130
    except DeviceLostError as error:
        progress.done()
        print(f"autotune: device lost: {error}", file=sys.stderr)
        return 1
    progress.done()
    if result.resumed:
        print(f"resumed: {result.resumed} configs were already in the log", file=sys.stderr)
    share = result.search_seconds / result.elapsed if result.elapsed else 0.0
    print(f"measured {result.measured} new configs ({result.errors} errors) in {result.elapsed:.0f}s"
          f" (search and model: {share:.0%} of it, at most {result.worst_round_search_share:.0%} of a round)")
    if result.best_config is None:
        print("no config ran correctly; see the error messages in the log")
        return 1
    if tracker:
        print(f"best config: {result.best_config}")
        print(f"best: {result.best_cost * 1e3:.4g} ms = {result.best_gflops:.1f} GFLOPS on {tracker.key}")
    else:
        print_summary(task, result.best_config)
    return 0


def rpc_tracker(args: argparse.Namespace, device: Device) -> Tracker | None:
    """Where to measure: None for this machine, else the tracker and key of the device."""
    if not args.rpc:
        if device.cross_compiler or device.family != "cpu":
            raise UsageError(f"device {device.name!r} cannot run here: measure on it with --rpc (and --tracker)")
        return None
    tracker, _ = reach_tracker(args.tracker, args.rpc_key or device.rpc_key or device.name)
    return tracker


def reach_tracker(address: str | None, key: str) -> tuple[Tracker, dict]:
    """The tracker at `address` (or from the environment) and its summary, or a usage error."""
    try:
        tracker = Tracker.parse(address, key)
        return tracker, tracker.summary()
    except ValueError as error:
        raise UsageError(str(error)) from None
    except Exception:  # noqa: BLE001 - refused, unreachable, not a tracker
        raise UsageError(f"no RPC tracker answers at {address or 'TVM_TRACKER_HOST:TVM_TRACKER_PORT'}") from None


def cmd_devices(args: argparse.Namespace) -> int:
    from targets import PRESETS, get_device

    use_tracker = bool(args.tracker or os.environ.get("TVM_TRACKER_HOST"))
    summary = reach_tracker(args.tracker, "")[1] if use_tracker else {}
    print(f"{'preset':15s} {'family':7s} {'threads':>7s}  {'rpc key':15s} description")
    for name in PRESETS:
        device = get_device(name)
        print(f"{name:15s} {device.family:7s} {device.num_threads:>7d}  {device.rpc_key or '-':15s} {device.description}")
    if use_tracker:
        print("\ndevices registered with the tracker:")
        queues = summary.get("queue_info", {})
        if not queues:
            print("  none")
        for key, queue in sorted(queues.items()):
            print(f"  {key:20s} free {queue.get('free', 0)}, queued requests {queue.get('pending', 0)}")
    return 0


def print_summary(task: Task, config) -> None:
    """Best config, re-measured beside numpy in this run."""
    from autotune.baseline import numpy_seconds, remeasure

    print(f"best config: {config}")
    final = remeasure(task, config)
    if not final.ok:
        print(f"re-measuring the best config failed: {final.error.value}: {final.message}")
        return
    ours, ref = task.gflops(final.cost), task.gflops(numpy_seconds(task))
    print(f"best: {final.cost * 1e3:.4g} ms = {ours:.1f} GFLOPS; numpy: {ref:.1f} GFLOPS; ratio {ours / ref:.2f}x")


def cmd_model_eval(args: argparse.Namespace) -> int:
    from autotune.model_eval import evaluate_log

    check_readable(args.log)
    try:
        qualities = evaluate_log(args.log, args.train_fraction, args.objective, args.k, args.seed)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not qualities:
        print("no workload in the log has enough records (4 or more) to evaluate")
        return 1
    for q in qualities:
        print(f"{q.workload}: trained on {q.n_train}, tested on {q.n_test}: "
              f"Spearman {q.spearman:.3f}, top-{q.k} recall {q.top_k_recall:.2f}")
    return 0


def parse_input_shapes(items: list[str] | None) -> dict[str, list[int]]:
    """--input-shape name:1x3x224x224 (repeatable)."""
    shapes = {}
    for item in items or []:
        name, sep, dims = item.rpartition(":")
        if not sep or not name:
            raise UsageError(f"malformed --input-shape {item!r}: expected NAME:DIMS like input:1x3x224x224")
        shapes[name] = parse_shape(dims)
    return shapes


def open_model(args: argparse.Namespace):
    """(ONNX model, input shapes, imported and lowered modules, device) for the model commands; usage errors in one line."""
    from autotune.model import ModelError, import_onnx, lower, read_model, resolve_shapes
    from targets import get_device

    try:
        device = get_device(args.device)
        model = read_model(args.model)
        shapes = resolve_shapes(model, parse_input_shapes(args.input_shape))
    except (ModelError, ValueError) as error:
        raise UsageError(str(error)) from None
    # TVM's thread pool reads this when it starts: without it each parallel region of a
    # model costs far more to launch (ResNet-18 here: 16.8 ms instead of 9.9 ms).
    os.environ.setdefault("TVM_NUM_THREADS", str(device.num_threads))
    print(f"importing {args.model} ...", file=sys.stderr)
    try:
        imported = import_onnx(model, shapes)
    except Exception as error:  # noqa: BLE001 - the importer's failures on a checked model: one line
        raise UsageError(f"TVM's ONNX importer cannot read {args.model}: {first_line(error)}") from None
    module = lower(imported)  # LoweringError names the operator
    return model, shapes, imported, module, device


def read_logs(paths: list[str] | None, device: Device) -> list:
    """The usable records of the given logs; one line per log that has unusable ones."""
    from autotune.log.validate import validate

    records = []
    for path in paths or []:
        check_readable(path)
        report = validate(path, device)
        records += report.usable()
        if not report.ok:
            counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in report.counts().items() if n and kind != "valid")
            print(f"{path}: {len(report.valid)} of {report.total} lines used ({counts}; `autotune log validate` lists them)",
                  file=sys.stderr)
    return records


def cmd_tasks(args: argparse.Namespace) -> int:
    from autotune.compile import extract_tasks, primfuncs, with_alternatives

    _, _, _, module, device = open_model(args)
    tasks = with_alternatives(extract_tasks(module, device))
    total = sum(t.flops for t in tasks if not t.alternative_of) or 1
    number = {id(t): n for n, t in enumerate(tasks, 1)}
    print(f"{'#':>3}  {'workload':70s} {'template':28s} {'calls':>5}  {'MFLOP':>8}  share")
    for t in tasks:
        share = f"alternative to #{number[id(t.alternative_of)]}" if t.alternative_of else f"{t.flops / total:>5.1%}"
        print(f"{number[id(t)]:>3}  {str(t.task.workload):70s} {t.task.template.name:28s} {t.calls:>5}  {t.flops / 1e6:>8.1f}  {share}")
    owned = {name for t in tasks for name in t.functions}
    others = sorted(set(primfuncs(module)) - owned)
    print(f"{len(tasks)} tasks; {len(others)} other functions get default schedules: {', '.join(others)}")
    return 0


class ModelProgressLine(ProgressLine):
    def __call__(self, p) -> None:
        pending = f" ({p.unmeasured} tasks not measured yet)" if p.unmeasured else ""
        text = (f"[{p.measured:>{len(str(p.budget))}}/{p.budget}] {p.elapsed:.0f}s | tuned operators "
                f"{p.latency * 1e3:.2f} ms/inference{pending} | errors {p.errors} | {p.current.model_task.task.workload}")
        self.write(text)


def cmd_tune(args: argparse.Namespace) -> int:
    from autotune.compile import extract_tasks, with_alternatives
    from autotune.scheduler import tune_model

    check_tuning_flags(args)
    if args.minutes is not None and args.minutes <= 0:
        raise UsageError(f"--minutes must be positive, got {args.minutes:g}")
    _, _, _, module, device = open_model(args)
    tasks = with_alternatives(extract_tasks(module, device))
    if not tasks:
        print("no operator of this model has a template: nothing to tune")
        return 0
    tracker = rpc_tracker(args, device)
    log = args.log or f"{os.path.splitext(os.path.basename(args.model))[0]}-{device.name}.jsonl"
    check_writable(log)
    print(f"{len(tasks)} tasks, {args.trials} trials, tuner {args.tuner}, log {log}", file=sys.stderr)
    progress = ModelProgressLine()
    timing = timing_options(args)
    try:
        runner = RPCRunner(tracker, device.family, timing) if tracker else LocalRunner(timing)
        with LocalBuilder() as builder, runner:
            result = tune_model(tasks, args.trials, log, args.tuner, builder, runner, batch_size=args.batch_size,
                                max_seconds=args.minutes * 60 if args.minutes else None, seed=args.seed,
                                on_progress=progress)
    except KeyboardInterrupt:
        progress.done()
        print(f"interrupted: every finished measurement is in {log}; run the same command to resume", file=sys.stderr)
        return 130
    except DeviceLostError as error:
        progress.done()
        print(f"autotune: device lost: {error}", file=sys.stderr)
        return 1
    progress.done()
    total = result.latency or 1
    fastest = result.operator_latency()
    print(f"measured {result.measured} new configs in {result.elapsed:.0f}s; tuned operators: {result.latency * 1e3:.3f} ms per inference")
    print(f"{'workload':70s} {'calls':>5} {'trials':>6} {'best ms':>9} {'GFLOPS':>7}  share")
    for state in result.tasks:
        task, best = state.model_task.task, state.session.best_cost
        best_text = f"{best * 1e3:9.4f} {task.gflops(best):7.1f}" if best < float("inf") else f"{'-':>9} {'-':>7}"
        if best == float("inf"):
            share = "not measured"
        elif state.latency <= fastest[state.model_task.operator_key]:
            share = f"{state.latency / total:5.1%}"
        else:
            share = "slower algorithm, not used"
        print(f"{str(task.workload):70s} {state.model_task.calls:>5} {state.trials:>6} {best_text}  {share}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from autotune.compile import compile_model, export_model, load_model, lower_for_logs, schedule_model, thread_pool_for
    from autotune.model import input_dtypes
    from autotune.log.packs import pack_records

    model, shapes, imported, module, device = open_model(args)
    records, packs = read_logs(args.log, device), pack_records(device)
    module, tasks = lower_for_logs(imported, device, records, packs, lowered=module)
    scheduled, coverage = schedule_model(module, device, records, packs=packs, tasks=tasks)
    print(coverage.summary())
    print(*coverage.details(), sep="\n", end="\n" if coverage.details() else "")
    if args.strict and (coverage.fallback or coverage.failed):
        for name in coverage.fallback:
            print(f"untuned: {name}")
        print(f"autotune: --strict: {len(coverage.fallback) + len(coverage.failed)} tasks would use a fallback", file=sys.stderr)
        return 1
    executable = compile_model(scheduled, device)
    dtypes = input_dtypes(model)
    inputs = {name: (dims, dtypes[name]) for name, dims in shapes.items()}
    export_model(executable, device, args.output, inputs, thread_pool_for(tasks, records))
    if not device.cross_compiler:
        load_model(args.output)  # it loads back
    print(f"wrote {args.output} (and {args.output}.json)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from autotune.bench import ORTRunner, VMRunner, compare, onnxruntime_available, random_inputs
    from autotune.compile import compile_model, lower_for_logs, schedule_model
    from autotune.log.packs import pack_records

    model, shapes, imported, module, device = open_model(args)
    if device.cross_compiler or device.family != "cpu":
        raise UsageError(f"bench runs on this machine; device {device.name!r} is not it")
    records, packs = read_logs(args.log, device), pack_records(device)
    feeds = random_inputs(model, shapes)
    runners = {}
    if records or packs:
        tuned_module, tasks = lower_for_logs(imported, device, records, packs, lowered=module)
        scheduled, coverage = schedule_model(tuned_module, device, records, packs=packs, tasks=tasks)
        print(f"tuned: {coverage.summary()}", file=sys.stderr)
        runners["tuned"] = VMRunner(compile_model(scheduled, device), feeds)
    untuned, _ = schedule_model(module, device, tuned=False)
    runners["untuned"] = VMRunner(compile_model(untuned, device), feeds)
    if not args.no_ort and onnxruntime_available():
        runners["onnxruntime"] = ORTRunner(model, feeds, device.num_threads)
    elif not args.no_ort:
        print("onnxruntime is not installed (pip install 'autotune[ort]'): comparing the TVM builds only", file=sys.stderr)
    reference = "onnxruntime" if "onnxruntime" in runners else "untuned"
    timings = compare(runners, reference, rounds=args.rounds, log=lambda line: print(line, file=sys.stderr))
    base = {t.name: t.median_seconds for t in timings}[reference]
    print(f"{'':12s} {'median ms':>10}  {'vs ' + reference:>16}  output vs {reference}")
    for t in timings:
        check = "reference" if t.name == reference else f"max abs diff {t.max_abs_diff:.2g}" + ("" if t.close else " (NOT within 1e-4)")
        print(f"{t.name:12s} {t.median_seconds * 1e3:10.3f}  {t.median_seconds / base:15.2f}x  {check}")
    return 0 if all(t.close for t in timings) else 1


def cmd_log(args: argparse.Namespace) -> int:
    from autotune.log.jsonl import write_log
    from autotune.log.merge import distill, merge
    from autotune.log.summary import summarize, summary_lines
    from autotune.log.upgrade import upgrade
    from autotune.log.validate import validate
    from targets import get_device

    for path in args.logs:
        check_readable(path)
    if args.verb == "summary":
        print("\n".join(summary_lines(summarize(merge(args.logs)))))
        return 0
    if args.verb == "validate":
        try:
            device = get_device(args.device) if args.device else None
        except ValueError as error:
            raise UsageError(str(error)) from None
        reports = [validate(path, device) for path in args.logs]
        print("\n\n".join(str(report) for report in reports))
        return 0 if all(report.ok for report in reports) else 1
    if not args.output:
        raise UsageError(f"log {args.verb} needs -o/--output")
    if args.verb == "merge":
        records = merge(args.logs)
    elif args.verb == "distill":
        if args.top < 1:
            raise UsageError(f"--top must be positive, got {args.top}")
        records = distill(merge(args.logs), args.top)
    else:  # upgrade
        records, report = upgrade(merge(args.logs))
        print(report)
    lines = write_log(args.output, records)
    print(f"wrote {lines} records to {args.output}")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from autotune.log import packs
    from autotune.log.merge import distill, merge

    if args.verb == "list":
        found = packs.list_packs()
        if not found:
            print(f"no packs in {packs.PACK_DIR}")
        for pack in found:
            print(f"{pack.name:30s} {pack.device:10s} {pack.target.get('mcpu', '-'):12s} {pack.workloads:>4d} workloads  {pack.path}")
        return 0
    if not args.name or not args.logs:
        raise UsageError("pack build needs --name and at least one log")
    for path in args.logs:
        check_readable(path)
    try:
        path = packs.build_pack(args.name, distill(merge(args.logs), args.top))
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"wrote {path}")
    return 0


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX model file")
    parser.add_argument("--input-shape", action="append", metavar="NAME:DIMS", help="an input's shape, e.g. input:1x3x224x224 (repeatable)")
    parser.add_argument("--device", default="host", help="device preset (default host; see `autotune devices`)")


def add_tuning_flags(parser: argparse.ArgumentParser, default_trials: int) -> None:
    parser.add_argument("--trials", type=int, default=default_trials, help=f"new measurements to make (default {default_trials})")
    parser.add_argument("--tuner", choices=sorted(TUNERS), default="xgb", help="search strategy (default xgb)")
    parser.add_argument("--rpc", action="store_true", help="measure on the device through a TVM RPC tracker")
    parser.add_argument("--tracker", help="HOST:PORT of the tracker (default TVM_TRACKER_HOST:TVM_TRACKER_PORT)")
    parser.add_argument("--rpc-key", help="device key at the tracker (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=16, help="candidates built and measured per round")
    parser.add_argument("--seed", type=int, default=0)
    timing = TimingOptions()
    parser.add_argument("--repeat", type=int, default=timing.repeat, help="timed repeats per candidate; the median counts")
    parser.add_argument("--min-repeat-ms", type=int, default=timing.min_repeat_ms, help="shortest repeat; calls are added until reached")
    parser.add_argument("--cooldown-ms", type=int, default=timing.cooldown_ms, help="pause between repeats")
    parser.add_argument("--run-timeout", type=float, default=timing.timeout, help="seconds before a candidate's run is killed")


def build_parser() -> argparse.ArgumentParser:
    from schedules import default_registry

    parser = argparse.ArgumentParser(prog="autotune", description="Auto-tune tensor programs for TVM 0.27.")
    commands = parser.add_subparsers(dest="command", required=True)
    ops = ", ".join(default_registry().ops())
    tune_op = commands.add_parser("tune-op", help="tune one operator", description=f"Tune one operator ({ops}).")
    tune_op.add_argument("op", help=f"operator: {ops}")
    tune_op.add_argument("--shape", required=True, help="comma-separated sizes; matmul and dense: M,N,K; batch_matmul: B,M,N,K; conv2d: N,C,H,W,K,R,S,stride,pad[,dilation]; "
                         "conv2d_winograd: N,C,H,W,K,R,S,stride,pad; group_conv2d: N,C,H,W,K,R,S,stride,pad,groups[,dilation]; "
                         "depthwise_conv2d: N,C,H,W,R,S,stride,pad[,dilation]")
    tune_op.add_argument("--dtype", default="float32")
    tune_op.add_argument("--device", default="host", help="device preset (default host; see `autotune devices`)")
    add_tuning_flags(tune_op, default_trials=200)
    tune_op.add_argument("--transfer-log", help="log of other workloads of the same template to warm-start the model")
    tune_op.add_argument("--log", help="JSON-lines tuning log; resumed if it exists (default: <op>-<shape>-<device>.jsonl)")
    tune_op.add_argument("--early-stopping", type=int, help="stop after this many trials without improvement")
    tune_op.set_defaults(run=cmd_tune_op)

    tune = commands.add_parser("tune", help="tune an ONNX model's operators",
                               description="Tune every operator of an ONNX model that has a template, within one trial budget.")
    add_model_flags(tune)
    add_tuning_flags(tune, default_trials=2000)
    tune.add_argument("--log", help="JSON-lines tuning log; resumed if it exists (default: <model>-<device>.jsonl)")
    tune.add_argument("--minutes", type=float, help="stop after this much wall time, whatever trials are left")
    tune.set_defaults(run=cmd_tune, early_stopping=None)

    tasks = commands.add_parser("tasks", help="list the tuning tasks of an ONNX model")
    add_model_flags(tasks)
    tasks.set_defaults(run=cmd_tasks)

    compile_ = commands.add_parser("compile", help="compile an ONNX model with the best configs of tuning logs")
    add_model_flags(compile_)
    compile_.add_argument("--log", action="append", help="tuning log (repeatable); untuned tasks get their template's default")
    compile_.add_argument("-o", "--output", required=True, help="shared library to write (a manifest goes beside it)")
    compile_.add_argument("--strict", action="store_true", help="fail, naming them, if any task would use a fallback")
    compile_.set_defaults(run=cmd_compile)

    bench = commands.add_parser("bench", help="time an ONNX model tuned, untuned and in ONNX Runtime")
    add_model_flags(bench)
    bench.add_argument("--log", action="append", help="tuning log (repeatable)")
    bench.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    bench.add_argument("--no-ort", action="store_true", help="do not compare with ONNX Runtime")
    bench.set_defaults(run=cmd_bench)

    log_cmd = commands.add_parser("log", help="summarize, merge, distill, validate or upgrade tuning logs")
    log_cmd.add_argument("verb", choices=["summary", "merge", "distill", "validate", "upgrade"])
    log_cmd.add_argument("logs", nargs="+", help="JSON-lines tuning logs")
    log_cmd.add_argument("-o", "--output", help="log to write (merge, distill, upgrade)")
    log_cmd.add_argument("--top", type=int, default=1, help="best configs kept per workload (distill; default 1)")
    log_cmd.add_argument("--device", help="validate: flag lines from other devices than this preset")
    log_cmd.set_defaults(run=cmd_log)

    pack = commands.add_parser("pack", help="build or list the pre-tuned packs shipped with the package")
    pack.add_argument("verb", choices=["build", "list"])
    pack.add_argument("logs", nargs="*", help="build: tuning logs to distill into the pack")
    pack.add_argument("--name", help="build: pack name, e.g. host-znver5")
    pack.add_argument("--top", type=int, default=1, help="best configs kept per workload (default 1)")
    pack.set_defaults(run=cmd_pack)

    devices = commands.add_parser("devices", help="list device presets and the devices a tracker knows")
    devices.add_argument("--tracker", help="HOST:PORT of a TVM RPC tracker (or TVM_TRACKER_HOST/TVM_TRACKER_PORT)")
    devices.set_defaults(run=cmd_devices)

    model_eval = commands.add_parser("model-eval", help="rank correlation of the cost model on a log")
    model_eval.add_argument("log", help="JSON-lines tuning log")
    model_eval.add_argument("--train-fraction", type=float, default=0.5)
    model_eval.add_argument("--objective", choices=["regression", "rank"], default="regression")
    model_eval.add_argument("--k", type=int, default=10, help="k of the top-k recall")
    model_eval.add_argument("--seed", type=int, default=0)
    model_eval.set_defaults(run=cmd_model_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.simplefilter("always", LogWarning)
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        return args.run(args)
    except UsageError as error:
        print(f"autotune: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `autotune log summary ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
