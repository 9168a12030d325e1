#!/usr/bin/env python3
"""Where a compiled model's time goes: each function's share of one inference, as the VM runs it.

    python scripts/profile_model.py MODEL.onnx|ZOO_NAME [--small] [--log LOG] [--top 25]

Compiles the model as `autotune compile` does (with LOG's best configs, else the templates'
defaults), runs it a few times under a VM instrument that times every call, and prints the
functions by total time: calls per inference, microseconds per call, share of the total,
and whether a template (task) or a default schedule scheduled it. VM built-ins (allocation,
shape checks) are summed in one line, and the VM's own interpretation overhead shows as the
difference between the functions' sum and the inference's time.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict

import numpy as np
import onnx
import tvm
from tvm import relax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo import ZOO  # noqa: E402

from autotune.bench import random_inputs  # noqa: E402
from autotune.compile import compile_model, lower_for_logs, schedule_model  # noqa: E402
from autotune.model import import_onnx, lower, resolve_shapes  # noqa: E402
from autotune.log.jsonl import load_records  # noqa: E402
from targets.tvm_compat import apart_from_workers  # noqa: E402
from targets import get_device  # noqa: E402


def profile(executable: relax.Executable, feeds: dict[str, np.ndarray], runs: int) -> tuple[dict, float]:
    """Per function: (calls, seconds) over `runs` inferences; and the median inference time."""
    dev = tvm.cpu()
    vm = relax.VirtualMachine(executable, dev)
    args = [tvm.runtime.tensor(x, dev) for x in feeds.values()]
    vm["main"](*args)
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    started: list[float] = []

    def instrument(func, name, before_run, ret_value, *args):
        if before_run:
            started.append(time.perf_counter())
        else:
            entry = totals[name if not name.startswith("vm.builtin") else "(VM built-ins)"]
            entry[0] += 1
            entry[1] += time.perf_counter() - started.pop()

    timer = vm.time_evaluator("main", dev, number=10, repeat=5)
    with apart_from_workers():  # as `autotune bench` and the tuner's runner time
        vm.set_instrument(instrument)
        for _ in range(runs):
            vm["main"](*args)
        vm.set_instrument(None)
        return totals, timer(*args).median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="an .onnx file or a zoo name: " + ", ".join(ZOO))
    parser.add_argument("--small", action="store_true", help="a zoo model's small version")
    parser.add_argument("--log", help="a tuning log whose best configs to compile with")
    parser.add_argument("--device", default="host")
    parser.add_argument("--top", type=int, default=25, help="functions to list (default 25)")
    parser.add_argument("--runs", type=int, default=20, help="profiled inferences (default 20)")
    args = parser.parse_args()
    if args.model in ZOO:
        model = ZOO[args.model][1 if args.small else 0]()
    elif os.path.exists(args.model):
        model = onnx.load(args.model)
    else:
        parser.error(f"{args.model!r} is neither a file nor a zoo model")
    device = get_device(args.device)
    os.environ.setdefault("TVM_NUM_THREADS", str(device.num_threads))
    shapes = resolve_shapes(model)
    imported = import_onnx(model, shapes)
    records = load_records(args.log) if args.log else []
    module, tasks = lower_for_logs(imported, device, records) if records else (lower(imported), None)
    scheduled, coverage = schedule_model(module, device, records, tasks=tasks, tuned=bool(records))
    defaults = set(coverage.default_schedule)
    totals, median = profile(compile_model(scheduled, device), random_inputs(model, shapes), args.runs)
    total = sum(seconds for _, seconds in totals.values()) / args.runs
    print(f"inference {median * 1e3:.2f} ms (median); functions sum to {total * 1e3:.2f} ms per inference")
    print(f"{'function':58s} {'calls':>5s} {'us/call':>9s} {'share':>6s}  scheduled by")
    for name, (calls, seconds) in sorted(totals.items(), key=lambda kv: -kv[1][1])[:args.top]:
        per_run = seconds / args.runs
        kind = "default" if name in defaults else ("-" if name.startswith("(") else "template")
        print(f"{name[:58]:58s} {calls // args.runs:5d} {seconds / calls * 1e6:9.1f} {per_run / median:6.1%}  {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
