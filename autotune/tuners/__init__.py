"""Search strategies, one per module, created by name through a lazy table."""
from __future__ import annotations

from typing import TYPE_CHECKING

from autotune.factory import create, implementation
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


def tuner_class(name: str) -> type[Tuner]:
    """The class of the tuner called `name` (imports its module)."""
    return implementation(Tuner, TUNERS, name)


def create_tuner(tuner: str | Tuner, task: Task, seed: int = 0, **options) -> Tuner:
    """A tuner for `task` from its name and options (the tuner's constructor keywords), or the instance itself."""
    return create(Tuner, TUNERS, tuner, task, seed, **options)


__all__ = ["TUNERS", "Tuner", "create_tuner", "tuner_class"]
