#!/usr/bin/env python3
"""Does tuning measure what the model runs? Each task's logged time beside its function in the model.

    python scripts/model_vs_task.py [--only vit,convnext_tiny] [--small] [--logs DIR] [--rounds 3]

For every task of each zoo model, with the config compile would use: the time tuning
records for it (the best of `DIR/<model>.jsonl`), the time of the model's scheduled function
as the compiled model calls it (fused with its epilogue, weights prepacked), run alone on
random inputs, and the config measured now by the runner exactly as tuning measures a candidate
(built and run by the local builder and runner; for a task on its default config, this is its
logged time). Prints one line per task and the largest ratio either way (the acceptance bar is 1.3x).

This machine is shared: its speed changes for seconds at a time (a core away, another tenant's
memory traffic), sometimes by 1.8x. So each figure is the median of `--rounds` rounds that go over
all of a model's tasks in turn, the model's functions first, then the runner's candidates: a slow
spell spoils one round of a task, not its figure; a task beyond the bar after them gets `--recheck`
more rounds (its line says how many in all), so that a spell over two of its rounds is outvoted.
Each timing is taken as the runner takes it (`autotune.measure.steady`).
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
from autotune.measure import steady  # noqa: E402
from autotune.model import load_onnx  # noqa: E402
from autotune.log.jsonl import load_records  # noqa: E402
from targets import get_device  # noqa: E402

#: the runner's threads keep spinning for a while after it measures (TVM's pool yields in a
#: loop before it sleeps) and would slow the model's functions
RUNNER_SPIN_SECONDS = 1.0
BAR = 1.3  # issue 13's acceptance bar for the largest ratio


class FunctionTimer:
    """One PrimFunc compiled alone, on random inputs (or `inputs`, then a zero output)."""

    def __init__(self, func: tvm.tirx.PrimFunc, device, inputs: list[np.ndarray] | None = None):
        lib = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target=device.tvm_target)
        rng = np.random.default_rng(0)
        shapes = [([int(d) for d in p.shape], str(p.dtype)) for p in func.params]
        arrays = list(inputs) if inputs is not None else [rng.uniform(-1, 1, s).astype(t) for s, t in shapes[:-1]]
        arrays += [np.zeros(s, t) for s, t in shapes[len(arrays):]]
        self.tensors = [tvm.runtime.tensor(a) for a in arrays]
        self.main = lib["main"]
        self.timer = lib.mod.time_evaluator("main", tvm.cpu(), number=5, repeat=7, min_repeat_ms=20)

    def seconds(self) -> float:
        """The median of one block of repeats, timed as the runner times a candidate."""
        self.main(*self.tensors)  # starts the thread pool
        return steady.timer()(lambda: self.timer(*self.tensors).median)


def compare(model, device, records: list, builder: LocalBuilder, runner: LocalRunner,
            rounds: int = 3, recheck: int = 3) -> list[tuple[str, float, float, float, int]]:
    """(task, seconds tuning records, seconds of the model's function, seconds the runner measures now,
    rounds) for every task of the model, the last two the medians over its rounds: `rounds` for
    every task, then `recheck` more for the tasks beyond the bar (a spell of the machine that
    spoiled two rounds of a task gets outvoted; a real difference stays)."""
    module = load_onnx(model)
    tasks = extract_tasks(module, device)
    scheduled, _ = schedule_model(module, device, records, tasks=tasks)
    functions = primfuncs(prepack_weights(scheduled))
    bests = [t.task.best(records) for t in tasks]
    inputs = [t.task.measure_input(best[0] if best else t.task.default_config) for t, best in zip(tasks, bests)]
    timers = [FunctionTimer(functions.get(f"{t.functions[0]}_prepacked") or functions[t.functions[0]], device)
              for t in tasks]
    in_model, now = [[] for _ in tasks], [[] for _ in tasks]

    def measure(chosen: list[int]) -> None:
        """One round over the chosen tasks: their functions in the model's form, then the runner's candidates."""
        time.sleep(RUNNER_SPIN_SECONDS)
        for i in chosen:
            in_model[i].append(timers[i].seconds())
        picked = [inputs[i] for i in chosen]
        for i, result in zip(chosen, runner.run(picked, builder.build(picked))):
            now[i].append(result.cost if result.ok else float("nan"))

    def logged(i: int) -> float:
        return bests[i][1].cost if bests[i] else statistics.median(now[i])

    for _ in range(rounds):
        measure(list(range(len(tasks))))
    beyond = [i for i in range(len(tasks)) if not 1 / BAR <= statistics.median(in_model[i]) / logged(i) <= BAR]
    for _ in range(recheck if beyond else 0):
        measure(beyond)
    return [(str(t.task.workload), logged(i), statistics.median(in_model[i]), statistics.median(now[i]),
             len(in_model[i])) for i, t in enumerate(tasks)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(ZOO), help="comma-separated: " + ", ".join(ZOO))
    parser.add_argument("--small", action="store_true", help="the small versions")
    parser.add_argument("--logs", help="folder of tuning logs named <model>.jsonl (the configs to compare)")
    parser.add_argument("--device", default="host")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over each model's tasks (the median counts)")
    parser.add_argument("--recheck", type=int, default=3, help="more rounds for the tasks beyond the bar")
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
        for task, logged, in_model, now, rounds in compare(model, device, records, builder, runner, args.rounds,
                                                           args.recheck):
            ratio = in_model / logged
            if ratio == ratio:  # a failed default measurement is NaN
                worst = max(worst, (max(ratio, 1 / ratio), f"{name} {task}"))
                ratios.append((ratio, logged))
            same.append(in_model / now)
            print(f"{name:18s} {task:70s} logged {logged * 1e6:8.1f} us  model {in_model * 1e6:8.1f} us  {ratio:5.2f}x"
                  f"  runner now {now * 1e6:8.1f} us  {in_model / now:5.2f}x"
                  + (f"  ({rounds} rounds)" if rounds > args.rounds else ""), flush=True)
    builder.close()
    runner.close()
    within = [r for r, _ in ratios if 1 / BAR <= r <= BAR]
    print(f"{len(ratios)} tasks: median ratio {statistics.median(r for r, _ in ratios):.2f}x, "
          f"{len(within)} within {BAR}x either way; load average at the end: {_load()}")
    print(f"largest model / log ratio, either way: {worst[0]:.2f}x ({worst[1]})")
    same = [r for r in same if r == r]
    if same:
        print(f"same run, model / runner: median {statistics.median(same):.2f}x, "
              f"{sum(1 / BAR <= r <= BAR for r in same)} of {len(same)} within {BAR}x, "
              f"largest either way {max(max(r, 1 / r) for r in same):.2f}x")
    return 0


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


if __name__ == "__main__":
    sys.exit(main())
