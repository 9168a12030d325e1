"""Apply the best measured config from tuning logs, or the template's default."""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

from tvm import tirx

from autotune.log.jsonl import load_records
from autotune.log.store import MemoryStore
from autotune.task import Task
from schedules import Config


class FallbackWarning(UserWarning):
    """A task had no usable log entry and got its template's default config."""


def best_config(logs: str | os.PathLike | Sequence[str | os.PathLike], task: Task) -> tuple[Config, bool]:
    """The best logged config of `task` and True, or its default config and False."""
    paths = [logs] if isinstance(logs, (str, os.PathLike)) else list(logs)
    best = task.best(MemoryStore(record for path in paths for record in load_records(path)))
    return (best[0], True) if best else (task.default_config, False)


def apply_best(logs: str | os.PathLike | Sequence[str | os.PathLike], task: Task) -> tirx.PrimFunc:
    """`task`'s PrimFunc scheduled with its best logged config (default config, with a warning, if none)."""
    config, tuned = best_config(logs, task)
    if not tuned:
        warnings.warn(f"no tuning record for {task}; using the default config", FallbackWarning, stacklevel=2)
    return task.template.schedule(task.workload, config, task.device)
