#!/usr/bin/env python3
"""Search efficiency: how many trials each tuner needs to reach 95% of the best GFLOPS found.

Every tuner runs on each workload with each seed. All runs of a workload share one
ReplayRunner, so a config is measured once (for real, on this machine) and every tuner
that proposes it sees the same cost: the figures compare search, not measurement noise.
Measured results are appended to <log-dir>/<workload>.jsonl and replayed by later runs.

    python scripts/search_efficiency.py --trials 150 --seeds 3
    python scripts/search_efficiency.py --workloads matmul:512,2048,256 --tuners xgb \\
        --transfer-log logs/matmul-1024x1024x1024.jsonl
"""
from __future__ import annotations

import argparse
import os
import statistics

from autotune.engine import tune_task
from autotune.log.jsonl import JsonLinesStore
from autotune.log.key import config_id
from autotune.log.replay import ReplayRunner
from autotune.measure import LocalBuilder, LocalRunner
from autotune.options import TuneOptions
from autotune.task import Task


def trials_to_reach(records, task: Task, target_gflops: float) -> int | None:
    best = float("inf")
    for trial, record in enumerate(records, 1):
        best = min(best, record.cost)
        if task.gflops(best) >= target_gflops:
            return trial
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=["matmul:1024,1024,1024", "dense:128,256,1024"])
    parser.add_argument("--tuners", default="xgb,random,ga")
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--log-dir", default="logs")
    parser.add_argument("--transfer-log", help="also run xgb warm-started from this log ('xgb+transfer')")
    args = parser.parse_args()
    os.makedirs(args.log_dir, exist_ok=True)
    tuners = args.tuners.split(",") + (["xgb+transfer"] if args.transfer_log else [])

    for spec in args.workloads:
        op, shape = spec.split(":")
        task = Task.create(op, [int(d) for d in shape.split(",")])
        log = os.path.join(args.log_dir, f"{op}-{shape.replace(',', 'x')}.jsonl")
        runs = {}
        with LocalBuilder() as builder, JsonLinesStore(log) as store:
            replay = ReplayRunner(store, fallback=LocalRunner())
            for tuner in tuners:
                for seed in range(args.seeds):
                    before = replay.measured
                    options = TuneOptions(args.trials, tuner.split("+")[0], seed=seed,
                                          transfer_log=args.transfer_log if tuner.endswith("+transfer") else None)
                    result = tune_task(task, None, options, builder=builder, runner=replay)
                    runs[tuner, seed] = result
                    for record in result.records:
                        if store.find_id(record.key, config_id(record.config)) is None:
                            store.add(record)
                    print(f"{spec} {tuner} seed {seed}: best {result.best_gflops:.1f} GFLOPS, "
                          f"{replay.measured - before} new measurements, search {result.search_seconds:.1f}s "
                          f"of {result.elapsed:.1f}s", flush=True)
            replay.close()
        best = max(r.best_gflops for r in runs.values())
        print(f"\n{spec}: best found by any tuner {best:.1f} GFLOPS; trials to reach 95% ({0.95 * best:.1f}):")
        means = {}
        for tuner in tuners:
            counts = [trials_to_reach(runs[tuner, s].records, task, 0.95 * best) for s in range(args.seeds)]
            # A run that never got there counts as its whole budget (a lower bound on the truth).
            means[tuner] = statistics.mean(c if c is not None else args.trials for c in counts)
            shown = ", ".join(str(c) if c is not None else f">{args.trials}" for c in counts)
            print(f"  {tuner:14s} mean {means[tuner]:6.1f}  per seed: {shown}")
        if "xgb" in means and "random" in means:
            print(f"  xgb needs {means['xgb'] / means['random']:.2f}x the trials of random search")
        if "xgb+transfer" in means:
            print(f"  xgb+transfer needs {means['xgb+transfer'] / means['xgb']:.2f}x the trials of cold xgb")
        print(flush=True)


if __name__ == "__main__":
    main()
