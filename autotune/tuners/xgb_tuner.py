"""Model-guided search: an XGBoost ranking model scores configs, simulated annealing finds the best-scored.

Each round (after a first random batch):
1. the knob model (config vectors -> rank) and the program model (config vectors and
   program features of the scheduled TIR -> rank) are retrained on every result so far,
   plus results of other workloads of the same template when given (transfer);
2. `n_chains` annealing chains, kept from round to round, walk the space scored by the
   knob model: thousands of candidates per round, each a table lookup. Each round the
   worst-scored quarter of the chains restarts from the best configs measured so far,
   so the search keeps exploiting what was found;
3. the best `rerank * n` unvisited candidates found are re-ranked by the program model;
4. the top ones form the batch, but for an `epsilon` share of uniformly random configs
   that keeps the model honest where it has seen nothing.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autotune.featurize import TaskFeaturizer
from autotune.measure.result import MeasureResult
from autotune.task import Task
from autotune.tuners.tuner import Tuner
from cost_model import CostModel, XGBCostModel
from schedules import Config

#: Fewer correct results than this and the model is not trusted yet: sample randomly.
MIN_TRAINING_RESULTS = 8


class XGBTuner(Tuner):
    """Model-guided search; `knob_model` and `program_model` are any CostModel (XGBoost with `objective` by default)."""

    transfers = True

    def __init__(
        self,
        task: Task,
        seed: int = 0,
        objective: str = "regression",
        n_chains: int = 64,
        n_steps: int = 100,
        epsilon: float = 0.1,
        rerank: int = 4,
        knob_model: CostModel | None = None,
        program_model: CostModel | None = None,
    ):
        super().__init__(task, seed)
        self.np_rng = np.random.default_rng(seed)
        self.n_chains, self.n_steps, self.epsilon, self.rerank = n_chains, n_steps, epsilon, rerank
        self.knob_model = knob_model or XGBCostModel(objective, seed=seed)
        self.program_model = program_model or XGBCostModel(objective, seed=seed)
        self.featurizer = TaskFeaturizer(task)
        self._knob_rows: list[np.ndarray] = []
        self._full_rows: list[np.ndarray] = []
        self._throughputs: list[float] = []
        self._groups: list[int] = []
        self._n_ok = 0
        self._chains: np.ndarray | None = None
        self._measured: dict[int, float] = {}  # this task's throughput by config index

    # -- learning ------------------------------------------------------------------------
    def update(self, configs: Sequence[Config], results: Sequence[MeasureResult]) -> None:
        super().update(configs, results)
        self._measured.update((c.index, r.throughput) for c, r in zip(configs, results))
        self._add(self.featurizer, configs, results, group=0)
        self._n_ok += sum(r.ok for r in results)
        self._retrain()

    def load_transfer(self, samples: Sequence[tuple[Task, Sequence[Config], Sequence[MeasureResult]]]) -> None:
        """The models start with the ranking of other workloads of this template."""
        for group, (task, configs, results) in enumerate(samples, start=1):
            self._add(TaskFeaturizer(task, self.featurizer.program), configs, results, group)
            self._n_ok += sum(r.ok for r in results)
        self._retrain()

    def _add(self, featurizer: TaskFeaturizer, configs: Sequence[Config], results: Sequence[MeasureResult], group: int) -> None:
        if not configs:
            return
        full = featurizer.full(configs)
        knob_width = full.shape[1] - self.featurizer.program_length
        self._knob_rows.extend(full[:, :knob_width])
        self._full_rows.extend(full)
        self._throughputs.extend(r.throughput for r in results)
        self._groups.extend([group] * len(results))

    def _retrain(self) -> None:
        if self._n_ok < MIN_TRAINING_RESULTS:
            return
        y, groups = np.array(self._throughputs), np.array(self._groups)
        self.knob_model.fit(np.stack(self._knob_rows), y, groups)
        self.program_model.fit(np.stack(self._full_rows), y, groups)

    # -- proposing -----------------------------------------------------------------------
    def _propose(self, n: int) -> list[Config]:
        batch: list[Config] = []
        if self.knob_model.trained:
            n_model = n - int(round(self.epsilon * n))
            finalists = self._anneal(self.rerank * n_model)
            if finalists:
                scores = self.program_model.predict(self.featurizer.full(finalists))
                batch = [finalists[i] for i in np.argsort(-scores)[:n_model]]
        chosen = {c.index for c in batch}
        batch += self.space.sample(self.rng, n - len(batch), exclude=lambda i: i in self.visited or i in chosen)
        return batch

    def _anneal(self, n_out: int) -> list[Config]:
        """The `n_out` best-scored unvisited valid configs met by the annealing chains."""
        space = self.space
        if self._chains is None:
            self._chains = space.positions([c.index for c in space.sample(self.rng, self.n_chains)])
        positions = self._chains
        scores = self.knob_model.predict(space.vectors(space.indices(positions)))
        best = sorted(self._measured, key=self._measured.__getitem__, reverse=True)[: len(positions) // 4]
        worst = np.argsort(scores)[: len(best)]
        positions[worst] = space.positions(best)
        scores[worst] = self.knob_model.predict(space.vectors(best))
        scale = float(np.std(scores)) or 1.0
        pool = {int(i): s for i, s in zip(space.indices(positions), scores) if i not in self.visited}
        rows = np.arange(len(positions))
        for step in range(self.n_steps):
            temperature = scale * (1.0 - step / self.n_steps) + 1e-9
            proposal = positions.copy()
            knobs = self.np_rng.integers(0, positions.shape[1], len(positions))
            proposal[rows, knobs] = self.np_rng.integers(0, space.radices[knobs])
            indices = space.indices(proposal)
            valid = np.array([space.is_valid(space.get(int(i))) for i in indices])
            new_scores = self.knob_model.predict(space.vectors(indices))
            gain = np.where(valid, new_scores - scores, -np.inf)
            accept = valid & ((gain >= 0) | (self.np_rng.random(len(gain)) < np.exp(np.minimum(gain, 0) / temperature)))
            positions[accept], scores[accept] = proposal[accept], new_scores[accept]
            for index, score in zip(indices[accept], new_scores[accept]):
                if int(index) not in self.visited:
                    pool[int(index)] = score
        best = sorted(pool, key=pool.__getitem__, reverse=True)[:n_out]
        return [space.get(i) for i in best]
