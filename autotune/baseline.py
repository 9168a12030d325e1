"""Same-run comparisons: re-time a chosen config and the numpy reference side by side."""
from __future__ import annotations

import statistics
import time

import numpy as np

from autotune.measure import LocalBuilder, LocalRunner, MeasureResult, TimingOptions
from autotune.task import Task
from schedules import Config


def remeasure(task: Task, config: Config, repeat: int = 10) -> MeasureResult:
    """A fresh, longer measurement of one config (the tuning minimum is biased low)."""
    inp = task.measure_input(config)
    with LocalBuilder(n_workers=1) as builder, LocalRunner(TimingOptions(repeat=repeat)) as runner:
        return runner.run([inp], builder.build([inp]))[0]


def numpy_seconds(task: Task, repeat: int = 10, min_repeat_s: float = 0.1) -> float:
    """Median time of the template's numpy reference (numpy's BLAS for matmul) on the same inputs."""
    inputs = task.template.make_inputs(task.workload, np.random.default_rng(0))
    run = lambda: task.template.reference(task.workload, inputs)  # noqa: E731
    run()
    start, number = time.perf_counter(), 1
    run()
    once = time.perf_counter() - start
    number = max(1, int(min_repeat_s / max(once, 1e-9)))
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            run()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)
