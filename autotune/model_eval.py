"""How well the cost model ranks a log's configs it was not trained on."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np

from autotune.featurize import TaskFeaturizer
from autotune.log.jsonl import load_records
from autotune.log.spaces import device_on
from autotune.log.store import MemoryStore
from autotune.task import Task
from cost_model import XGBCostModel, spearman, top_k_recall
from schedules import TemplateRegistry, default_registry


@dataclass(frozen=True)
class ModelQuality:
    workload: str
    n_train: int
    n_test: int
    spearman: float
    top_k_recall: float
    k: int


def evaluate_log(
    path: str | os.PathLike,
    train_fraction: float = 0.5,
    objective: str = "regression",
    k: int = 10,
    seed: int = 0,
    registry: TemplateRegistry | None = None,
) -> list[ModelQuality]:
    """Per record key of the log: train on a random `train_fraction` of its configs, rank the rest.

    Each key is evaluated on its own device preset and CPU (a log from another machine too).
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"train fraction must be between 0 and 1, got {train_fraction}")
    registry = registry or default_registry()
    store, qualities = MemoryStore(load_records(path)), []
    for key in store.keys():
        first = store.configs(key)[0]
        device = device_on(key.device, first.target)
        if device is None:
            raise ValueError(f"the log's device {key.device!r} is no preset")
        task = Task(registry.by_name(key.template), first.workload, device)
        pairs = task.history(store)
        if len(pairs) < 4:
            continue
        random.Random(seed).shuffle(pairs)
        features = TaskFeaturizer(task).full([c for c, _ in pairs])
        throughputs = np.array([r.result.throughput for _, r in pairs])
        cut = max(2, int(len(pairs) * train_fraction))
        model = XGBCostModel(objective, seed=seed)
        model.fit(features[:cut], throughputs[:cut])
        predicted = model.predict(features[cut:])
        qualities.append(ModelQuality(
            str(first.workload), cut, len(pairs) - cut,
            spearman(predicted, throughputs[cut:]), top_k_recall(predicted, throughputs[cut:], k), k,
        ))
    return qualities
