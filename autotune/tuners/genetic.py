"""Genetic search (AutoTVM's GATuner): evolve configs over the knobs' candidate positions.

A config is a gene: one candidate position per knob. The parents are the latest
`pop_size` measured configs (the current generation) plus the `elite_num` best ever
measured, so a good config is never lost to a bad generation. Parents are drawn in
proportion to their throughput (1/cost), so failures hardly reproduce. A child takes each
knob from one of its two parents (uniform crossover), then each knob is re-drawn with
probability `mutation_prob`, which reaches values that no parent has.
"""
from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from autotune.measure.result import MeasureResult
from autotune.tuners.tuner import Tuner
from schedules import Config

if TYPE_CHECKING:
    from autotune.task import Task

#: Draws per wanted child before giving up on the gene pool: children already visited or
#: invalid are redrawn, but a pool with few distinct recombinations must not spin forever.
_ATTEMPTS_PER_CHILD = 20


class GeneticTuner(Tuner):
    def __init__(self, task: Task, seed: int = 0, pop_size: int = 32, elite_num: int = 3, mutation_prob: float = 0.1):
        super().__init__(task, seed=seed)
        self.pop_size, self.elite_num, self.mutation_prob = pop_size, elite_num, mutation_prob
        #: throughput (1/seconds, 0 for a failure) of every measured config, by index
        self._scores: dict[int, float] = {}
        #: indices of the latest measured configs, oldest first: the current generation
        self._generation: deque[int] = deque(maxlen=pop_size)

    def update(self, configs: Sequence[Config], results: Sequence[MeasureResult]) -> None:
        """Remember every result: `load_history` comes here too, so a resumed run keeps evolving
        the logged population instead of starting over from random samples."""
        super().update(configs, results)
        for config, result in zip(configs, results):
            self._scores[config.index] = result.throughput
            self._generation.append(config.index)

    def _parents(self) -> list[int]:
        elites = heapq.nlargest(self.elite_num, self._scores, key=self._scores.__getitem__)
        return list(dict.fromkeys([*elites, *self._generation]))

    def _propose(self, n: int) -> list[Config]:
        batch: dict[int, Config] = {}
        parents = self._parents()
        if parents:
            genes = self.space.positions(parents).tolist()
            weights = [self._scores[index] for index in parents]
            # A small floor keeps the draw defined when everything failed so far, while a
            # failure next to a working config still almost never becomes a parent.
            floor = 1e-3 * max(weights) or 1.0
            weights = [w + floor for w in weights]
            for _ in range(_ATTEMPTS_PER_CHILD * n):
                if len(batch) == n:
                    break
                mother, father = self.rng.choices(genes, weights, k=2)
                child = [
                    self.rng.randrange(radix) if self.rng.random() < self.mutation_prob else self.rng.choice(pair)
                    for radix, pair in zip(self.space.radices.tolist(), zip(mother, father))
                ]
                index = int(self.space.indices([child])[0])
                if index in batch or index in self.visited:
                    continue
                config = self.space.get(index)
                if self.space.is_valid(config):
                    batch[index] = config
        if len(batch) < n:
            # No results yet, or the pool has few fresh recombinations left: sample the rest.
            fresh = self.space.sample(self.rng, n - len(batch), exclude=lambda i: i in self.visited or i in batch)
            batch.update((config.index, config) for config in fresh)
        return list(batch.values())
