"""The `autotune` command line."""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

from autotune.engine import DeviceLostError, Progress, tune_task
from autotune.measure import LocalBuilder, LocalRunner, TimingOptions
from autotune.measure.rpc_runner import RPCRunner, Tracker
from autotune.records import LogWarning
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
        text = f"[{p.measured:>{len(str(p.budget))}}/{p.budget}] errors {p.errors} | best {best} | {p.elapsed:.0f}s"
        if self.live:
            self.stream.write("\r" + text + "\033[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.live:
            self.stream.write("\n")


def cmd_tune_op(args: argparse.Namespace) -> int:
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
    try:
        task = Task.create(args.op, parse_shape(args.shape), args.dtype, args.device)
        size = len(task.space)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.transfer_log:
        check_readable(args.transfer_log)
        if args.tuner != "xgb":
            raise UsageError("--transfer-log needs the model-guided tuner (--tuner xgb)")
    timing = TimingOptions(repeat=args.repeat, min_repeat_ms=args.min_repeat_ms, cooldown_ms=args.cooldown_ms, timeout=args.run_timeout)
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


def build_parser() -> argparse.ArgumentParser:
    from schedules import default_registry

    parser = argparse.ArgumentParser(prog="autotune", description="Auto-tune tensor programs for TVM 0.27.")
    commands = parser.add_subparsers(dest="command", required=True)
    ops = ", ".join(default_registry().ops())
    tune_op = commands.add_parser("tune-op", help="tune one operator", description=f"Tune one operator ({ops}).")
    tune_op.add_argument("op", help=f"operator: {ops}")
    tune_op.add_argument("--shape", required=True, help="comma-separated sizes; matmul and dense: M,N,K; conv2d: N,C,H,W,K,R,S,stride,pad")
    tune_op.add_argument("--dtype", default="float32")
    tune_op.add_argument("--trials", type=int, default=200, help="new measurements to make (default 200)")
    tune_op.add_argument("--tuner", choices=sorted(TUNERS), default="xgb", help="search strategy (default xgb)")
    tune_op.add_argument("--transfer-log", help="log of other workloads of the same template to warm-start the model")
    tune_op.add_argument("--log", help="JSON-lines tuning log; resumed if it exists (default: <op>-<shape>-<device>.jsonl)")
    tune_op.add_argument("--device", default="host", help="device preset (default host; see `autotune devices`)")
    tune_op.add_argument("--rpc", action="store_true", help="measure on the device through a TVM RPC tracker")
    tune_op.add_argument("--tracker", help="HOST:PORT of the tracker (default TVM_TRACKER_HOST:TVM_TRACKER_PORT)")
    tune_op.add_argument("--rpc-key", help="device key at the tracker (default: the preset's)")
    tune_op.add_argument("--batch-size", type=int, default=16, help="candidates built and measured per round")
    tune_op.add_argument("--early-stopping", type=int, help="stop after this many trials without improvement")
    tune_op.add_argument("--seed", type=int, default=0)
    timing = TimingOptions()
    tune_op.add_argument("--repeat", type=int, default=timing.repeat, help="timed repeats per candidate; the median counts")
    tune_op.add_argument("--min-repeat-ms", type=int, default=timing.min_repeat_ms, help="shortest repeat; calls are added until reached")
    tune_op.add_argument("--cooldown-ms", type=int, default=timing.cooldown_ms, help="pause between repeats")
    tune_op.add_argument("--run-timeout", type=float, default=timing.timeout, help="seconds before a candidate's run is killed")
    tune_op.set_defaults(run=cmd_tune_op)

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


if __name__ == "__main__":
    sys.exit(main())
