"""Grid search: every valid config in index order; exhaustive for small spaces."""
from __future__ import annotations

from autotune.tuners.tuner import Tuner
from schedules import Config


class GridTuner(Tuner):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._cursor = 0

    def _propose(self, n: int) -> list[Config]:
        batch = []
        while len(batch) < n and self._cursor < len(self.space):
            index, self._cursor = self._cursor, self._cursor + 1
            if index not in self.visited:
                config = self.space.get(index)
                if self.space.is_valid(config):
                    batch.append(config)
        return batch
