"""Matmuls at odd sizes on their default config, against the nearest multiple of 16 in the same run.

    pytest tests/benchmarks/test_odd_sizes.py --benchmark-enable -s

M, N or K prime or just past a tile (197 tokens of a ViT, 577 of a ViT at 384, a 1000-class
head, K = 3000): each default config is re-measured alternately with the same matmul
padded up to a multiple of 16 (5 rounds, medians), and the ratio of their GFLOPS printed
(goal: at least 70%). Skipped unless benchmarks are enabled.
"""
import statistics

import pytest

from autotune import Task
from autotune.baseline import remeasure

#: name: ((M, N, K) odd, (M, N, K) at the next multiple of 16)
SIZES = {
    "ViT QKV, 197 tokens": ((197, 576, 192), (208, 576, 192)),
    "ViT MLP, 197 tokens": ((197, 768, 192), (208, 768, 192)),
    "ViT-B/384 577 tokens": ((577, 768, 768), (592, 768, 768)),
    "1000-class head": ((1, 1000, 1280), (1, 1008, 1280)),
    "K = 3000": ((128, 256, 3000), (128, 256, 3008)),
}


@pytest.mark.parametrize("name", SIZES)
def test_default_config_at_odd_sizes_against_the_next_multiple_of_16(name, benchmark, host):
    if benchmark.disabled:
        pytest.skip("a same-run comparison: run with --benchmark-enable")
    odd, even = (Task.create("matmul", shape, device=host) for shape in SIZES[name])
    gflops = {odd: [], even: []}
    for _ in range(5):
        for task in (odd, even):
            result = remeasure(task, task.default_config, repeat=5)
            assert result.ok, result.message
            gflops[task].append(task.gflops(result.cost))
    ratio = statistics.median(gflops[odd]) / statistics.median(gflops[even])
    print(f"\n{name}: {odd.workload} {statistics.median(gflops[odd]):.1f} GFLOPS, {even.workload} "
          f"{statistics.median(gflops[even]):.1f} GFLOPS: {ratio:.0%} (goal 70%)")
    benchmark.extra_info.update(odd_gflops=round(statistics.median(gflops[odd]), 1),
                                even_gflops=round(statistics.median(gflops[even]), 1), ratio=round(ratio, 3))
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
