"""Features of a task's configs for the cost model: knob vectors and program features.

Knob vectors come from the space (a table lookup, thousands per millisecond). Program
features need the candidate scheduled (a few ms each), so they are computed only for
the candidates a model-guided tuner considers seriously, and cached by config index.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autotune.measure.candidate import scheduled_function, with_packs_unmarked
from autotune.task import Task
from cost_model.features import LENGTH as PROGRAM_LENGTH
from cost_model.features import ProgramFeaturizer
from schedules import Config


class TaskFeaturizer:
    def __init__(self, task: Task, program: ProgramFeaturizer | None = None):
        self.task = task
        self.program = program or ProgramFeaturizer(task.device.tvm_target)
        self._cache: dict[int, np.ndarray] = {}

    program_length = PROGRAM_LENGTH

    def knobs(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self.task.space.vectors(indices)

    def full(self, configs: Sequence[Config]) -> np.ndarray:
        """Knob vector and program features side by side, one row per config."""
        missing = [c for c in configs if c.index not in self._cache]
        funcs, scheduled = [], []
        for config in missing:
            try:
                funcs.append(with_packs_unmarked(scheduled_function(self.task.measure_input(config))))
                scheduled.append(config.index)
            except Exception:  # noqa: BLE001 - a config that cannot be scheduled has no program
                self._cache[config.index] = np.zeros(PROGRAM_LENGTH, np.float32)
        for index, row in zip(scheduled, self.program(funcs)):
            self._cache[index] = row
        program = np.stack([self._cache[c.index] for c in configs]) if configs else np.zeros((0, PROGRAM_LENGTH))
        return np.hstack([self.knobs([c.index for c in configs]), program])
