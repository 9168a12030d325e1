"""What goes into a measurement and what comes out of it."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from tvm import tirx

from schedules import Config, Template, Workload
from targets import Device


class ErrorKind(enum.Enum):
    """Why a candidate has no time. Stored by value in the log."""

    NONE = "none"
    COMPILE_ERROR = "compile_error"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    WRONG_ANSWER = "wrong_answer"
    DEVICE_LOST = "device_lost"


@dataclass(frozen=True)
class MeasureInput:
    """One candidate: a template applied to a workload with a config, for a device.

    `function` is the model's PrimFunc the template schedules there (fused epilogue, weights
    to pack once), so the candidate is what the model runs; None: the template's compute.
    """

    template: Template
    workload: Workload
    config: Config
    device: Device
    function: tirx.PrimFunc | None = None


#: A weight the candidate reads packed: (argument position, packed shape, dtype).
PackedArg = tuple[int, tuple[int, ...], str]


@dataclass(frozen=True)
class BuildResult:
    """A built candidate: the path of its shared library, or why there is none."""

    path: str | None
    error: ErrorKind = ErrorKind.NONE
    message: str = ""
    seconds: float = 0.0
    packed: tuple[PackedArg, ...] = ()  # weights whose "prepack_<i>" function the runner calls before timing
    kernels: int = 0  # GPU kernels one call of main launches (0: a CPU module)


@dataclass(frozen=True)
class MeasureResult:
    """Timing of one candidate: per-repeat costs in seconds, or an error."""

    costs: tuple[float, ...] = ()
    error: ErrorKind = ErrorKind.NONE
    message: str = ""
    build_seconds: float = 0.0
    run_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is ErrorKind.NONE

    @property
    def throughput(self) -> float:
        """Calls per second (0 for a failed candidate): what cost models learn."""
        return 1.0 / self.cost if self.ok and self.costs else 0.0

    @property
    def cost(self) -> float:
        """Median cost in seconds (infinite for a failed candidate)."""
        if not self.ok or not self.costs:
            return float("inf")
        ordered = sorted(self.costs)
        return ordered[len(ordered) // 2]


def last_line(text: str, limit: int = 300) -> str:
    """The informative tail of an error text (tracebacks end with the message)."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[-1] if lines else str(text)
    return line if len(line) <= limit else line[: limit - 3] + "..."
