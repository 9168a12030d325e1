"""GFLOPS of the CPU templates on the operators that dominate real models, tuned and untuned.

    pytest tests/benchmarks/test_operator_gflops.py --benchmark-enable -s

tunes each workload (AUTOTUNE_BENCH_TRIALS, default 300, xgb tuner, 2 threads here), then
re-measures the best and the default config side by side and prints them beside numpy's
GEMM (1024^3) timed in the same run. Goals (issue 4, this 2-core machine): ResNet-18 conv
3x3 64->64 at 56x56 >= 140 GFLOPS; MobileNetV2 depthwise 3x3 at 112x112x32 >= 25 (and its
GB/s); BERT dense 128x256x1024 >= 120; batch_matmul 4x128x128x64 >= 80; default configs
at least 40% of tuned. Winograd's GFLOPS count the direct convolution's FLOPs, so they
compare with the direct conv's. Skipped unless benchmarks are enabled (tuning takes minutes).
"""
import os

import pytest

from autotune import Task, tune
from autotune.baseline import numpy_seconds, remeasure

WORKLOADS = {
    "resnet18 conv 3x3 64->64 56x56": ("conv2d", (1, 64, 56, 56, 64, 3, 3, 1, 1), 140),
    "resnet18 conv 3x3 64->64 56x56 by winograd": ("conv2d_winograd", (1, 64, 56, 56, 64, 3, 3, 1, 1), 140),
    "resnet18 conv 3x3 256->256 14x14 by winograd": ("conv2d_winograd", (1, 256, 14, 14, 256, 3, 3, 1, 1), 140),
    "mobilenetv2 depthwise 3x3 32ch 112x112": ("depthwise_conv2d", (1, 32, 112, 112, 3, 3, 1, 1), 25),
    "bert dense 128x256x1024": ("matmul", (128, 1024, 256), 120),
    "batch_matmul 4x128x128x64": ("batch_matmul", (4, 128, 128, 64), 80),
}


def bytes_moved(task: Task) -> int:
    """Compulsory traffic: every input read once and the output written once."""
    import numpy as np

    inputs = task.template.make_inputs(task.workload, np.random.default_rng(0))
    output = task.template.reference(task.workload, inputs)
    return sum(x.nbytes for x in inputs) + output.nbytes


@pytest.mark.parametrize("name", WORKLOADS)
def test_tuned_and_default_gflops(name, benchmark, host, tmp_path):
    if benchmark.disabled:
        pytest.skip("tunes for minutes: run with --benchmark-enable")
    op, shape, goal = WORKLOADS[name]
    trials = int(os.environ.get("AUTOTUNE_BENCH_TRIALS", "300"))
    task = Task.create(op, shape, device=host)
    result = tune(task, trials, "xgb", tmp_path / "log.jsonl", early_stopping=100)
    tuned = benchmark.pedantic(remeasure, args=(task, result.best_config), rounds=1, iterations=1)
    default = remeasure(task, task.default_config)
    gemm = Task.create("matmul", (1024, 1024, 1024), device=host)
    numpy_gflops = gemm.gflops(numpy_seconds(gemm))
    tuned_gflops, default_gflops = task.gflops(tuned.cost), task.gflops(default.cost)
    gbps = bytes_moved(task) / tuned.cost / 1e9
    print(f"\n{name}: tuned {tuned_gflops:.1f} GFLOPS ({gbps:.1f} GB/s compulsory traffic) after {result.measured} trials, "
          f"default {default_gflops:.1f} GFLOPS ({default_gflops / tuned_gflops:.0%} of tuned); "
          f"numpy GEMM 1024^3 in the same run: {numpy_gflops:.1f} GFLOPS; goal {goal}")
    benchmark.extra_info.update(tuned_gflops=round(tuned_gflops, 1), default_gflops=round(default_gflops, 1),
                                numpy_gemm_gflops=round(numpy_gflops, 1), gbps=round(gbps, 1))
    assert tuned.ok and default.ok
