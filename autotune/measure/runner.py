"""The Runner role: time built candidates on a device and check their output."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autotune.measure.result import BuildResult, MeasureInput, MeasureResult


@dataclass(frozen=True)
class TimingOptions:
    """How `time_evaluator` times a candidate.

    `number` calls make one repeat (raised until a repeat lasts `min_repeat_ms`);
    the cost of a candidate is the median of `repeat` repeats. A candidate whose first
    call takes `slow_seconds` or more is not repeated. `timeout` bounds one candidate.
    On a GPU, `number` is chosen from the first call's time instead of letting `min_repeat_ms`
    raise it, so that a repeat queues at most `max_launches` kernel launches (default: the GPU
    spec's `max_launches_per_measurement`): see `launch_capped_number`.
    """

    number: int = 1
    repeat: int = 3
    min_repeat_ms: int = 100
    cooldown_ms: int = 0
    slow_seconds: float = 0.25
    timeout: float = 10.0
    max_launches: int | None = None


def launch_capped_number(timing: TimingOptions, first_seconds: float, kernels: int, cap: int) -> int:
    """Calls per repeat on a GPU: enough for `min_repeat_ms` by the first call's time (at least
    `number`), but at most `cap` kernel launches (`kernels` per call), and at least one call."""
    wanted = max(timing.number, math.ceil(timing.min_repeat_ms / 1e3 / max(first_seconds, 1e-6)))
    return max(1, min(wanted, (timing.max_launches or cap) // max(kernels, 1)))


#: Called with (position in the batch, result) as soon as each candidate is measured.
ResultCallback = Callable[[int, MeasureResult], None]


class Runner(ABC):
    @abstractmethod
    def run(
        self, inputs: Sequence[MeasureInput], builds: Sequence[BuildResult], on_result: ResultCallback | None = None
    ) -> list[MeasureResult]:
        """One result per input, in order; a failed build passes its error through.

        `on_result` hears of each result the moment it exists, so that the tuning log
        can keep it even if the batch never finishes (Ctrl-C, kill -9, a crash).
        """

    def close(self) -> None:
        """Release worker processes and sessions."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
