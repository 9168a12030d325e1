"""The Builder role: turn candidates into loadable libraries."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from autotune.measure.result import BuildResult, MeasureInput


class Builder(ABC):
    @abstractmethod
    def build(self, inputs: Sequence[MeasureInput]) -> list[BuildResult]:
        """One result per input, in order; failures are results, never exceptions."""

    def close(self) -> None:
        """Release worker processes and temporary files."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
