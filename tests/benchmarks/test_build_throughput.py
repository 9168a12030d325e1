"""Build throughput: candidates per second through schedule + compile + export, 1024^3 matmul.

Run with `pytest tests/benchmarks --benchmark-enable`; the rate is printed and stored in
the benchmark's extra_info. Goal: at least 8 candidates per second on 2 cores.
"""
import random

import pytest

from autotune.measure import ErrorKind, LocalBuilder
from autotune.task import Task

BATCH = 32


@pytest.fixture(scope="module")
def builder():
    with LocalBuilder() as b:
        b.build([])  # nothing: workers start lazily, warmed below
        yield b


def test_build_throughput_matmul_1024(benchmark, builder, host):
    task = Task.create("matmul", (1024, 1024, 1024), device=host)
    rng = random.Random(0)
    builder.build([task.measure_input(c) for c in task.space.sample(rng, builder.n_workers)])  # start workers

    def build_batch():
        return builder.build([task.measure_input(c) for c in task.space.sample(rng, BATCH)])

    results = benchmark.pedantic(build_batch, rounds=3, iterations=1)
    assert all(r.error is ErrorKind.NONE for r in results)
    if benchmark.stats:
        rate = BATCH / benchmark.stats.stats.median
        benchmark.extra_info["candidates_per_second"] = round(rate, 2)
        print(f"\nbuild throughput: {rate:.1f} candidates/s ({builder.n_workers} workers, median of 3 batches of {BATCH})")
