"""Search strategies on real config spaces, driven by a synthetic objective.

Nothing is compiled or run: `synthetic_cost` stands in for a measurement, so these tests
check the search logic (validity, no repeats, resuming, the genetic operators, whether the
GA actually searches) in a few seconds. The objective says nothing about real performance.
"""
from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from autotune.measure.result import ErrorKind, MeasureResult
from autotune.task import Task
from autotune.tuners import TUNERS, create_tuner
from schedules import Config, ConfigSpace
from schedules.space import SplitKnob

SEARCH_TUNERS = list(TUNERS)


def synthetic_cost(space: ConfigSpace, config: Config) -> float:
    """A made-up cost in seconds, smooth in the knob values (for testing search logic only).

    Split knobs pay the squared distance of each inner factor's log2 from 2 (factor 4);
    every other knob pays 1 unless it is on its last candidate. 1 ms times e^(penalty / 4):
    close configs cost about the same, so a search that exploits good configs gains.
    """
    penalty = 0.0
    for knob in space.knobs.values():
        value = config[knob.name]
        if isinstance(knob, SplitKnob):
            penalty += sum((math.log2(factor) - 2) ** 2 for factor in value[1:])
        else:
            penalty += knob.index(value) != len(knob) - 1
    return 1e-3 * math.exp(penalty / 4)


def measure(space: ConfigSpace, configs: list[Config], fail_every: int = 0) -> list[MeasureResult]:
    """Synthetic results; with `fail_every`, every such config (by index) fails instead."""
    return [
        MeasureResult(error=ErrorKind.RUNTIME_ERROR, message="synthetic failure")
        if fail_every and config.index % fail_every == 0
        else MeasureResult(costs=(synthetic_cost(space, config),))
        for config in configs
    ]


def differing_knobs(a: Config, b: Config) -> int:
    return sum(a[name] != b[name] for name in a)


@pytest.fixture(scope="module")
def task() -> Task:
    return Task.create("matmul", (1024, 1024, 1024))


@pytest.fixture(scope="module")
def small_task() -> Task:
    return Task.create("matmul", (4, 4, 4))


# -- every search tuner --------------------------------------------------------------------
@pytest.mark.parametrize("name", SEARCH_TUNERS)
def test_batches_are_valid_distinct_and_new_also_after_resuming(task, name):
    space, seen, history, results = task.space, set(), [], []
    tuner = create_tuner(name, task)
    for _ in range(5):
        batch = tuner.next_batch(16)
        indices = [config.index for config in batch]
        assert len(batch) == 16
        assert all(space.is_valid(config) for config in batch)
        assert len(set(indices)) == len(indices)
        assert seen.isdisjoint(indices)
        seen.update(indices)
        history += batch
        results += measure(space, batch, fail_every=7)
        tuner.update(batch, results[-len(batch):])

    # Same seed: without its history, a resumed tuner would propose the same configs again.
    resumed = create_tuner(name, task)
    resumed.load_history(history, results)
    for _ in range(3):
        batch = resumed.next_batch(16)
        indices = [config.index for config in batch]
        assert len(batch) == 16 and len(set(indices)) == 16
        assert all(space.is_valid(config) for config in batch)
        assert seen.isdisjoint(indices)
        seen.update(indices)
        resumed.update(batch, measure(space, batch))


@pytest.mark.parametrize("name", SEARCH_TUNERS)
def test_small_space_is_exhausted_exactly_once(small_task, name):
    space = small_task.space
    assert len(space) == 72  # matmul 4x4x4: tile_i 6 x tile_j 1 x tile_k 3 x order 2 x unroll 2
    valid = [i for i in range(len(space)) if space.is_valid(space.get(i))]
    tuner, proposed = create_tuner(name, small_task), []
    for _ in range(len(space)):  # at least one new config per round, or the loop ends
        batch = tuner.next_batch(10)
        if not batch:
            break
        proposed += [config.index for config in batch]
        tuner.update(batch, measure(space, batch))
    assert sorted(proposed) == valid  # each valid config once, nothing else
    if name == "grid":
        assert proposed == valid  # in index order
    assert tuner.next_batch(10) == []


# -- the genetic tuner -------------------------------------------------------------------------
def best_per_generation(name: str, task: Task, seed: int, generations: int = 10, size: int = 32) -> list[float]:
    """Best cost found so far after each generation (batch of `size`)."""
    tuner, best, curve = create_tuner(name, task, seed), math.inf, []
    for _ in range(generations):
        batch = tuner.next_batch(size)
        results = measure(task.space, batch)
        tuner.update(batch, results)
        best = min(best, *(result.cost for result in results))
        curve.append(best)
    return curve


