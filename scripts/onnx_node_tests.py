#!/usr/bin/env python3
"""ONNX's own backend node tests, through plain TVM and through the project's compile path.

Each selected case runs as given ("inputs": weights are graph inputs) and, when it has
more than one input, with every input but the first turned into an initializer
("constants", as real models hold their weights). Each run goes through two paths:
`tvm` (from_onnx, the "zero" pipeline, tvm.compile) and `autotune` (import_onnx, lower,
schedule_model untuned, compile_model), each in a worker process with a timeout.

Outputs are compared with the case's tolerance (ONNX gives every node case rtol=1e-3,
atol=1e-7). Ops computed with approximations (`APPROXIMATE`: the project's fast exp, erf
and tanh) get atol >= 1e-5 on both paths; today only plain TVM's Mish needs it (5.8e-7).

    python scripts/onnx_node_tests.py [--only REGEX] [--json OUT] [--workers 2]
"""
from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait

import numpy as np
import onnx
from onnx import numpy_helper

OPS = frozenset("""Conv ConvTranspose Gemm MatMul MaxPool AveragePool GlobalAveragePool GlobalMaxPool LpPool
BatchNormalization LayerNormalization InstanceNormalization GroupNormalization LRN Relu LeakyRelu PRelu
Sigmoid HardSigmoid HardSwish Tanh Elu Selu Gelu Mish Softplus Softsign Clip Softmax LogSoftmax Erf
Reshape Transpose Concat Split Flatten Squeeze Unsqueeze Resize Pad Add Mul Sub Div ReduceMean
Max Min Sum Mean Expand Dropout""".split())
APPROXIMATE = frozenset("Gelu Erf Tanh Sigmoid Softmax LogSoftmax Elu Selu Softplus Mish".split())
FAST_MATH_ATOL = 1e-5
DTYPES = frozenset("float32 bool int8 int16 int32 int64 uint8 uint16 uint32 uint64".split())
PATHS = ("tvm", "autotune")
PASS = "pass"


@dataclass
class Case:
    """One ONNX node test: its model (serialized), one data set, tolerances."""

    name: str
    op: str
    model: bytes
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    rtol: float
    atol: float


@dataclass
class RunSpec:
    """A case in a variant ("inputs" or "constants") through one path ("tvm" or "autotune")."""

    case: Case
    variant: str
    path: str


@dataclass
class Result:
    """The outcome of a run: pass, wrong, <stage> error, crash or timeout (detail: first error line)."""

    case: str
    op: str
    variant: str
    path: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0
    mismatched: int = 0
    max_abs_err: float = 0.0
    coverage: str = ""


@dataclass
class Summary:
    """Counts per (path, outcome) and the runs grouped by which path fails."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    project_only: list[tuple[Result, Result]] = field(default_factory=list)
    tvm_only: list[tuple[Result, Result]] = field(default_factory=list)
    both: dict[str, list[str]] = field(default_factory=dict)


def _array(value) -> np.ndarray | None:
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value) if isinstance(value, (np.ndarray, np.generic)) else None


def _why_not_run(name: str, inputs: list, outputs: list) -> str | None:
    if "training" in name:
        return "training mode"
    arrays = [_array(x) for x in [*inputs, *outputs]]
    if any(a is None for a in arrays):
        return "non-tensor data (sequence or optional)"
    dtypes = sorted({str(a.dtype) for a in arrays} - DTYPES)
    if dtypes:
        return f"dtype {'/'.join(dtypes)}"
    return None


def select_cases(pattern: str | None = None, expanded: bool = False,
                 ops: Iterable[str] = OPS) -> tuple[list[Case], dict[str, str]]:
    """The node cases for `ops` (name matching `pattern`), and those not run with the reason why."""
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        everything = collect_testcases()
    op_of = {c.name: c.model.graph.node[0].op_type for c in everything if len(c.model.graph.node) == 1}
    cases, not_run = [], {}
    for test in everything:
        base = re.sub(r"_expanded(_ver\d+)?$", "", test.name)
        op = op_of.get(base)
        if op not in ops or (pattern and not re.search(pattern, test.name)):
            continue
        inputs, outputs = test.data_sets[0]
        reason = _why_not_run(test.name, list(inputs), list(outputs))
        if base != test.name and not expanded:
            reason = "function-expanded form (tests the ops of its body; --expanded runs it)"
        if reason:
            not_run[test.name] = reason
            continue
        cases.append(Case(test.name, op, test.model.SerializeToString(), [_array(x) for x in inputs],
                          [_array(x) for x in outputs], test.rtol, test.atol))
    return cases, not_run


def with_constants(model: onnx.ModelProto, inputs: list[np.ndarray]) -> tuple[onnx.ModelProto, list[np.ndarray]]:
    """The model with every graph input but the first made an initializer holding its data."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    for value, data in zip(list(graph.input)[1:], inputs[1:]):
        graph.initializer.append(numpy_helper.from_array(data, value.name))
    if model.ir_version >= 4:  # IR 3 wants every initializer listed among the inputs too
        del graph.input[1:]
    return model, inputs[:1]


