#!/usr/bin/env python3
"""Static performance check of models and template kernels compiled for ARM presets (no board needed).

    python scripts/arm_static_check.py models/resnet18.onnx --device cortex-a76 --device cortex-a55
    python scripts/arm_static_check.py --templates [--template matmul:128,1024,256] --device cortex-a76
    python scripts/arm_static_check.py models/*.onnx --per-function 5

Models are compiled as `autotune compile MODEL --device D -o x.so` does without logs
(template defaults, or the device's pre-tuned packs where there are any), cross-linked with
aarch64-linux-gnu-gcc; for each library it prints the `fmla` count and the vector registers
spilled to the stack and reloaded (`autotune.static_check`). `--templates` builds the default
config of the GEMM, conv2d (3x3, 1x1), Winograd and depthwise templates on ResNet, MobileNet
and BERT shapes and gives each kernel's innermost FMA loop to llvm-mca with the core's model:
predicted FLOP per cycle against the core's peak, and vector loads per FMA.
Needs aarch64-linux-gnu-objdump (binutils-aarch64-linux-gnu) and llvm-mca-19 (llvm-19).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Sequence

from autotune.static_check import Report, ToolMissing, check_library
from targets import Device, get_device

#: (template op, shape as `Task.create` takes it, where the shape is from).
TEMPLATE_CASES: list[tuple[str, tuple[int, ...], str]] = [
    ("matmul", (128, 1024, 256), "BERT FFN up"),
    ("matmul", (128, 256, 1024), "BERT FFN down"),
    ("dense", (128, 768, 768), "BERT-base proj"),
    ("conv2d", (1, 64, 56, 56, 64, 3, 3, 1, 1), "ResNet 3x3"),
    ("conv2d", (1, 256, 14, 14, 256, 3, 3, 1, 1), "ResNet 3x3"),
    ("conv2d", (1, 24, 56, 56, 144, 1, 1, 1, 0), "MobileNetV2 1x1"),
    ("conv2d", (1, 96, 14, 14, 576, 1, 1, 1, 0), "MobileNetV2 1x1"),
    ("conv2d_winograd", (1, 64, 56, 56, 64, 3, 3, 1, 1), "ResNet 3x3"),
    ("conv2d_winograd", (1, 256, 14, 14, 256, 3, 3, 1, 1), "ResNet 3x3"),
    ("depthwise_conv2d", (1, 144, 56, 56, 3, 3, 1, 1), "MobileNetV2 dw"),
    ("depthwise_conv2d", (1, 96, 112, 112, 3, 3, 2, 1), "MobileNetV2 dw s2"),
]


def first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def compile_model(path: str, device: Device, out: str) -> str:
    """The model's library for `device`, as `autotune compile` makes it without logs; its coverage line."""
    from autotune.compile import compile_model as build, lower_for_logs, schedule_model
    from autotune.log.packs import pack_records
    from autotune.model import import_onnx, lower, read_model, resolve_shapes

    model = read_model(path)
    imported = import_onnx(model, resolve_shapes(model))
    packs = pack_records(device)
    module, tasks = lower_for_logs(imported, device, [], packs, lowered=lower(imported))
    scheduled, coverage = schedule_model(module, device, [], packs=packs, tasks=tasks)
    device.export_library(build(scheduled, device), out)
    return coverage.summary()


def compile_template(op: str, shape: Sequence[int], device: Device, out_dir: str) -> str:
    """The library of a template's default config on `shape`, built as tuning builds a candidate."""
    from autotune.measure.local_builder import build_candidate
    from autotune.task import Task

    task = Task.create(op, shape, device=device)
    return build_candidate(task.measure_input(task.default_config), out_dir)[0]


def percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def print_table(header: Sequence[str], rows: list[Sequence[object]]) -> None:
    """Left-aligned first columns of text, right-aligned numbers."""
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [bool(rows) and all(re.fullmatch(r"[-\d.,/%*]+", row[i]) for row in cells[1:]) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def library_row(name: str, device: Device, report: Report) -> list[object]:
    t = report.total
    return [name, device.name, t.fma, t.spill_stores, t.spill_reloads, percent(t.spill_stores, t.fma),
            t.loop_spill_stores, t.callee_saves]


LIBRARY_HEADER = ["library", "device", "fmla", "spill st", "reloads", "st/fmla", "st in FMA loops", "d8-15 saves"]


def print_worst(report: Report, n: int) -> None:
    rows = [[name, c.fma, c.spill_stores, c.spill_reloads, percent(c.spill_stores, c.fma), c.loop_spill_stores]
            for name, c in report.worst_functions(n)]
    if rows:
        print_table(["function", "fmla", "spill st", "reloads", "st/fmla", "st in FMA loops"], rows)
    else:
        print("no function spills vector registers")


def check_models(paths: Sequence[str], devices: Sequence[Device], out_dir: str, per_function: int) -> None:
    rows, reports = [], []
    for device in devices:
        for path in paths:
            name = os.path.splitext(os.path.basename(path))[0]
            out = os.path.join(out_dir, f"{name}-{device.name}.so")
            try:
                print(f"{name} for {device.name}: {compile_model(path, device, out)}", file=sys.stderr)
            except Exception as error:  # noqa: BLE001 - one model that does not compile: said, and the others go on
                print(f"{name} for {device.name}: not compiled: {first_line(error)}", file=sys.stderr)
                rows.append([name, device.name] + ["-"] * (len(LIBRARY_HEADER) - 2))
                continue
            report = check_library(out)
            rows.append(library_row(name, device, report))
            reports.append((f"{name} for {device.name}", report))
    print_table(LIBRARY_HEADER, rows)
    if per_function:
        for title, report in reports:
            print(f"\nmost spills in {title}:")
            print_worst(report, per_function)


def check_templates(cases: Sequence[tuple[str, tuple[int, ...], str]], devices: Sequence[Device], out_dir: str,
                    per_function: int) -> None:
    rows, reports = [], []
    for device in devices:
        core = device.core
        for op, shape, origin in cases:
            kernel = f"{op} {','.join(map(str, shape))}"
            print(f"{kernel} for {device.name} ...", file=sys.stderr)
            report = check_library(compile_template(op, shape, device, out_dir), core)
            reports.append((f"{kernel} for {device.name}", report))
            loop = report.hot_loop()
            if loop is None:
                rows.append([kernel, origin, device.name, report.total.fma, report.total.spill_stores] + ["-"] * 8)
                continue
            c = loop.counts
            rows.append([kernel, origin, device.name, report.total.fma, report.total.spill_stores, c.fma,
                         f"{c.spill_stores}/{c.spill_reloads}", f"{loop.mca_cycles:.1f}",
                         f"{loop.flop_per_cycle:.2f}" + ("*" if loop.capped else ""), f"{core.peak_flops_per_cycle():g}",
                         f"{loop.fraction_of_peak:.0%}", f"{loop.loads_per_fma:.2f}", f"{loop.stores_per_fma:.2f}"])
    print("\ninnermost FMA loop of each template's default config (llvm-mca, core model: "
          + ", ".join(sorted({f"{d.name}={d.core.mca_model}" for d in devices})) + ")")
    print_table(["kernel", "from", "device", "fmla", "spill st", "loop fmla", "spill st/ld", "cyc/iter", "FLOP/cyc",
                 "peak", "% peak", "ld/fma", "st/fma"], rows)
    print("fmla, spill st: the whole kernel; the rest: its innermost loop with the most FMAs. ld/fma, st/fma: vector\n"
          "registers loaded and stored per FMA, spills apart (st/fma near 1: the accumulators live in memory)")
    if any(str(row[8]).endswith("*") for row in rows):
        print("* llvm-mca's model issues FMAs faster than the core can: capped at the core's FMA rate")
    for title, report in reports if per_function else []:
        print(f"\nmost spills in {title}:")
        print_worst(report, per_function)


def parse_template(text: str) -> tuple[str, tuple[int, ...], str]:
    op, sep, dims = text.partition(":")
    try:
        shape = tuple(int(d) for d in dims.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not sep or not shape or min(shape) < 0:
        raise argparse.ArgumentTypeError(f"malformed --template {text!r}: expected OP:DIMS like matmul:128,1024,256")
    return op, shape, "given"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="ONNX models to compile and check")
    parser.add_argument("--device", action="append", help="ARM preset (repeatable; default cortex-a76)")
    parser.add_argument("--templates", action="store_true", help="check the templates' default configs on typical shapes")
    parser.add_argument("--template", action="append", type=parse_template, default=[], metavar="OP:DIMS",
                        help="also check this template and shape, e.g. conv2d:1,64,56,56,64,3,3,1,1 (repeatable)")
    parser.add_argument("--per-function", type=int, default=0, metavar="N", help="list the N functions with the most spills")
    parser.add_argument("--keep", metavar="DIR", help="write the libraries here (default: a temporary folder)")
    args = parser.parse_args(argv)
    cases = (TEMPLATE_CASES if args.templates else []) + args.template
    if not args.models and not cases:
        parser.error("give ONNX models, --templates or --template OP:DIMS")
    try:
        devices = [get_device(name) for name in args.device or ["cortex-a76"]]
    except ValueError as error:
        parser.error(str(error))
    for device in devices:
        if device.family != "cpu" or not device.target.get("mtriple", "").startswith("aarch64"):
            parser.error(f"{device.name} is not an ARM CPU preset")
    try:
        with tempfile.TemporaryDirectory(prefix="arm-static-check-") as tmp:
            out_dir = args.keep or tmp
            os.makedirs(out_dir, exist_ok=True)
            if args.models:
                check_models(args.models, devices, out_dir, args.per_function)
            if cases:
                check_templates(cases, devices, out_dir, args.per_function)
    except ToolMissing as error:
        print(f"arm_static_check: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
