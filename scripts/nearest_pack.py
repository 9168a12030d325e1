#!/usr/bin/env python3
"""The nearest pack against template defaults on the demo models, in the same run.

    python scripts/make_models.py --out models && python scripts/nearest_pack.py [--models models] [--as-cpu znver4]

Relabels the shipped pack of this machine's CPU as a pack of another CPU of the same kind
(`--as-cpu`), so that it applies only as the nearest pack, compiles each demo model with it
and with template defaults, and prints the coverage line and both latencies (medians of 7
interleaved rounds in one process).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile

import onnx

from autotune.bench import VMRunner, compare, random_inputs
from autotune.compile import compile_model, lower_for_logs, schedule_model
from autotune.log import packs
from autotune.log.jsonl import load_records
from autotune.model import import_onnx, resolve_shapes
from targets import get_device


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="models", help="folder with resnet18.onnx, mobilenetv2.onnx, bert.onnx")
    parser.add_argument("--as-cpu", default="znver4", help="the CPU name the pack is relabelled to (default znver4)")
    args = parser.parse_args()
    device = get_device("host")
    os.environ.setdefault("TVM_NUM_THREADS", str(device.num_threads))
    shipped = os.path.join(packs.PACK_DIR, f"host-{device.target['mcpu']}.jsonl")
    if not os.path.exists(shipped):
        parser.error(f"no shipped pack for this CPU ({device.target['mcpu']})")
    folder = tempfile.mkdtemp(prefix="autotune-packs-")
    relabelled = [dataclasses.replace(r, target={**r.target, "mcpu": args.as_cpu}) for r in load_records(shipped)]
    packs.build_pack(f"host-{args.as_cpu}", relabelled, folder)
    nearest = packs.pack_records(device, folder)
    for name in ("resnet18", "mobilenetv2", "bert"):
        model = onnx.load(os.path.join(args.models, f"{name}.onnx"))
        shapes = resolve_shapes(model)
        imported = import_onnx(model, shapes)
        module, tasks = lower_for_logs(imported, device, [], nearest)
        with_pack, coverage = schedule_model(module, device, [], tasks=tasks, packs=nearest)
        defaults, _ = schedule_model(lower_for_logs(imported, device)[0], device, tuned=False)
        feeds = random_inputs(model, shapes)
        runners = {"nearest pack": VMRunner(compile_model(with_pack, device), feeds),
                   "defaults": VMRunner(compile_model(defaults, device), feeds)}
        ms = {t.name: t.median_seconds * 1e3 for t in compare(runners, "defaults", rounds=7)}
        print(f"{name}: {coverage.summary()}")
        print(f"{name}: nearest pack {ms['nearest pack']:.2f} ms, defaults {ms['defaults']:.2f} ms, "
              f"{ms['nearest pack'] / ms['defaults']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
