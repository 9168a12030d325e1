"""What a tuning run may do, as one typed value shared by single-operator and model tuning."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from autotune.tuners import tuner_class


@dataclass(frozen=True)
class TuneOptions:
    """Budget and search settings of `autotune.tune` and `autotune.tune_model`; checked when made.

    How candidates are built and timed is the builder's and runner's business
    (`autotune.measure.create_runner("local", timing=...)`), not an option here.
    """

    #: New measurements to make; configs already in the log do not count.
    trials: int = 200
    #: Search strategy, a name in `autotune.tuners.TUNERS`.
    tuner: str = "xgb"
    #: Candidates built and measured per round.
    batch_size: int = 16
    seed: int = 0
    #: Stop after this much wall time, whatever trials are left (None: no limit).
    max_seconds: float | None = None
    #: Results of other workloads of the same templates, which a tuner that `transfers` learns from first.
    transfer_log: str | os.PathLike | None = None
    #: Single operator: end the run after this many trials without a better config (None: never).
    early_stopping: int | None = None
    #: Model: each task's first batch (its default config first), before the scheduler compares gains.
    first_batch: int = 8
    #: Model: a task stops after this many of its trials without a better config; the others go on.
    patience: int = 96
    #: Model: at the end, measure each task's best config once more (the log keeps a config's faster
    #: line), within the time budget: a short task's trials all fall within seconds, and a slow spell
    #: of a shared machine then stands for its best config's speed.
    remeasure_best: bool = True

    def __post_init__(self) -> None:
        for name in ("trials", "batch_size", "first_batch", "patience", "early_stopping"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {self.max_seconds:g}")
        transfers = tuner_class(self.tuner).transfers  # an unknown name fails here, naming the known ones
        if self.transfer_log is not None and not transfers:
            raise ValueError(f"a transfer log needs the model-guided tuner (xgb); {self.tuner} does not learn across workloads")

    def out_of_time(self, start: float, reserve: float = 0.0) -> bool:
        """Whether a run that began at `start` (time.perf_counter) has used its `max_seconds`, but for `reserve`."""
        return self.max_seconds is not None and time.perf_counter() - start + reserve >= self.max_seconds
