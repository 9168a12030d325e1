"""The tuning log: corrupt lines skipped, torn tails repaired, resume never re-measures."""
import json

import numpy as np
import pytest
import tvm

import autotune
from autotune.apply import FallbackWarning
from autotune.engine import tune_task
from autotune.measure import LocalBuilder, LocalRunner, TimingOptions
from autotune.log.jsonl import JsonLinesStore, LogWarning, load_records
from autotune.options import TuneOptions


@pytest.fixture(scope="module")
def measure():
    with LocalBuilder(n_workers=2) as builder, LocalRunner(TimingOptions(repeat=1, min_repeat_ms=5)) as runner:
        yield builder, runner


@pytest.fixture
def task(host):
    return autotune.Task.create("matmul", (48, 64, 32), device=host)


def test_resume_measures_only_new_configs(task, measure, tmp_path):
    log = tmp_path / "run.jsonl"
    builder, runner = measure
    first = tune_task(task, log, TuneOptions(6, "random", batch_size=4), builder=builder, runner=runner)
    second = tune_task(task, log, TuneOptions(6, "random", batch_size=4), builder=builder, runner=runner)
    assert (first.measured, second.measured, second.resumed) == (6, 6, 6)
    indices = [json.loads(line)["config"]["index"] for line in log.read_text().splitlines()]
    assert len(indices) == 12 and len(set(indices)) == 12


def test_corrupt_and_torn_lines_are_skipped_and_appending_goes_on(task, measure, tmp_path):
    log = tmp_path / "run.jsonl"
    builder, runner = measure
    tune_task(task, log, TuneOptions(4, "grid", batch_size=4), builder=builder, runner=runner)
    good = log.read_text().splitlines()
    log.write_text("\n".join([good[0], "{not json", '{"v": 1}', good[1], good[2], good[3][: len(good[3]) // 2]]))
    with pytest.warns(LogWarning, match="skipped 3 corrupt line"):
        assert len(load_records(log)) == 3
    with pytest.warns(LogWarning):
        result = tune_task(task, log, TuneOptions(2, "grid", batch_size=2), builder=builder, runner=runner)
    assert result.resumed == 3 and result.measured == 2
    with pytest.warns(LogWarning, match="skipped 3"):
        records = load_records(log)
    assert len(records) == 5  # the torn line stayed torn; the new lines are whole


def test_record_round_trip(task, measure, tmp_path):
    builder, runner = measure
    result = tune_task(task, None, TuneOptions(2, "random"), builder=builder, runner=runner)
    path = tmp_path / "copy.jsonl"
    with JsonLinesStore(path) as writer:
        writer.extend(result.records)
    loaded = load_records(path)
    assert [r.to_json() for r in loaded] == [r.to_json() for r in result.records]
    line = json.loads(path.read_text().splitlines()[0])
    assert {"v", "key", "workload", "device", "target", "template", "config", "result", "timestamp", "versions"} <= set(line)
    assert line["versions"]["tvm"] == tvm.__version__


def test_apply_best_uses_the_log_or_falls_back_with_a_warning(task, measure, tmp_path):
    log = tmp_path / "run.jsonl"
    builder, runner = measure
    result = tune_task(task, log, TuneOptions(5, "random"), builder=builder, runner=runner)
    config, tuned = autotune.best_config(log, task)
    assert tuned and config == result.best_config
    func = autotune.apply_best(log, task)
    ex = tvm.compile(func, target=task.device.tvm_target)
    inputs = task.template.make_inputs(task.workload, np.random.default_rng(2))
    dev = tvm.cpu()
    out = tvm.runtime.tensor(np.zeros((48, 64), "float32"), dev)
    ex["main"](*[tvm.runtime.tensor(x, dev) for x in inputs], out)
    np.testing.assert_allclose(out.numpy(), inputs[0] @ inputs[1], rtol=1e-4, atol=1e-4)

    other = autotune.Task.create("dense", (48, 64, 32), device=task.device)
    with pytest.warns(FallbackWarning, match="default config"):
        autotune.apply_best(log, other)


def test_records_of_another_cpu_under_the_same_device_name_are_not_this_tasks(task):
    """A "host" log from another machine (other mcpu) must not be applied here."""
    import dataclasses

    from autotune.engine import make_record
    from autotune.measure import MeasureResult

    here = make_record(task, task.default_config, MeasureResult((2e-3,)))
    elsewhere = dataclasses.replace(here, target={**here.target, "mcpu": "other-cpu"}, costs=(1e-3,))
    assert task.matches(here) and not task.matches(elsewhere)
    assert task.best([here, elsewhere])[1] is here
