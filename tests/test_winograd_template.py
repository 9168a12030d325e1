"""Winograd conv2d: the template against numpy, its kernel transform, a model lowered with it
against onnx's reference evaluator, and compiling with whichever algorithm the logs found faster."""
import os
import random
import sys

import numpy as np
import pytest
import tvm
from onnx.reference import ReferenceEvaluator
from tvm import relax, te

from numpy_check import check_against_numpy

from autotune.bench import random_inputs
from autotune.compile import (compile_model, extract_tasks, replaced_by_alternatives, lower_for_logs, primfuncs,
                              schedule_model, with_alternatives)
from autotune.engine import make_record
from autotune.log.packs import Pack, PackRecords
from autotune.log.store import MemoryStore
from autotune.measure import MeasureResult
from autotune.model import import_onnx, lower, resolve_shapes
from autotune.task import Task
from schedules.winograd import Conv2dWinogradCPU, winograd_kernel, winograd_kernel_numpy

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import make_models  # noqa: E402

SHAPES = {
    "resnet18-64ch-56": (1, 64, 56, 56, 64, 3, 3, 1, 1),
    "resnet18-256ch-14": (1, 256, 14, 14, 256, 3, 3, 1, 1),
    "blocks-of-8-wide": (2, 24, 6, 10, 40, 3, 3, 1, 1),
    "no-padding": (1, 16, 8, 12, 16, 3, 3, 1, 0),
    "three-channels": (1, 3, 4, 4, 16, 3, 3, 1, 1),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_default_and_random_configs_of_both_orders_match_numpy(shape, host):
    task = Task.create("conv2d_winograd", shape, device=host)
    default = task.default_config
    configs = [default, task.space.config({**dict(default.values), "order": "channels"})] + task.space.sample(random.Random(3), 3)
    for config in configs:
        check_against_numpy(task, config)


def test_reference_is_the_direct_convolution_of_the_untransformed_kernel():
    """U from the numpy kernel transform, reference recovered from U: the direct conv2d of the kernel itself."""
    from schedules.conv2d import Conv2dCPU

    direct = Conv2dCPU()
    shape = (1, 16, 6, 6, 16, 3, 3, 1, 1)
    data, kernel = direct.make_inputs(direct.workload(shape), np.random.default_rng(0))
    winograd = Conv2dWinogradCPU()
    expected = direct.reference(direct.workload(shape), [data, kernel])
    actual = winograd.reference(winograd.workload(shape), [data, winograd_kernel_numpy(kernel)])
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_kernel_transform_in_tvm_matches_numpy(host):
    kernel = np.random.default_rng(1).uniform(-1, 1, (2, 3, 3, 3, 8, 16)).astype("float32")
    placeholder = te.placeholder(kernel.shape, "float32", name="kernel")
    func = te.create_prim_func([placeholder, winograd_kernel(placeholder)])
    executable = tvm.compile(func, target=host.tvm_target)
    out = tvm.runtime.tensor(np.zeros((4, 4, 2, 24, 16), "float32"))
    executable["main"](tvm.runtime.tensor(kernel), out)
    np.testing.assert_allclose(out.numpy(), winograd_kernel_numpy(kernel), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 16, 8, 8, 16, 3, 3, 2, 1), (1, 16, 8, 8, 16, 5, 5, 1, 2), (1, 16, 7, 7, 16, 3, 3, 1, 1)],
                         ids=["stride-2", "5x5", "odd-output"])
def test_workloads_it_cannot_compute_are_refused(shape):
    with pytest.raises(ValueError, match="3x3 kernel, stride 1 and an even output"):
        Conv2dWinogradCPU().workload(shape)


@pytest.fixture(scope="module")
def small_resnet():
    model = make_models.resnet18(image=32, classes=10, width=8)
    return model, import_onnx(model)


def test_model_lowered_with_winograd_matches_the_reference_evaluator(small_resnet, host):
    """Every eligible conv (8x8, 4x4, 2x2 outputs) by Winograd; default and random configs; kernels folded."""
    model, imported = small_resnet
    direct = extract_tasks(lower(imported), host)
    eligible = {t.task.workload for t in direct if Conv2dWinogradCPU().serves(t.task.workload)}
    assert len(eligible) == 3
    module = lower(imported, eligible)
    names = set(primfuncs(module))
    assert not any("winograd_kernel" in name for name in names), "kernel transforms must be folded into constants"
    tasks = extract_tasks(module, host)
    winograd = [t for t in tasks if t.task.template.name == "conv2d_winograd.cpu"]
    assert {t.task.workload.args for t in winograd} == {w.args for w in eligible}
    assert sum(t.calls for t in winograd) == sum(t.calls for t in direct if t.task.workload in eligible)
    feeds = random_inputs(model, resolve_shapes(model))
    expected = ReferenceEvaluator(model).run(None, feeds)[0]
    rng = random.Random(0)
    for pick in (lambda task: task.default_config, lambda task: task.space.sample(rng, 1)[0]):
        records = [make_record(t.task, pick(t.task), MeasureResult((1e-3,))) for t in tasks]
        scheduled, coverage = schedule_model(module, host, records, tasks=tasks)
        assert not coverage.failed and not coverage.fallback
        vm = relax.VirtualMachine(compile_model(scheduled, host), tvm.cpu())
        actual = vm["main"](*[tvm.runtime.tensor(x) for x in feeds.values()]).numpy()
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_compile_takes_the_algorithm_the_logs_measured_faster(small_resnet, host):
    _, imported = small_resnet
    tasks = with_alternatives(extract_tasks(lower(imported), host))
    alternatives = [t for t in tasks if t.alternative_of]
    assert len(alternatives) == 3 and all(t.operator_key == t.alternative_of.operator_key for t in alternatives)
    fast, slow = alternatives[0], alternatives[1]

    def logged(model_task, seconds):
        return make_record(model_task.task, model_task.task.default_config, MeasureResult((seconds,)))

    records = [logged(fast, 1e-4), logged(fast.alternative_of, 2e-4), logged(slow, 3e-4), logged(slow.alternative_of, 2e-4)]
    assert replaced_by_alternatives(tasks, records) == {fast.alternative_of.task.workload}
    # The user's log measured only the direct conv, a pre-tuned pack the Winograd one: still compared.
    pack = PackRecords(Pack("host-test", "", "host"), False, MemoryStore([logged(fast, 1e-4)]))
    assert replaced_by_alternatives(tasks, [logged(fast.alternative_of, 2e-4)], packs=[pack]) == {
        fast.alternative_of.task.workload}
    with pytest.raises(ValueError, match="cannot compute"):
        lower(imported, [t.task.workload for t in tasks if t.task.workload.op == "matmul"])
    module, compiled_tasks = lower_for_logs(imported, host, records)
    ops = {t.task.workload.op: set() for t in compiled_tasks}
    for t in compiled_tasks:
        ops[t.task.workload.op].add(t.task.workload.args)
    assert ops["conv2d_winograd"] == {fast.task.workload.args}
    assert slow.alternative_of.task.workload.args in ops["conv2d"]
    # Without logs, every operator keeps the direct algorithm (the untuned build).
    _, untuned_tasks = lower_for_logs(imported, host, [])
    assert "conv2d_winograd" not in {t.task.workload.op for t in untuned_tasks}


