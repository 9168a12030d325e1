"""The engine's options as data, the factories that make roles by name, and the CostModel the tuner takes."""
from __future__ import annotations

import numpy as np
import pytest

from autotune.engine import tune_task
from autotune.log.replay import ReplayRunner
from autotune.measure import LocalBuilder, LocalRunner, TimingOptions, create_builder, create_runner
from autotune.measure.result import MeasureResult
from autotune.options import TuneOptions
from autotune.task import Task
from autotune.tuners import create_tuner
from autotune.tuners.xgb_tuner import MIN_TRAINING_RESULTS
from cost_model import CostModel


@pytest.fixture(scope="module")
def task() -> Task:
    return Task.create("matmul", (64, 64, 64))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"trials": 0}, "trials must be positive, got 0"),
        ({"batch_size": -1}, "batch_size must be positive"),
        ({"early_stopping": 0}, "early_stopping must be positive"),
        ({"patience": 0}, "patience must be positive"),
        ({"max_seconds": 0}, "max_seconds must be positive"),
        ({"tuner": "annealing"}, "unknown tuner 'annealing'; known tuners: xgb, random, grid, ga"),
        ({"tuner": "grid", "transfer_log": "other.jsonl"}, "needs the model-guided tuner (xgb); grid does not"),
    ],
)
def test_bad_options_fail_when_made(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TuneOptions(**options)


def test_factories_make_by_name_and_pass_instances_through(task):
    timing = TimingOptions(repeat=1)
    with create_runner("local", timing=timing) as runner, create_builder("local", n_workers=1) as builder:
        assert isinstance(runner, LocalRunner) and runner.timing is timing
        assert isinstance(builder, LocalBuilder) and builder.n_workers == 1
        assert create_runner(runner) is runner and create_builder(builder) is builder
        with pytest.raises(ValueError, match="options timing apply to a runner made by name"):
            create_runner(runner, timing=timing)
    replay = ReplayRunner([])  # the log package's runner: an instance, measurement does not import the log
    assert create_runner(replay) is replay
    with pytest.raises(ValueError, match="unknown runner 'ssh'; known runners: local, rpc"):
        create_runner("ssh")
    assert create_tuner("ga", task, 3, pop_size=4).pop_size == 4


def test_tuners_without_transfer_refuse_it_through_the_interface(task):
    tuner = create_tuner("random", task)
    assert not tuner.transfers and create_tuner("xgb", task).transfers
    with pytest.raises(ValueError, match="does not learn across workloads"):
        tuner.load_transfer([])


class NearestNeighbour(CostModel):
    """A real, tiny learner: the throughput of the closest training row."""

    def __init__(self):
        self.rows: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        self.fits = 0

    @property
    def trained(self) -> bool:
        return self.rows is not None

    def fit(self, features, throughputs, groups=None) -> None:
        self.rows, self.labels, self.fits = np.asarray(features, float), np.asarray(throughputs, float), self.fits + 1

    def predict(self, features) -> np.ndarray:
        if self.rows is None:
            return np.zeros(len(features))
        distances = ((np.asarray(features, float)[:, None, :] - self.rows[None]) ** 2).sum(-1)
        return self.labels[distances.argmin(axis=1)]

    def save(self, path) -> None:
        np.savez(path, rows=self.rows, labels=self.labels)

    def load(self, path) -> None:
        data = np.load(path)
        self.rows, self.labels = data["rows"], data["labels"]


def test_model_guided_tuner_searches_with_any_cost_model(task):
    """The tuner trains the models it is given on every result, and proposes their best-scored configs."""
    knob, program = NearestNeighbour(), NearestNeighbour()
    tuner = create_tuner("xgb", task, 0, knob_model=knob, program_model=program, epsilon=0.0)
    batch = tuner.next_batch(MIN_TRAINING_RESULTS)
    results = [MeasureResult(costs=(1e-3 * (1 + i),)) for i in range(len(batch))]
    tuner.update(batch, results)
    assert knob.fits == program.fits == 1
    assert len(knob.rows) == len(program.rows) == MIN_TRAINING_RESULTS
    assert program.rows.shape[1] > knob.rows.shape[1]  # knobs, then program features
    proposed = tuner.next_batch(4)
    assert len(proposed) == 4 and not {c.index for c in proposed} & {c.index for c in batch}
    scores = program.predict(tuner.featurizer.full(proposed))
    assert list(scores) == sorted(scores, reverse=True)


def test_one_set_up_stops_on_time_and_keeps_caller_instances_open(task, tmp_path):
    log = tmp_path / "m.jsonl"
    with LocalBuilder(n_workers=1) as builder, LocalRunner(TimingOptions(repeat=1, min_repeat_ms=1)) as runner:
        result = tune_task(task, log, TuneOptions(50, "random", batch_size=2, max_seconds=1e-9),
                           builder=builder, runner=runner)
        assert result.measured == 0  # out of time before the first batch
        again = tune_task(task, log, TuneOptions(2, "random", batch_size=2), builder=builder, runner=runner)
        assert again.measured == 2  # the builder and runner outlived the first run
    assert len(log.read_text().splitlines()) == 2