def make_runs(cases: Iterable[Case], variants: Iterable[str] = ("inputs", "constants")) -> list[RunSpec]:
    """Every case x variant x path; "constants" only for cases with more than one input."""
    return [RunSpec(case, variant, path) for case in cases for variant in variants
            if variant == "inputs" or len(case.inputs) > 1 for path in PATHS]


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


def _numpy_outputs(value) -> list[np.ndarray]:
    if hasattr(value, "numpy"):
        return [value.numpy()]
    return [array for item in value for array in _numpy_outputs(item)]


def compare(case: Case, got: list[np.ndarray]) -> tuple[str, str, int, float]:
    """(outcome, detail, mismatching elements, max abs error) of `got` against the case's outputs."""
    atol = max(case.atol, FAST_MATH_ATOL) if case.op in APPROXIMATE else case.atol
    if len(got) != len(case.outputs):
        return "wrong", f"{len(got)} outputs, expected {len(case.outputs)}", 0, 0.0
    bad, worst, details = 0, 0.0, []
    for index, (out, ref) in enumerate(zip(got, case.outputs)):
        if out.shape != ref.shape:
            details.append(f"output {index}: shape {list(out.shape)}, expected {list(ref.shape)}")
            bad += ref.size
            continue
        out64, ref64 = out.astype(np.float64), ref.astype(np.float64)
        close = np.isclose(out64, ref64, rtol=case.rtol, atol=atol, equal_nan=True)
        if not close.all():
            err = np.abs(out64 - ref64)[~close]
            worst = max(worst, float(np.nanmax(err)) if np.isfinite(err).any() else float("inf"))
            bad += int((~close).sum())
            details.append(f"output {index}: {int((~close).sum())}/{ref.size} differ")
    if not details:
        return PASS, "", 0, 0.0
    return "wrong", "; ".join(details) + f", max abs err {worst:.3g}", bad, worst


def run_one(spec: RunSpec) -> Result:
    """Build and run one case in one variant through one path (in this process)."""
    import tvm
    from tvm import relax

    from targets import get_device

    case = spec.case
    start = time.perf_counter()
    result = Result(case.name, case.op, spec.variant, spec.path, PASS)
    model, feeds = onnx.ModelProto.FromString(case.model), case.inputs
    if spec.variant == "constants":
        model, feeds = with_constants(model, feeds)
    names = [value.name for value in model.graph.input][:len(feeds)]
    shapes = {name: list(x.shape) for name, x in zip(names, feeds)}
    device = get_device("host")
    stage = "import error"
    try:
        if spec.path == "tvm":
            from tvm.relax.frontend.onnx import from_onnx
            module = from_onnx(model, shape_dict=shapes)
            stage = "lowering error"
            module = relax.get_pipeline("zero")(module)
            stage = "compile error"
            executable = tvm.compile(module, target=device.tvm_target)
        else:
            from autotune.compile import compile_model, schedule_model
            from autotune.model import ModelError, import_onnx, lower
            try:
                module = import_onnx(model, shapes)
            except ModelError as error:
                stage = "checker error" if "invalid ONNX model" in str(error) else stage
                raise
            stage = "lowering error"
            module = lower(module)
            stage = "schedule error"
            module, coverage = schedule_model(module, device, tuned=False)
            result.coverage = coverage.summary()
            stage = "compile error"
            executable = compile_model(module, device)
        stage = "runtime error"
        vm = relax.VirtualMachine(executable, tvm.cpu())
        got = _numpy_outputs(vm["main"](*[tvm.runtime.tensor(x) for x in feeds]))
    except Exception as error:  # noqa: BLE001 - every failure is a finding, classified by stage
        result.outcome, result.detail = stage, _first_line(error)
    else:
        result.outcome, result.detail, result.mismatched, result.max_abs_err = compare(case, got)
    result.seconds = round(time.perf_counter() - start, 2)
    return result


