"""The CostModel role: learn from measured candidates, then score unmeasured ones.

As MetaSchedule's `CostModel` (`update/predict/save/load`) and AutoTVM's (`fit/predict`):
the model-guided tuner takes any implementation, so another learner (or a fixed
analytical model) can replace XGBoost without touching the search.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod

import numpy as np


class CostModel(ABC):
    """Scores feature rows: higher is predicted faster. Rows of one group are one workload."""

    @property
    @abstractmethod
    def trained(self) -> bool:
        """Whether `predict` says anything yet (before the first fit it scores every row 0)."""

    @abstractmethod
    def fit(self, features: np.ndarray, throughputs: np.ndarray, groups: np.ndarray | None = None) -> None:
        """Train from scratch on measured candidates (throughput 0 for failures)."""

    @abstractmethod
    def predict(self, features: np.ndarray) -> np.ndarray:
        """A score per row."""

    @abstractmethod
    def save(self, path: str | os.PathLike) -> None:
        """Write the trained model to `path`."""

    @abstractmethod
    def load(self, path: str | os.PathLike) -> None:
        """Replace this model by the one saved at `path`."""
