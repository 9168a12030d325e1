"""The Tuner role: propose configs to measure and learn from their results."""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from autotune.measure.result import MeasureResult
from schedules import Config

if TYPE_CHECKING:
    from autotune.task import Task


class Tuner(ABC):
    """Proposes batches of configs never proposed or measured before.

    `visited` holds every index proposed or loaded from history, so a config is measured
    at most once per task, across resumed runs too.
    """

    #: Whether `load_transfer` learns from other workloads' results (model-guided tuners).
    transfers: ClassVar[bool] = False

    def __init__(self, task: Task, seed: int = 0):
        self.task = task
        self.space = task.space
        self.rng = random.Random(seed)
        self.visited: set[int] = set()

    @abstractmethod
    def _propose(self, n: int) -> list[Config]:
        """Up to `n` valid configs not in `visited`; fewer only when the space runs out."""

    def next_batch(self, n: int) -> list[Config]:
        batch = self._propose(n)
        self.visited.update(config.index for config in batch)
        return batch

    def update(self, configs: Sequence[Config], results: Sequence[MeasureResult]) -> None:
        """Learn from measured results (model-free tuners only remember what was seen)."""
        self.visited.update(config.index for config in configs)

    def load_history(self, configs: Sequence[Config], results: Sequence[MeasureResult]) -> None:
        """Results from an earlier run of the same task (resume)."""
        self.update(configs, results)

    def load_transfer(self, samples: Sequence[tuple[Task, Sequence[Config], Sequence[MeasureResult]]]) -> None:
        """Results of other workloads of the same template (a task, its configs and results each),
        learned from before the first batch. Only a tuner that `transfers` can use them."""
        raise ValueError(f"tuner {type(self).__name__} does not learn across workloads; use the xgb tuner")
