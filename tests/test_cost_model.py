"""Cost model: program features from TVM, the XGBoost ranker, the metrics, and model-guided search."""
import random
import statistics

import numpy as np
import pytest
from scipy.stats import spearmanr
from test_tuners import measure, synthetic_cost

from autotune.featurize import TaskFeaturizer
from autotune.task import Task
from autotune.tuners.random_search import RandomTuner
from autotune.tuners.xgb_tuner import XGBTuner
from cost_model import XGBCostModel, spearman, top_k_recall
from cost_model.features import LENGTH


@pytest.fixture(scope="module")
def task():
    return Task.create("matmul", (1024, 1024, 1024))


def test_program_features_have_fixed_length_and_tell_schedules_apart(task):
    configs = task.space.sample(random.Random(0), 6)
    full = TaskFeaturizer(task).full(configs)
    knob_width = len(task.space.vector(configs[0]))
    assert full.shape == (6, knob_width + LENGTH)
    program = full[:, knob_width:]
    assert np.isfinite(program).all() and (program != 0).any(axis=1).all()
    assert len({row.tobytes() for row in program}) == 6  # six schedules, six feature vectors
    again = TaskFeaturizer(task).full(configs[:2])
    assert np.array_equal(again, full[:2])


def test_metrics():
    actual = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert spearman(actual * 3, actual) == pytest.approx(1.0)
    assert spearman(-actual, actual) == pytest.approx(-1.0)
    noisy = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    assert spearman(noisy, actual) == pytest.approx(spearmanr(noisy, actual).statistic)
    assert top_k_recall(np.array([5, 4, 0, 0, 3]), actual, 2) == 0.0
    assert top_k_recall(np.array([0, 0, 1, 9, 8]), actual, 2) == 1.0


@pytest.mark.parametrize("objective", ["rank", "regression"])
def test_model_ranks_held_out_configs_and_survives_save_load(task, objective, tmp_path):
    space = task.space
    configs = space.sample(random.Random(1), 400)
    x = space.vectors([c.index for c in configs])
    y = np.array([1.0 / synthetic_cost(space, c) for c in configs])
    model = XGBCostModel(objective)
    model.fit(x[:300], y[:300])
    predicted = model.predict(x[300:])
    assert spearman(predicted, y[300:]) > 0.8
    model.save(tmp_path / "model.json")
    loaded = XGBCostModel(objective)
    loaded.load(tmp_path / "model.json")
    assert np.allclose(loaded.predict(x[300:]), predicted)


def test_ranking_groups_compare_only_within_a_workload():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(200, 3))
    y = np.exp(x[:, 0])
    groups = np.repeat([0, 1], 100)
    y[groups == 1] *= 1000  # another workload's scale must not swamp the ranking
    model = XGBCostModel("rank")
    model.fit(x, y, groups)
    test = rng.uniform(size=(50, 3))
    assert spearman(model.predict(test), test[:, 0]) > 0.8


def test_model_guided_search_beats_random_on_the_same_budget(task):
    """Averaged over seeds, 6 batches of 16: the xgb tuner's best is better than random's."""
    def best_after(tuner_class, seed):
        tuner = tuner_class(task, seed=seed)
        best = float("inf")
        for _ in range(6):
            batch = tuner.next_batch(16)
            results = measure(task.space, batch)
            tuner.update(batch, results)
            best = min([best] + [r.cost for r in results])
        return best

    xgb = statistics.mean(best_after(XGBTuner, s) for s in range(3))
    rand = statistics.mean(best_after(RandomTuner, s) for s in range(3))
    assert xgb < rand
