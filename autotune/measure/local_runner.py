"""Time candidates on this machine, in a separate worker process that is killed on timeout.

The worker stays alive across candidates (an `import tvm` costs most of a second) and
uses as many threads as there are physical cores; it times with its calling thread off the other
workers' cores, while all of them run (`autotune.measure.steady.SteadyTimer`).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Sequence

from tvm.support.popen_pool import PopenWorker

from autotune.measure.evaluate import evaluate
from autotune.measure.result import BuildResult, ErrorKind, MeasureInput, MeasureResult, last_line
from autotune.measure.runner import ResultCallback, Runner, TimingOptions
from targets import physical_cores
from autotune.measure import steady
from targets.tvm_compat import config_threadpool


def _start_worker(n_threads: int) -> None:
    """Worker initializer: the thread count (TVM reads it when its pool starts), then the pool's probe."""
    os.environ["TVM_NUM_THREADS"] = str(n_threads)
    steady.prepare()


def run_candidate(inp: MeasureInput, build: BuildResult, timing: TimingOptions) -> tuple[tuple[float, ...], str, str]:
    """Load and evaluate one library (runs in the worker)."""
    import tvm

    try:
        dev = inp.device.runtime_device()  # first: an OpenCL library loads with the OpenCL runtime only
        module = tvm.runtime.load_module(build.path)
    except Exception as error:  # noqa: BLE001 - a library that does not load is a result
        return (), ErrorKind.RUNTIME_ERROR.value, last_line(error)
    timer = steady.timer() if inp.device.gpu is None else (lambda timed: timed())
    return evaluate(module, dev, inp, timing, config_threadpool(), build.packed, build.kernels, timer)


class LocalRunner(Runner):
    def __init__(self, timing: TimingOptions | None = None, n_threads: int | None = None):
        self.timing = timing or TimingOptions()
        self.n_threads = n_threads or physical_cores()
        self._worker = PopenWorker(_start_worker, (self.n_threads,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def run(
        self, inputs: Sequence[MeasureInput], builds: Sequence[BuildResult], on_result: ResultCallback | None = None
    ) -> list[MeasureResult]:
        results = []
        for position, (inp, build) in enumerate(zip(inputs, builds)):
            results.append(self._run_one(inp, build))
            if on_result:
                on_result(position, results[-1])
        return results

    def _run_one(self, inp: MeasureInput, build: BuildResult) -> MeasureResult:
        if build.error is not ErrorKind.NONE:
            return MeasureResult(error=build.error, message=build.message, build_seconds=build.seconds)
        start = time.perf_counter()
        try:
            self._worker.send(run_candidate, (inp, build, self.timing), timeout=self.timing.timeout)
            costs, error, message = self._worker.recv()
            kind = ErrorKind(error)
        except TimeoutError:
            costs, kind, message = (), ErrorKind.TIMEOUT, f"run exceeded {self.timing.timeout:g}s"
        except ChildProcessError:
            costs, kind, message = (), ErrorKind.RUNTIME_ERROR, "run worker crashed"
        except Exception as error:  # noqa: BLE001 - e.g. the inputs could not be made on the device
            costs, kind, message = (), ErrorKind.RUNTIME_ERROR, last_line(error)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(build.path)
        return MeasureResult(costs, kind, message, build.seconds, time.perf_counter() - start)

    def close(self) -> None:
        self._worker.kill()
