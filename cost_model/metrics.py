"""How good a ranking is: what the search needs from a cost model."""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def spearman(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Rank correlation between predicted scores and measured throughputs."""
    if len(predicted) < 2:
        return float("nan")
    return float(spearmanr(predicted, actual).statistic)


def top_k_recall(predicted: np.ndarray, actual: np.ndarray, k: int) -> float:
    """Share of the k truly best candidates that are among the k predicted best."""
    k = min(k, len(actual))
    if k == 0:
        return float("nan")
    best_true = set(np.argsort(-np.asarray(actual))[:k].tolist())
    best_predicted = set(np.argsort(-np.asarray(predicted))[:k].tolist())
    return len(best_true & best_predicted) / k
