"""Search strategies, one per module, created by name through a lazy table."""
from __future__ import annotations

import importlib

from typing import TYPE_CHECKING

from autotune.tuners.tuner import Tuner

if TYPE_CHECKING:
    from autotune.task import Task

#: tuner name -> (module, class); imported on first use so an optional dependency
#: breaks only the tuner that needs it.
TUNERS: dict[str, tuple[str, str]] = {
    "xgb": ("autotune.tuners.xgb_tuner", "XGBTuner"),
    "random": ("autotune.tuners.random_search", "RandomTuner"),
    "grid": ("autotune.tuners.grid_search", "GridTuner"),
    "ga": ("autotune.tuners.genetic", "GeneticTuner"),
}


def create_tuner(tuner: str | Tuner, task: Task, seed: int = 0) -> Tuner:
    """A tuner instance from its name (or the instance itself)."""
    if isinstance(tuner, Tuner):
        return tuner
    if tuner not in TUNERS:
        raise ValueError(f"unknown tuner {tuner!r}; known tuners: {', '.join(TUNERS)}")
    module, name = TUNERS[tuner]
    return getattr(importlib.import_module(module), name)(task, seed=seed)


__all__ = ["TUNERS", "Tuner", "create_tuner"]
