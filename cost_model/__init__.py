"""Learned cost models that rank candidate configs (features in, scores out).

Works on numbers and TVM objects only: it imports neither `schedules` nor `autotune`
(TVM internals it needs come from `targets.tvm_compat`).
"""
from cost_model.base import CostModel
from cost_model.features import ProgramFeaturizer
from cost_model.metrics import spearman, top_k_recall
from cost_model.xgb import XGBCostModel

__all__ = ["CostModel", "ProgramFeaturizer", "XGBCostModel", "spearman", "top_k_recall"]
