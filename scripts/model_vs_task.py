#!/usr/bin/env python3
"""Does tuning measure what the model runs? Each task's logged time beside its function in the model.

    python scripts/model_vs_task.py [--only vit,convnext_tiny] [--small] [--logs DIR]

For every task of each zoo model, with the config compile would use: the time tuning
records for it (the best of `DIR/<model>.jsonl`; for a task on its default config, measured
now exactly as tuning measures a candidate: built and run by the local builder and runner)
and the time of the model's scheduled function as the compiled model calls it (fused with
its epilogue, weights prepacked), run alone on random inputs. Prints one line per task and
the largest ratio either way (the acceptance bar is 1.3x).
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
from autotune.model import load_onnx  # noqa: E402
from autotune.log.jsonl import load_records  # noqa: E402
from targets.tvm_compat import apart_from_workers  # noqa: E402
from targets import get_device  # noqa: E402

PAUSE_SECONDS = 0.1
RUNNER_SPIN_SECONDS = 1.0
BAR = 1.3  # issue 13's acceptance bar for the largest ratio


def time_function(func: tvm.tirx.PrimFunc, device, inputs: list[np.ndarray] | None = None, rounds: int = 3) -> float:
    """Median seconds of one PrimFunc, alone, on random inputs (or `inputs`, then a zero output).

    Timed in `rounds` blocks a pause apart, the median block counting: a burst of another
    process's work (this machine is shared) spoils one block, not the figure.
    """
    lib = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target=device.tvm_target)
    rng = np.random.default_rng(0)
    shapes = [([int(d) for d in p.shape], str(p.dtype)) for p in func.params]
    arrays = list(inputs) if inputs is not None else [rng.uniform(-1, 1, s).astype(t) for s, t in shapes[:-1]]
    arrays += [np.zeros(s, t) for s, t in shapes[len(arrays):]]
    tensors = [tvm.runtime.tensor(a) for a in arrays]
    lib["main"](*tensors)  # starts the thread pool
    timer = lib.mod.time_evaluator("main", tvm.cpu(), number=5, repeat=7, min_repeat_ms=20)
    blocks = []
    for _ in range(rounds):
        time.sleep(PAUSE_SECONDS)
        with apart_from_workers():  # as the runner and `autotune bench` time
            blocks.append(timer(*tensors).median)
    return statistics.median(blocks)


def compare(model, device, records: list, builder: LocalBuilder, runner: LocalRunner) -> list[tuple[str, float, float]]:
    """(task, seconds tuning records, seconds of the model's function) for every task of the model."""
    module = load_onnx(model)
    tasks = extract_tasks(module, device)
    scheduled, _ = schedule_model(module, device, records, tasks=tasks)
    functions = primfuncs(prepack_weights(scheduled))
    # the model's functions first, all of them: the runner's threads keep spinning for a while after
    # it measures (TVM's pool yields in a loop before it sleeps) and would slow them
    time.sleep(RUNNER_SPIN_SECONDS)
    in_model = [time_function(functions.get(f"{t.functions[0]}_prepacked") or functions[t.functions[0]], device)
                for t in tasks]
    rows = []
    for model_task, model_time in zip(tasks, in_model):
        task = model_task.task
        best = task.best(records)
        if best is not None:
            logged = best[1].cost
        else:
            inp = task.measure_input(task.default_config)
            result = runner.run([inp], builder.build([inp]))[0]
            logged = result.cost if result.ok else float("nan")
        rows.append((str(task.workload), logged, model_time))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(ZOO), help="comma-separated: " + ", ".join(ZOO))
    parser.add_argument("--small", action="store_true", help="the small versions")
    parser.add_argument("--logs", help="folder of tuning logs named <model>.jsonl (the configs to compare)")
    parser.add_argument("--device", default="host")
    args = parser.parse_args()
    device = get_device(args.device)
    os.environ.setdefault("TVM_NUM_THREADS", str(device.num_threads))
    worst, ratios = (0.0, ""), []
    print(f"load average at the start: {_load()}", flush=True)
    builder, runner = LocalBuilder(), LocalRunner()
    for name in args.only.split(","):
        if name not in ZOO:
            parser.error(f"unknown model {name!r}; known: {', '.join(ZOO)}")
        log = os.path.join(args.logs, f"{name}.jsonl") if args.logs else None
        records = load_records(log) if log and os.path.exists(log) else []
        full, small = ZOO[name]
        for task, logged, in_model in compare(small() if args.small else full(), device, records, builder, runner):
            ratio = in_model / logged
            if ratio == ratio:  # a failed default measurement is NaN
                worst = max(worst, (max(ratio, 1 / ratio), f"{name} {task}"))
                ratios.append((ratio, logged))
            print(f"{name:18s} {task:70s} logged {logged * 1e6:8.1f} us  model {in_model * 1e6:8.1f} us  {ratio:5.2f}x",
                  flush=True)
    builder.close()
    runner.close()
    within = [r for r, _ in ratios if 1 / BAR <= r <= BAR]
    print(f"{len(ratios)} tasks: median ratio {statistics.median(r for r, _ in ratios):.2f}x, "
          f"{len(within)} within {BAR}x either way; load average at the end: {_load()}")
    print(f"largest model / log ratio, either way: {worst[0]:.2f}x ({worst[1]})")
    return 0


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


if __name__ == "__main__":
    sys.exit(main())
