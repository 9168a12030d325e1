"""Builder and runner on real TVM builds: every failure becomes a classified result."""
import os

import pytest
from faulty_templates import CrashingMatmul, RaisingMatmul, UnscheduledMatmul, WrongMatmul

from autotune.measure import ErrorKind, LocalBuilder, LocalRunner, TimingOptions
from autotune.task import Task


def task_of(template, shape, host):
    return Task(template, template.workload(shape, "float32"), host)


@pytest.fixture(scope="module")
def builder():
    with LocalBuilder(n_workers=2, timeout=60) as b:
        yield b


def test_good_candidates_build_run_and_pass_the_check(builder, host):
    task = Task.create("matmul", (64, 96, 80), device=host)
    configs = [task.default_config] + task.space.sample(__import__("random").Random(0), 3)
    inputs = [task.measure_input(c) for c in configs]
    builds = builder.build(inputs)
    assert all(b.error is ErrorKind.NONE and os.path.exists(b.path) for b in builds)
    with LocalRunner(TimingOptions(repeat=2, min_repeat_ms=5)) as runner:
        results = runner.run(inputs, builds)
    assert [r.error for r in results] == [ErrorKind.NONE] * 4
    assert all(len(r.costs) == 2 and 0 < r.cost < 0.1 for r in results)
    assert not any(os.path.exists(b.path) for b in builds)  # libraries are removed once measured


def test_schedule_error_and_crashed_worker_are_compile_errors(builder, host):
    raising = task_of(RaisingMatmul(), (32, 32, 32), host)
    bad = raising.space.config({**raising.default_config.values, "tile_k": (32, 1)})
    crashing = task_of(CrashingMatmul(), (32, 32, 32), host)
    builds = builder.build([raising.measure_input(bad), crashing.measure_input(crashing.default_config),
                            raising.measure_input(raising.default_config)])
    assert builds[0].error is ErrorKind.COMPILE_ERROR and "vectorize" in builds[0].message.lower()
    assert builds[1].error is ErrorKind.COMPILE_ERROR and "crashed" in builds[1].message
    assert builds[2].error is ErrorKind.NONE  # the pool recovered from the crash


def test_wrong_answer_is_detected(builder, host):
    task = task_of(WrongMatmul(), (48, 40, 24), host)
    inp = task.measure_input(task.default_config)
    with LocalRunner(TimingOptions(repeat=1, min_repeat_ms=1)) as runner:
        result = runner.run([inp], builder.build([inp]))[0]
    assert result.error is ErrorKind.WRONG_ANSWER and "max abs error 1" in result.message
    assert result.cost == float("inf")


def test_hung_kernel_times_out_and_the_runner_goes_on(builder, host):
    slow = task_of(UnscheduledMatmul(), (1024, 1024, 1024), host)
    fast = Task.create("matmul", (32, 32, 32), device=host)
    inputs = [slow.measure_input(slow.default_config), fast.measure_input(fast.default_config)]
    with LocalRunner(TimingOptions(repeat=1, min_repeat_ms=1, timeout=0.3)) as runner:
        results = runner.run(inputs, builder.build(inputs))
    assert results[0].error is ErrorKind.TIMEOUT
    assert results[1].error is ErrorKind.NONE
