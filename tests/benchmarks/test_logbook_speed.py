"""Log tooling speed: merge two 1000-line logs of four matmul workloads from disk, then distill.

Run with `pytest tests/benchmarks --benchmark-enable`; the median is printed and stored in
the benchmark's extra_info. Goal: well under 2 s (CI merges and distills on every run).
Without --benchmark-enable the pair still runs once and must take under 2 s.
"""
import random
import time

import pytest

from autotune.log.jsonl import write_log
from autotune.log.merge import distill, merge
from autotune.log.record import Record
from autotune.measure.result import ErrorKind
from autotune.task import Task

SHAPES = [(64, 64, 64), (128, 64, 32), (96, 48, 64), (256, 256, 256)]
LINES = 1000


def make_log(tasks, seed):
    """LINES records, LINES / len(tasks) per workload, one in ten an error."""
    rng, records = random.Random(seed), []
    for task in tasks:
        for config in task.space.sample(rng, LINES // len(tasks)):
            error = ErrorKind.COMPILE_ERROR if rng.random() < 0.1 else ErrorKind.NONE
            records.append(Record(
                workload=task.workload, device=task.device.name, target=task.device.target,
                template=task.template.name, template_version=task.template.version,
                config=task.space.to_json(config),
                costs=tuple(rng.uniform(1e-4, 1e-2) for _ in range(3)) if error is ErrorKind.NONE else (),
                error=error, message="" if error is ErrorKind.NONE else "error: no", build_seconds=0.5,
                run_seconds=0.1, versions={"tvm": "0.27.0", "autotune": "0.1.0"},
            ))
    return records


@pytest.fixture(scope="module")
def logs(host, tmp_path_factory):
    tasks = [Task.create("matmul", shape, device=host) for shape in SHAPES]
    folder = tmp_path_factory.mktemp("speed")
    paths = [folder / "a.jsonl", folder / "b.jsonl"]
    for seed, path in enumerate(paths):
        assert write_log(path, make_log(tasks, seed)) == LINES
    return paths


def test_merge_and_distill_two_1000_line_logs(benchmark, logs):
    def merge_and_distill():
        merged = merge(logs)
        return merged, distill(merged, top=3)

    start = time.perf_counter()
    merged, best = merge_and_distill()
    once = time.perf_counter() - start
    assert LINES < len(merged) < 2 * LINES  # random samples of the same spaces overlap
    assert len(best) == 3 * len(SHAPES)
    assert once < 2.0

    benchmark.pedantic(merge_and_distill, rounds=10, iterations=1)
    median = benchmark.stats.stats.median if benchmark.stats else once
    benchmark.extra_info["seconds"] = round(median, 4)
    print(f"\nmerge + distill of 2 x {LINES} lines: {median * 1e3:.1f} ms (median{' of 10' if benchmark.stats else ', one run'})")