def test_ga_beats_its_first_generation_and_random_search(task):
    ga = [best_per_generation("ga", task, seed) for seed in range(3)]
    rand = [best_per_generation("random", task, seed) for seed in range(3)]
    for curve in ga:
        assert curve[-1] < curve[0]  # the first generation is random samples
    assert statistics.mean(c[-1] for c in ga) < statistics.mean(c[-1] for c in rand)


def distant_parents(space: ConfigSpace, wanted: int, seed: int = 1) -> tuple[Config, Config, set[int]]:
    """Two valid configs that differ in every knob, and the indices of at least `wanted`
    valid children that take each knob from one of them (the parents excluded)."""
    rng = random.Random(seed)
    for mother, father in zip(space.sample(rng, 200), space.sample(rng, 200)):
        if differing_knobs(mother, father) < len(space.knobs):
            continue
        children = {
            space.index_of(dict(zip(space.knobs, values)))
            for values in itertools.product(*((mother[k], father[k]) for k in space.knobs))
        } - {mother.index, father.index}
        children = {i for i in children if space.is_valid(space.get(i))}
        if len(children) >= wanted:
            return mother, father, children
    raise AssertionError("no suitable pair of parents")


def failed(configs: list[Config]) -> list[MeasureResult]:
    return [MeasureResult(error=ErrorKind.COMPILE_ERROR) for _ in configs]


def test_crossover_takes_every_knob_from_a_parent(task):
    mother, father, children = distant_parents(task.space, 8)
    tuner = create_tuner("ga", task, mutation_prob=0.0)
    tuner.update([mother, father], measure(task.space, [mother, father]))
    batch = tuner.next_batch(8)
    assert len(batch) == 8
    assert {config.index for config in batch} <= children


def test_failed_configs_hardly_become_parents(task):
    good, bad, children = distant_parents(task.space, 8)
    tuner = create_tuner("ga", task, mutation_prob=0.0)
    tuner.update([good, bad], measure(task.space, [good]) + failed([bad]))
    # Crossing `good` with itself gives nothing new, so the batch is mostly random samples;
    # were `bad` drawn as often as `good`, it would be all their children.
    crossed = [config for config in tuner.next_batch(8) if config.index in children]
    assert len(crossed) <= 2


def test_elites_stay_parents_after_leaving_the_generation(task):
    space = task.space
    mother, father, children = distant_parents(space, 8)
    tuner = create_tuner("ga", task, pop_size=4, elite_num=2, mutation_prob=0.0)
    tuner.update([mother, father], measure(space, [mother, father]))
    newer = space.sample(random.Random(5), 4, exclude=lambda i: i in (mother.index, father.index))
    tuner.update(newer, failed(newer))  # a whole generation of failures pushes both out
    batch = tuner.next_batch(8)
    assert sum(config.index in children for config in batch) >= 6


def test_mutation_changes_few_knobs_of_the_parent(task):
    space = task.space
    parent = space.sample(random.Random(2), 1)[0]
    tuner = create_tuner("ga", task, mutation_prob=0.1)
    tuner.update([parent], measure(space, [parent]))
    batch = tuner.next_batch(16)
    assert len(batch) == 16
    distances = [differing_knobs(parent, child) for child in batch]
    assert min(distances) >= 1  # the parent itself was already measured
    random_distances = [differing_knobs(parent, other) for other in space.sample(random.Random(3), 16)]
    assert statistics.mean(distances) <= 1.5 < statistics.mean(random_distances)


def test_ga_fills_from_random_samples_when_the_gene_pool_is_spent(task):
    space = task.space
    parent = space.sample(random.Random(2), 1)[0]
    tuner = create_tuner("ga", task, mutation_prob=0.0)  # one parent, no mutation: no new child
    tuner.update([parent], measure(space, [parent]))
    batch = tuner.next_batch(8)
    assert len(batch) == 8 and len({config.index for config in batch}) == 8
    assert all(space.is_valid(config) and config.index != parent.index for config in batch)


def test_ga_keeps_proposing_when_everything_failed(task):
    tuner = create_tuner("ga", task)
    batch = tuner.next_batch(16)
    tuner.update(batch, measure(task.space, batch, fail_every=1))
    assert len(tuner.next_batch(16)) == 16


def test_resumed_ga_evolves_the_logged_population(task):
    space, tuner, history, results = task.space, create_tuner("ga", task), [], []
    for _ in range(5):
        batch = tuner.next_batch(32)
        history += batch
        results += measure(space, batch)
        tuner.update(batch, results[-32:])

    resumed, fresh = create_tuner("ga", task, seed=1), create_tuner("ga", task, seed=1)
    resumed.load_history(history, results)

    def median_cost(batch: list[Config]) -> float:
        return statistics.median(synthetic_cost(space, config) for config in batch)

    # A fresh GA starts from random samples; the resumed one breeds from the logged configs.
    assert median_cost(resumed.next_batch(32)) < median_cost(fresh.next_batch(32))
