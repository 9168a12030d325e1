"""Time candidates on this machine, in a separate worker process that is killed on timeout.

The worker keeps one copy of the inputs and the numpy reference per workload, and checks
every candidate's output against it: the output buffer is filled with NaN first, so a
kernel that writes nothing cannot pass on stale data.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Sequence

import numpy as np
from tvm.support.popen_pool import PopenWorker

from autotune.measure.result import BuildResult, ErrorKind, MeasureInput, MeasureResult, last_line
from autotune.measure.runner import Runner, TimingOptions
from targets import physical_cores

_fixtures: dict[str, tuple[list, np.ndarray]] = {}


def _set_threads(n_threads: int) -> None:
    """Worker initializer: TVM reads this when its thread pool first starts."""
    os.environ["TVM_NUM_THREADS"] = str(n_threads)


def _fixture(inp: MeasureInput, dev) -> tuple[list, np.ndarray]:
    """Device tensors (inputs then output) and the expected output, made once per workload."""
    import tvm

    key = f"{inp.template.name}/{inp.workload.key}"
    if key not in _fixtures:
        _fixtures.clear()
        inputs = inp.template.make_inputs(inp.workload, np.random.default_rng(0))
        expected = inp.template.reference(inp.workload, inputs)
        tensors = [tvm.runtime.tensor(x, dev) for x in inputs]
        tensors.append(tvm.runtime.tensor(np.empty_like(expected), dev))
        _fixtures[key] = (tensors, expected)
    return _fixtures[key]


def run_candidate(inp: MeasureInput, path: str, timing: TimingOptions) -> tuple[tuple[float, ...], str, str]:
    """Load, time and check one library (runs in the worker). Returns (costs, error, message).

    The first call is the warm-up and the one whose output is checked. A kernel whose
    first call already takes `timing.slow_seconds` keeps that single wall-clock time: it
    is far from the best, and repeating it would only spend the budget.
    """
    import tvm

    dev = tvm.cpu()
    tensors, expected = _fixture(inp, dev)
    output = tensors[-1]
    output.copyfrom(np.full(expected.shape, np.nan, expected.dtype))
    try:
        module = tvm.runtime.load_module(path)
        start = time.perf_counter()
        module["main"](*tensors)
        dev.sync()
        first = time.perf_counter() - start
        if first >= timing.slow_seconds:
            costs: tuple[float, ...] = (first,)
        else:
            timer = module.time_evaluator(
                "main", dev, number=timing.number, repeat=timing.repeat,
                min_repeat_ms=timing.min_repeat_ms, cooldown_interval_ms=timing.cooldown_ms,
            )
            costs = tuple(timer(*tensors).results)
    except Exception as error:  # noqa: BLE001 - a failing kernel is a result
        return (), ErrorKind.RUNTIME_ERROR.value, last_line(error)
    rtol, atol = inp.template.tolerance
    actual = output.numpy()
    if not np.allclose(actual, expected, rtol=rtol, atol=atol):
        worst = float(np.nanmax(np.abs(actual - expected))) if not np.isnan(actual).all() else float("nan")
        return costs, ErrorKind.WRONG_ANSWER.value, f"output differs from numpy (max abs error {worst:.3g})"
    return costs, ErrorKind.NONE.value, ""


class LocalRunner(Runner):
    def __init__(self, timing: TimingOptions | None = None, n_threads: int | None = None):
        self.timing = timing or TimingOptions()
        self.n_threads = n_threads or physical_cores()
        self._worker = PopenWorker(_set_threads, (self.n_threads,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def run(self, inputs: Sequence[MeasureInput], builds: Sequence[BuildResult]) -> list[MeasureResult]:
        return [self._run_one(inp, build) for inp, build in zip(inputs, builds)]

    def _run_one(self, inp: MeasureInput, build: BuildResult) -> MeasureResult:
        if build.error is not ErrorKind.NONE:
            return MeasureResult(error=build.error, message=build.message, build_seconds=build.seconds)
        start = time.perf_counter()
        try:
            self._worker.send(run_candidate, (inp, build.path, self.timing), timeout=self.timing.timeout)
            costs, error, message = self._worker.recv()
            kind = ErrorKind(error)
        except TimeoutError:
            costs, kind, message = (), ErrorKind.TIMEOUT, f"run exceeded {self.timing.timeout:g}s"
        except ChildProcessError:
            costs, kind, message = (), ErrorKind.RUNTIME_ERROR, "run worker crashed"
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(build.path)
        return MeasureResult(costs, kind, message, build.seconds, time.perf_counter() - start)

    def close(self) -> None:
        self._worker.kill()
