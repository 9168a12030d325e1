"""Random search: uniform samples of the valid space, without repetition."""
from __future__ import annotations

from autotune.tuners.tuner import Tuner
from schedules import Config


class RandomTuner(Tuner):
    def _propose(self, n: int) -> list[Config]:
        return self.space.sample(self.rng, n, exclude=self.visited.__contains__)
