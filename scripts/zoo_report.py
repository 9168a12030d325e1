#!/usr/bin/env python3
"""The zoo report: every zoo model compiled as `autotune compile` does, checked and timed against ONNX Runtime.

    python scripts/zoo_report.py [--only vit,resnext50] [--small] [--logs DIR] [--rounds 5] [--no-latency]

Per model: compile time (import, lowering, scheduling, build), coverage (tasks on tuned or
default configs, functions on default schedules, convs with no template and why), the
largest error against ONNX Runtime relative to the output's largest magnitude, and the
untuned (template defaults, no logs, no packs) and, with `--logs DIR` holding
`<model>.jsonl`, tuned latency against ONNX Runtime's, medians of interleaved rounds in
one process. Ends with a Markdown table (the README's).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo import ZOO  # noqa: E402

from autotune.bench import ORTRunner, VMRunner, compare, random_inputs  # noqa: E402
from autotune.compile import Coverage, compile_model, first_line, lower_for_logs, schedule_model  # noqa: E402
from autotune.model import import_onnx, lower, resolve_shapes  # noqa: E402
from autotune.log.jsonl import load_records  # noqa: E402
from targets import get_device  # noqa: E402

#: A model matches ONNX Runtime when its largest error is within both bounds.
RELATIVE_BOUND, ABSOLUTE_BOUND = 1e-4, 1e-3


@dataclass
class Row:
    name: str
    compile_seconds: float = 0.0
    coverage: Coverage | None = None
    relative_error: float = float("nan")
    absolute_error: float = float("nan")
    latency_ms: dict[str, float] = field(default_factory=dict)  # untuned / tuned / onnxruntime
    error: str = ""

    @property
    def correct(self) -> bool:
        return self.relative_error <= RELATIVE_BOUND and self.absolute_error <= ABSOLUTE_BOUND

    def cells(self) -> list[str]:
        if self.error:
            return [self.name, "-", f"FAILED: {self.error}", "-", "-", "-", "-"]
        cov = self.coverage
        coverage = (f"{len(cov.tuned)} tuned, {len(cov.fallback)} default config, "
                    f"{len(cov.default_schedule)} default schedule, {len(cov.plain_layout)} convs without template")
        if cov.failed or cov.unscheduled:
            coverage += f", {len(cov.failed)} configs not applied, {len(cov.unscheduled)} unscheduled"
        ort = self.latency_ms.get("onnxruntime")
        ratio = {k: f"{v:.2f} ms ({v / ort:.2f}x)" if ort else f"{v:.2f} ms" for k, v in self.latency_ms.items()}
        return [self.name, f"{self.compile_seconds:.1f} s", coverage,
                f"{self.relative_error:.1e}" + ("" if self.correct else " (NOT within bounds)"),
                ratio.get("untuned", "-"), ratio.get("tuned", "-"), f"{ort:.2f} ms" if ort else "-"]


def report(name: str, model, device, logs: str | None, rounds: int, latency: bool) -> Row:
    row = Row(name)
    shapes = resolve_shapes(model)
    feeds = random_inputs(model, shapes)
    start = time.perf_counter()
    try:
        imported = import_onnx(model, shapes)
        module = lower(imported)
        untuned, row.coverage = schedule_model(module, device, tuned=False)
        runners = {"untuned": VMRunner(compile_model(untuned, device), feeds)}
    except Exception as error:  # noqa: BLE001 - a model that does not compile is the report's finding
        row.error = first_line(error)
        return row
    row.compile_seconds = time.perf_counter() - start
    log = os.path.join(logs, f"{name}.jsonl") if logs else None
    if log and os.path.exists(log):
        records = load_records(log)
        tuned_module, tasks = lower_for_logs(imported, device, records, lowered=module)
        scheduled, row.coverage = schedule_model(tuned_module, device, records, tasks=tasks)
        runners["tuned"] = VMRunner(compile_model(scheduled, device), feeds)
    runners["onnxruntime"] = ORTRunner(model, feeds, device.num_threads)
    expected = runners["onnxruntime"].output().astype(np.float64)
    errors = [np.abs(runner.output() - expected).max() for key, runner in runners.items() if key != "onnxruntime"]
    row.absolute_error = float(max(errors))
    row.relative_error = row.absolute_error / max(float(np.abs(expected).max()), 1e-30)
    if latency:
        timings = compare(runners, "onnxruntime", rounds=rounds)
        row.latency_ms = {t.name: t.median_seconds * 1e3 for t in timings}
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(ZOO), help="comma-separated: " + ", ".join(ZOO))
    parser.add_argument("--small", action="store_true", help="the small versions (a quick check), not full size")
    parser.add_argument("--logs", help="folder of tuning logs named <model>.jsonl, for the tuned column")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    parser.add_argument("--no-latency", action="store_true", help="compile and check only")
    parser.add_argument("--device", default="host")
    args = parser.parse_args()
    names = args.only.split(",")
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; known: {', '.join(ZOO)}")
    device = get_device(args.device)
    os.environ.setdefault("TVM_NUM_THREADS", str(device.num_threads))  # before TVM's thread pool starts
    rows = []
    for name in names:
        full, small = ZOO[name]
        row = report(name, small() if args.small else full(), device, args.logs, args.rounds, not args.no_latency)
        rows.append(row)
        print(f"{name}: " + (f"FAILED: {row.error}" if row.error else
                             f"compiled in {row.compile_seconds:.1f} s, {row.coverage.summary()}, "
                             f"max error {row.relative_error:.1e} of the largest output"), file=sys.stderr, flush=True)
        for line in row.coverage.details() if row.coverage else []:
            print(line, file=sys.stderr)
    header = ["model", "compile", "coverage", "max error / max output", "untuned vs ORT", "tuned vs ORT", "ORT"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")
    for build in ("untuned", "tuned"):
        ratios = [row.latency_ms[build] / row.latency_ms["onnxruntime"] for row in rows
                  if build in row.latency_ms and "onnxruntime" in row.latency_ms]
        if ratios:
            print(f"\n{build} vs ONNX Runtime: geometric mean {math.prod(ratios) ** (1 / len(ratios)):.2f}x, "
                  f"largest {max(ratios):.2f}x ({len(ratios)} models)")
    return 0 if all(not row.error and row.correct for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