def _worker(conn, threads: int, quiet: bool) -> None:
    os.environ["TVM_NUM_THREADS"] = str(threads)
    if quiet:  # the importer prints every operator it fails on, TVM its warnings
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    while (spec := conn.recv()) is not None:
        conn.send(run_one(spec))


def run_all(specs: list[RunSpec], workers: int = 2, timeout: float = 180.0, threads: int = 1,
            quiet: bool = True) -> Iterator[Result]:
    """Results of `specs`, in completion order, from `workers` worker processes.

    A worker that dies gives "crash" (and is replaced); one past `timeout` is killed: "timeout".
    `threads`: TVM_NUM_THREADS in each worker. `quiet`: drop the workers' stdout and stderr.
    """
    context = multiprocessing.get_context("spawn")

    def spawn():
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(child, threads, quiet), daemon=True)
        process.start()
        child.close()
        return process, parent

    pending = collections.deque(specs)
    idle = [spawn() for _ in range(min(workers, len(specs)))]
    busy: dict = {}  # connection -> (process, spec, deadline)
    try:
        while pending or busy:
            while idle and pending:
                process, conn = idle.pop()
                spec = pending.popleft()
                conn.send(spec)
                busy[conn] = (process, spec, time.monotonic() + timeout)
            next_deadline = min(deadline for _, _, deadline in busy.values())
            for conn in wait(list(busy), timeout=max(0.0, next_deadline - time.monotonic())):
                process, spec, _ = busy.pop(conn)
                try:
                    yield conn.recv()
                    idle.append((process, conn))
                except (EOFError, ConnectionError):
                    process.join(5)
                    yield _failed(spec, "crash", f"worker exited with code {process.exitcode}")
                    idle.append(spawn())
            for conn, (process, spec, deadline) in list(busy.items()):
                if time.monotonic() > deadline:
                    del busy[conn]
                    process.kill()
                    process.join(5)
                    yield _failed(spec, "timeout", f"over {timeout:.0f} s")
                    idle.append(spawn())
    finally:
        for process, conn in idle + [(p, c) for c, (p, _, _) in busy.items()]:
            try:
                conn.send(None)
            except OSError:
                pass
            process.join(2)
            if process.is_alive():
                process.kill()


def _failed(spec: RunSpec, outcome: str, detail: str) -> Result:
    return Result(spec.case.name, spec.case.op, spec.variant, spec.path, outcome, detail)


