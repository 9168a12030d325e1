"""Timing a compiled model beside its untuned build and ONNX Runtime, in one process, fairly.

Thread pools of both runtimes keep spinning for a while after a call and slow whatever
runs next (TVM_NOTES: 43 ms instead of 5 ms right after ORT), so each timed block starts
after a pause and a warm-up, and the runtimes take turns over several rounds; the figure
is the median over all rounds. TVM's calling thread is kept off its other workers' cores while
a compiled model is timed (`targets.tvm_compat.apart_from_workers`), as the tuner's runner times a kernel.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
import tvm
from tvm import relax

from autotune.model import input_dtypes
from targets import Device, get_device
from targets.tvm_compat import apart_from_workers

PAUSE_SECONDS = 0.3


def random_inputs(model: onnx.ModelProto, shapes: Mapping[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for every graph input: normal floats; 0/1 integers (valid ids and masks alike)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, dtype in input_dtypes(model).items():
        if np.issubdtype(dtype, np.integer):
            feeds[name] = rng.integers(0, 2, shapes[name]).astype(dtype)
        else:
            feeds[name] = rng.standard_normal(shapes[name]).astype(dtype)
    return feeds


class VMRunner:
    """A compiled model on this machine, called with numpy inputs (on the device's runtime device:
    the host preset's CPU by default)."""

    def __init__(self, executable: relax.Executable, feeds: Mapping[str, np.ndarray], device: Device | None = None):
        self.dev = (device or get_device("host")).runtime_device()
        self.vm = relax.VirtualMachine(executable, self.dev)
        self.args = [tvm.runtime.tensor(x, self.dev) for x in feeds.values()]

    def output(self) -> np.ndarray:
        out = self.vm["main"](*self.args)
        return (out[0] if isinstance(out, tvm.ir.Array) else out).numpy()

    def time(self, number: int) -> list[float]:
        self.vm["main"](*self.args)  # starts the thread pool
        timer = self.vm.time_evaluator("main", self.dev, number=number, repeat=1)
        with apart_from_workers():
            return [timer(*self.args).mean]


class ORTRunner:
    """The same model in ONNX Runtime, sequential execution with `threads` intra-op threads."""

    def __init__(self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        self.session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.feeds = dict(feeds)

    def output(self) -> np.ndarray:
        return self.session.run(None, self.feeds)[0]

    def time(self, number: int) -> list[float]:
        start = time.perf_counter()
        for _ in range(number):
            self.session.run(None, self.feeds)
        return [(time.perf_counter() - start) / number]


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Timing:
    name: str
    median_seconds: float
    max_abs_diff: float  # against the reference output
    close: bool


def compare(runners: Mapping[str, VMRunner | ORTRunner], reference: str, rounds: int = 5, min_seconds: float = 0.5,
            rtol: float = 1e-4, atol: float = 1e-4, log: Callable[[str], None] | None = None) -> list[Timing]:
    """Median latency of each runner over `rounds` interleaved rounds, outputs checked against `reference`'s."""
    expected = runners[reference].output()
    outputs = {name: runner.output() for name, runner in runners.items()}
    numbers = {name: _calls_for(runner, min_seconds / rounds) for name, runner in runners.items()}
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for round_index in range(rounds):
        for name, runner in runners.items():
            time.sleep(PAUSE_SECONDS)
            runner.time(1)  # warm-up after the pause
            samples[name] += runner.time(numbers[name])
        if log:
            log(f"round {round_index + 1}/{rounds}: " + ", ".join(f"{n} {s[-1] * 1e3:.2f} ms" for n, s in samples.items()))
    timings = []
    for name in runners:
        diff = float(np.max(np.abs(outputs[name].astype(np.float64) - expected))) if expected.size else 0.0
        close = bool(np.allclose(outputs[name], expected, rtol=rtol, atol=atol))
        timings.append(Timing(name, statistics.median(samples[name]), diff, close))
    return timings


def _calls_for(runner: VMRunner | ORTRunner, seconds: float) -> int:
    """Calls per timed block so that a block lasts about `seconds`."""
    once = runner.time(1)[0]
    return max(1, int(seconds / max(once, 1e-6)))