def test_cli_lists_the_alternatives_and_compiles_the_faster_algorithm(small_resnet, host, tmp_path):
    import json
    import subprocess

    import onnx

    from autotune.compile import load_model

    model, imported = small_resnet
    path = tmp_path / "resnet.onnx"
    onnx.save(model, path)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "autotune.cli", *map(str, args)], capture_output=True, text=True)

    listed = cli("tasks", path)
    assert listed.returncode == 0 and listed.stdout.count("alternative to #") == 3, listed.stdout
    tasks = with_alternatives(extract_tasks(lower(imported), host))
    with open(tmp_path / "log.jsonl", "w") as log:  # Winograd measured twice as fast as the direct conv
        for t in tasks:
            seconds = 1e-4 if t.alternative_of else 2e-4
            log.write(json.dumps(make_record(t.task, t.task.default_config, MeasureResult((seconds,))).to_json()) + "\n")
    done = cli("compile", path, "--log", tmp_path / "log.jsonl", "-o", tmp_path / "resnet.so", "--strict")
    assert done.returncode == 0, done.stderr
    direct_only = len(tasks) - 2 * 3  # the three Winograd convs replace their direct tasks
    assert f"{direct_only + 3}/{direct_only + 3} tasks tuned" in done.stdout
    feeds = random_inputs(model, resolve_shapes(model))
    expected = ReferenceEvaluator(model).run(None, feeds)[0]
    actual = load_model(str(tmp_path / "resnet.so"))["main"](*[tvm.runtime.tensor(x) for x in feeds.values()]).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_scheduler_counts_an_operator_once_by_its_faster_algorithm(small_resnet, host, tmp_path):
    from autotune.engine import TuningSession
    from autotune.log.replay import ReplayRunner
    from autotune.measure import LocalBuilder
    from autotune.options import TuneOptions
    from autotune.scheduler import TaskProgress, tune_model

    _, imported = small_resnet
    tasks = with_alternatives(extract_tasks(lower(imported), host))
    winograd = next(t for t in tasks if t.alternative_of)
    direct = winograd.alternative_of

    def progress(model_task, seconds):
        record = make_record(model_task.task, model_task.task.default_config, MeasureResult((seconds,)))
        state = TaskProgress(model_task, TuningSession(model_task.task, "random", [record]))
        state.best_history.append(seconds)
        return state

    fast, slow = progress(winograd, 1e-4), progress(direct, 3e-4)
    operator = min(fast.latency, slow.latency)
    assert fast.gain(operator) == pytest.approx(fast.latency * 0.5)  # the prior rate after one batch
    assert slow.gain(operator) == 0  # even halved, the direct conv would not beat Winograd

    # A run where every Winograd config takes 1e-4 s and every direct conv config 3e-4 (replayed costs):
    # each task gets its first batch, then the direct convs stop, and the Winograd ones go on.
    replaced = [t.alternative_of for t in tasks if t.alternative_of]
    replayed = []
    for t in tasks:
        seconds = 3e-4 if any(t is r for r in replaced) else 1e-4
        configs = [t.task.default_config] + [t.task.space.get(i) for i in range(min(len(t.task.space), 40))]
        replayed += [make_record(t.task, c, MeasureResult((seconds,))) for c in configs]
    log = tmp_path / "resnet.jsonl"
    with LocalBuilder() as builder:
        result = tune_model(tasks, log, TuneOptions(48, "grid", batch_size=4, first_batch=2), builder=builder,
                            runner=ReplayRunner(replayed))
    for state in result.tasks:
        if any(state.model_task is t for t in replaced):
            assert state.done and state.trials == 2, state.model_task.task
        if state.model_task.alternative_of:
            assert state.trials > 2
    assert result.latency == pytest.approx(sum(t.calls * 1e-4 for t in tasks if not t.alternative_of))