def summarize(results: Iterable[Result]) -> Summary:
    """Counts per path and outcome; the runs failing only in the project, only in TVM, in both."""
    summary = Summary(counts={path: collections.Counter() for path in PATHS})
    runs: dict[tuple[str, str], dict[str, Result]] = collections.defaultdict(dict)
    for result in results:
        summary.counts[result.path][result.outcome] += 1
        runs[result.case, result.variant][result.path] = result
    for key in sorted(runs):
        tvm_result, ours = runs[key].get("tvm"), runs[key].get("autotune")
        if tvm_result is None or ours is None:
            continue
        if tvm_result.outcome == PASS and ours.outcome != PASS:
            summary.project_only.append((tvm_result, ours))
        elif ours.outcome == PASS and tvm_result.outcome != PASS:
            summary.tvm_only.append((tvm_result, ours))
        elif ours.outcome != PASS:
            theirs, mine = _reason(tvm_result), _reason(ours)
            reason = f"both {mine}" if theirs == mine else f"tvm {theirs} | autotune {mine}"
            summary.both.setdefault(reason, []).append(f"{key[0]}[{key[1]}]")
    summary.counts = {path: dict(counter) for path, counter in summary.counts.items()}
    return summary


def _reason(result: Result) -> str:
    """The outcome and its first error line, numbers masked so that alike failures group."""
    if result.outcome == "wrong":
        return "wrong output shapes" if "shape" in result.detail else "wrong values"
    return f"{result.outcome}: {re.sub(r'[0-9]+', 'N', result.detail)[:160]}"


def report(summary: Summary, not_run: dict[str, str], seconds: float) -> str:
    """The text the script prints."""
    outcomes = sorted({o for counts in summary.counts.values() for o in counts}, key=lambda o: (o != PASS, o))
    lines = [f"{'outcome':<16}" + "".join(f"{path:>10}" for path in PATHS)]
    lines += [f"{o:<16}" + "".join(f"{summary.counts[p].get(o, 0):>10}" for p in PATHS) for o in outcomes]
    lines.append(f"{'total':<16}" + "".join(f"{sum(summary.counts[p].values()):>10}" for p in PATHS))
    reasons = collections.Counter(not_run.values()).most_common()
    lines.append(f"not run: {len(not_run)} cases" + "".join(f"; {reason} x{n}" for reason, n in reasons))
    lines.append(f"\nproject fails, plain TVM passes: {len(summary.project_only)}")
    for _, ours in summary.project_only:
        lines.append(f"  {ours.case}[{ours.variant}]: {ours.outcome}: {ours.detail}")
    lines.append(f"\nplain TVM fails, project passes: {len(summary.tvm_only)}")
    for theirs, _ in summary.tvm_only:
        lines.append(f"  {theirs.case}[{theirs.variant}]: {theirs.outcome}: {theirs.detail}")
    total = sum(len(names) for names in summary.both.values())
    lines.append(f"\nboth fail: {total} runs in {len(summary.both)} groups")
    for reason, names in sorted(summary.both.items(), key=lambda item: -len(item[1])):
        lines.append(f"  [{len(names)}] {reason}\n      " + " ".join(names))
    lines.append(f"\n{seconds:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", metavar="REGEX", help="run only the cases whose name matches")
    parser.add_argument("--json", metavar="OUT", help="write every run's result (and the cases not run) here")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per run")
    parser.add_argument("--threads", type=int, default=1, help="TVM_NUM_THREADS in each worker")
    parser.add_argument("--verbose", action="store_true", help="show the workers' output (importer and TVM messages)")
    parser.add_argument("--expanded", action="store_true", help="also run the function-expanded cases")
    parser.add_argument("--variants", default="inputs,constants")
    parser.add_argument("--extra-ops", default="", help="comma-separated ONNX ops to add to the selection")
    args = parser.parse_args(argv)
    start = time.monotonic()
    ops = OPS | set(filter(None, args.extra_ops.split(",")))
    cases, not_run = select_cases(args.only, args.expanded, ops)
    specs = make_runs(cases, args.variants.split(","))
    results = []
    for done, result in enumerate(run_all(specs, args.workers, args.timeout, args.threads, not args.verbose), 1):
        results.append(result)
        print(f"\r{done}/{len(specs)} runs", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    summary = summarize(results)
    print(report(summary, not_run, time.monotonic() - start))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"results": [asdict(r) for r in sorted(results, key=lambda r: (r.case, r.variant, r.path))],
                       "not_run": not_run}, out, indent=1)
    return 1 if summary.project_only else 0


if __name__ == "__main__":
    sys.exit(main())
