#!/usr/bin/env python3
"""Does tuning measure what the model runs? Each task's logged time beside its function in the model.

    python scripts/model_vs_task.py [--only vit,convnext_tiny] [--small] [--logs DIR] [--same-run]

For every task of each zoo model, with the config compile would use: the time tuning
records for it (the best of `DIR/<model>.jsonl`; for a task on its default config, measured
now exactly as tuning measures a candidate: built and run by the local builder and runner)
and the time of the model's scheduled function as the compiled model calls it (fused with
its epilogue, weights prepacked), run alone on random inputs. Prints one line per task and
the largest ratio either way (the acceptance bar is 1.3x). With `--same-run`, each task's config is
also measured by the runner right after its function is timed: this machine's speed drifts by
tens of percent between tuning and now, and the same-run ratio tells that drift from a
function that differs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import tvm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo import ZOO  # noqa: E402

from autotune.compile import extract_tasks, prepack_weights, primfuncs, schedule_model  # noqa: E402
from autotune.measure import LocalBuilder, LocalRunner  # noqa: E402
from autotune.measure.steady import SteadyTimer  # noqa: E402
from autotune.model import load_onnx  # noqa: E402
from autotune.log.jsonl import load_records  # noqa: E402
from targets import get_device  # noqa: E402

PAUSE_SECONDS = 0.1
RUNNER_SPIN_SECONDS = 1.0
BAR = 1.3  # issue 13's acceptance bar for the largest ratio


def time_function(func: tvm.tirx.PrimFunc, device, inputs: list[np.ndarray] | None = None, rounds: int = 3) -> float:
    """Median seconds of one PrimFunc, alone, on random inputs (or `inputs`, then a zero output).

    Timed in `rounds` blocks a pause apart, the median block counting: a burst of another
    process's work (this machine is shared) spoils one block, not the figure; each block as the
    runner times a candidate (`SteadyTimer`: off the workers' cores, while they all run).
    """
    lib = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target=device.tvm_target)
    rng = np.random.default_rng(0)
    shapes = [([int(d) for d in p.shape], str(p.dtype)) for p in func.params]
    arrays = list(inputs) if inputs is not None else [rng.uniform(-1, 1, s).astype(t) for s, t in shapes[:-1]]
    arrays += [np.zeros(s, t) for s, t in shapes[len(arrays):]]
    tensors = [tvm.runtime.tensor(a) for a in arrays]
    lib["main"](*tensors)  # starts the thread pool
    timer = lib.mod.time_evaluator("main", tvm.cpu(), number=5, repeat=7, min_repeat_ms=20)
    blocks, steady = [], SteadyTimer()
    for _ in range(rounds):
        time.sleep(PAUSE_SECONDS)
        blocks.append(steady(lambda: timer(*tensors).median))
    return statistics.median(blocks)


def compare(model, device, records: list, builder: LocalBuilder, runner: LocalRunner,
            same_run: bool = False) -> list[tuple[str, float, float, float]]:
    """(task, seconds tuning records, seconds of the model's function, seconds of the task's config
    measured by the runner in the same run (NaN unless `same_run`)) for every task of the model."""
    module = load_onnx(model)
    tasks = extract_tasks(module, device)
    scheduled, _ = schedule_model(module, device, records, tasks=tasks)
    functions = primfuncs(prepack_weights(scheduled))

    def model_time(model_task) -> float:
        # the runner's threads keep spinning for a while after it measures (TVM's pool yields in a
        # loop before it sleeps) and would slow the function
        time.sleep(RUNNER_SPIN_SECONDS)
        name = model_task.functions[0]
        return time_function(functions.get(f"{name}_prepacked") or functions[name], device)

    def runner_time(task, config) -> float:
        inp = task.measure_input(config)
        result = runner.run([inp], builder.build([inp]))[0]
        return result.cost if result.ok else float("nan")

    # without same_run, the model's functions all first, the runner after them
    in_model = {} if same_run else {id(t): model_time(t) for t in tasks}
    rows = []
    for model_task in tasks:
        task = model_task.task
        best = task.best(records)
        config = best[0] if best is not None else task.default_config
        model_seconds = model_time(model_task) if same_run else in_model[id(model_task)]
        now = runner_time(task, config) if same_run or best is None else float("nan")
        rows.append((str(task.workload), best[1].cost if best is not None else now, model_seconds,
                     now if same_run else float("nan")))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(ZOO), help="comma-separated: " + ", ".join(ZOO))
    parser.add_argument("--small", action="store_true", help="the small versions")
    parser.add_argument("--logs", help="folder of tuning logs named <model>.jsonl (the configs to compare)")
    parser.add_argument("--device", default="host")
    parser.add_argument("--same-run", action="store_true",
                        help="also measure each task's config by the runner beside the model's function, "
                             "to tell a different function from the machine's drift between tuning and now")
    args = parser.parse_args()
    device = get_device(args.device)
    os.environ.setdefault("TVM_NUM_THREADS", str(device.num_threads))
    worst, ratios, same = (0.0, ""), [], []
    print(f"load average at the start: {_load()}", flush=True)
    builder, runner = LocalBuilder(), LocalRunner()
    for name in args.only.split(","):
        if name not in ZOO:
            parser.error(f"unknown model {name!r}; known: {', '.join(ZOO)}")
        log = os.path.join(args.logs, f"{name}.jsonl") if args.logs else None
        records = load_records(log) if log and os.path.exists(log) else []
        full, small = ZOO[name]
        model = small() if args.small else full()
        for task, logged, in_model, now in compare(model, device, records, builder, runner, args.same_run):
            ratio = in_model / logged
            if ratio == ratio:  # a failed default measurement is NaN
                worst = max(worst, (max(ratio, 1 / ratio), f"{name} {task}"))
                ratios.append((ratio, logged))
            line = f"{name:18s} {task:70s} logged {logged * 1e6:8.1f} us  model {in_model * 1e6:8.1f} us  {ratio:5.2f}x"
            if args.same_run:
                same.append(in_model / now)
                line += f"  runner now {now * 1e6:8.1f} us  {in_model / now:5.2f}x"
            print(line, flush=True)
    builder.close()
    runner.close()
    within = [r for r, _ in ratios if 1 / BAR <= r <= BAR]
    print(f"{len(ratios)} tasks: median ratio {statistics.median(r for r, _ in ratios):.2f}x, "
          f"{len(within)} within {BAR}x either way; load average at the end: {_load()}")
    print(f"largest model / log ratio, either way: {worst[0]:.2f}x ({worst[1]})")
    if same:
        same = [r for r in same if r == r]
        print(f"same run, model / runner: median {statistics.median(same):.2f}x, "
              f"{sum(1 / BAR <= r <= BAR for r in same)} of {len(same)} within {BAR}x, "
              f"largest either way {max(max(r, 1 / r) for r in same):.2f}x")
    return 0


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


if __name__ == "__main__":
    sys.exit(main())
