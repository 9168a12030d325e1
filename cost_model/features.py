"""Program features of scheduled TIR, from TVM's own per-store feature extractor.

MetaSchedule's `PerStoreFeature` gives one 164-long row per buffer store of a scheduled
PrimFunc (loop structure, vectorization, parallelism, memory access and reuse, ...).
Candidates have different numbers of stores, so each is reduced to a fixed length:
the mean and the max over its stores, and log2 of the store count.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tvm
from tvm import tirx
from tvm.s_tir import meta_schedule as ms

from targets.tvm_compat import bare_tune_context

N_STORE_FEATURES = 164
LENGTH = 2 * N_STORE_FEATURES + 1


class ProgramFeaturizer:
    """Featurizes scheduled PrimFuncs for one target; reuse it, it keeps the tuning context."""

    def __init__(self, target: tvm.target.Target):
        self._extractor = ms.feature_extractor.PerStoreFeature()
        self._context = bare_tune_context(target)

    def __call__(self, funcs: Sequence[tirx.PrimFunc]) -> np.ndarray:
        """(len(funcs), LENGTH) float32 matrix."""
        if not funcs:
            return np.zeros((0, LENGTH), np.float32)
        candidates = [ms.MeasureCandidate(tvm.s_tir.Schedule(func), []) for func in funcs]
        per_store = self._extractor.extract_from(self._context, candidates)
        return np.stack([reduce_stores(stores.numpy()) for stores in per_store])


def reduce_stores(stores: np.ndarray) -> np.ndarray:
    """One candidate's (n_stores, 164) features as a fixed-length vector."""
    if stores.shape[0] == 0:
        return np.zeros(LENGTH, np.float32)
    return np.concatenate([stores.mean(axis=0), stores.max(axis=0), [np.log2(stores.shape[0])]]).astype(np.float32)
