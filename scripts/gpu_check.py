#!/usr/bin/env python3
"""Models compiled for the GPU presets and run on this machine's OpenCL (PoCL), against ONNX Runtime.

    python scripts/gpu_check.py [--models resnet18,vit /path/*.onnx ...] [--presets mali-valhall,...] [--small]

`--models` takes the demo and zoo models by name (make_models.py, zoo.py; `--small`: their small
versions, as the tests use them) and ONNX files by path.

Per model and preset: the model flow as `autotune compile` runs it (lowering in the device's
layout, every function on the GPU default schedule, kernel launches checked against the
preset's limits), with this machine as the GPU's host, then one inference in a Relax VM on
`tvm.opencl(0)`; prints compile and run times, kernels, the largest work group, and the max
abs / relative error against ONNX Runtime. Exit status 1 when an output is off by more than
1e-4 of its largest magnitude or a model fails to compile or run (its row then says why, and the
check goes on with the next). PoCL compiles each kernel on its first run (cached in
POCL_CACHE_DIR), so the first run of a model costs most; timings are CPU timings.
The full-size models take minutes each (CI checks their small versions: tests/test_opencl_models.py).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

TOLERANCE = 1e-4


def load(name: str, small: bool):
    """(row label, ONNX model) for a demo or zoo model's name, or an ONNX file's path."""
    import onnx

    import make_models
    from gpu_models import SMALL
    from zoo import ZOO

    if name.endswith(".onnx"):
        return os.path.splitext(os.path.basename(name))[0], onnx.load(name)
    if small:
        return name, SMALL[name]() if name in SMALL else ZOO[name][1]()
    return name, make_models.MODELS[name]()


def check(model, preset: str) -> str:
    """One row's figures for `model` on `preset`; raises where compiling or running fails."""
    from gpu_models import errors, feeds, onnxruntime_output, run_vm

    from autotune.compile import compile_model_with_launches, primfuncs, schedule_model
    from autotune.model import import_onnx, lower
    from targets import get_device

    inputs = feeds(model)
    expected = onnxruntime_output(model, inputs)
    device = get_device(preset).driven_from_this_machine()
    start = time.perf_counter()
    module = lower(import_onnx(model), layout=device.conv_layout)
    lowered = time.perf_counter()
    scheduled, _ = schedule_model(module, device)
    executable, launches = compile_model_with_launches(scheduled, device)
    compiled = time.perf_counter()
    actual = run_vm(executable, device, model, inputs)
    ran = time.perf_counter()
    absolute, relative = errors(actual, expected)
    return (f"{len(primfuncs(scheduled)):>5} {len(launches):>7} {max(l.threads for l in launches):>6} "
            f"{lowered - start:>7.1f} {compiled - lowered:>9.1f} {ran - compiled:>7.1f} {absolute:>11.2g} "
            f"{relative:>11.2g}" + ("" if relative <= TOLERANCE else "  FAIL: off"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18,mobilenetv2,bert"],
                        help="names or .onnx paths, comma- or space-separated (a shell glob of paths works)")
    parser.add_argument("--presets", default="mali-valhall", help="comma-separated, or all (the 4 GPU presets)")
    parser.add_argument("--small", action="store_true", help="the small versions the tests use")
    args = parser.parse_args()

    import tvm  # noqa: F401 - before the OpenCL runtime, which links against it

    from targets.opencl_runtime import require_opencl_runtime

    require_opencl_runtime()  # before anything is compiled
    from gpu_models import GPU_PRESETS

    from autotune.model import first_line

    failed = False
    print(f"{'model':18s} {'preset':13s} {'funcs':>5} {'kernels':>7} {'max wg':>6} {'lower s':>7} {'compile s':>9} "
          f"{'run s':>7} {'max abs err':>11} {'max rel err':>11}")
    for name in (name for names in args.models for name in names.split(",") if name):
        label, model = load(name, args.small)
        for preset in GPU_PRESETS if args.presets == "all" else args.presets.split(","):
            try:
                row = check(model, preset)
            except Exception as error:  # noqa: BLE001 - reported in the row; the next model goes on
                row = f"FAIL: {type(error).__name__}: {first_line(error)}"
            failed |= "FAIL" in row
            print(f"{label:18s} {preset:13s} {row}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
