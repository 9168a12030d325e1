"""Commands on one operator: `tune-op`, and `model-eval` of the cost model on its logs."""
from __future__ import annotations

import argparse

from autotune.cli.common import (
    UsageError, add_this_host_flag, add_tuning_flags, check_readable, check_writable, parse_shape, rpc_tracker, run_tuning,
    tune_options,
)
from autotune.cli.display import ProgressLine, note
from autotune.engine import tune_task
from autotune.task import Task
from schedules import Config
from targets import get_device


def cmd_tune_op(args: argparse.Namespace) -> int:
    options = tune_options(args, early_stopping=args.early_stopping, transfer_log=args.transfer_log)
    if args.transfer_log:
        check_readable(args.transfer_log)
    try:
        device = get_device(args.device)
        if args.this_host:
            device = device.driven_from_this_machine()
        task = Task.create(args.op, parse_shape(args.shape), args.dtype, device)
        size = len(task.space)
    except ValueError as error:
        raise UsageError(str(error)) from None
    tracker = rpc_tracker(args, task.device)
    log = args.log or f"{task.workload.op}-{args.shape.replace(',', 'x')}-{task.device.name}.jsonl"
    check_writable(log)

    note(f"tuning {task}")
    note(f"space: {size:,} configs; tuner {args.tuner}; log {log}")
    progress = ProgressLine()
    result = run_tuning(args, tracker, task.device, log, progress,
                        lambda runner: tune_task(task, log, options, runner=runner, on_progress=progress))
    if result.resumed:
        note(f"resumed: {result.resumed} configs were already in the log")
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
        print_remeasured(task, result.best_config)
    return 0


def print_remeasured(task: Task, config: Config) -> None:
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


def add_commands(commands: argparse._SubParsersAction) -> None:
    from schedules import default_registry

    ops = ", ".join(default_registry().ops())
    tune_op = commands.add_parser("tune-op", help="tune one operator", description=f"Tune one operator ({ops}).")
    tune_op.add_argument("op", help=f"operator: {ops}")
    tune_op.add_argument("--shape", required=True, help="comma-separated sizes; matmul and dense: M,N,K; batch_matmul: B,M,N,K; conv2d: N,C,H,W,K,R,S,stride,pad[,dilation]; "
                         "conv2d_winograd: N,C,H,W,K,R,S,stride,pad; group_conv2d: N,C,H,W,K,R,S,stride,pad,groups[,dilation]; "
                         "depthwise_conv2d: N,C,H,W,R,S,stride,pad[,dilation]")
    tune_op.add_argument("--dtype", default="float32")
    tune_op.add_argument("--device", default="host", help="device preset (default host; see `autotune devices`)")
    add_this_host_flag(tune_op)
    add_tuning_flags(tune_op, default_trials=200)
    tune_op.add_argument("--transfer-log", help="log of other workloads of the same template to warm-start the model")
    tune_op.add_argument("--log", help="JSON-lines tuning log; resumed if it exists (default: <op>-<shape>-<device>.jsonl)")
    tune_op.add_argument("--early-stopping", type=int, help="stop after this many trials without improvement")
    tune_op.set_defaults(run=cmd_tune_op)

    model_eval = commands.add_parser("model-eval", help="rank correlation of the cost model on a log")
    model_eval.add_argument("log", help="JSON-lines tuning log")
    model_eval.add_argument("--train-fraction", type=float, default=0.5)
    model_eval.add_argument("--objective", choices=["regression", "rank"], default="regression")
    model_eval.add_argument("--k", type=int, default=10, help="k of the top-k recall")
    model_eval.add_argument("--seed", type=int, default=0)
    model_eval.set_defaults(run=cmd_model_eval)
