"""Measurement: build candidates in worker processes, time and check them on a device."""
from autotune.measure.builder import Builder
from autotune.measure.local_builder import LocalBuilder
from autotune.measure.local_runner import LocalRunner
from autotune.measure.result import BuildResult, ErrorKind, MeasureInput, MeasureResult
from autotune.measure.runner import Runner, TimingOptions

__all__ = [
    "BuildResult", "Builder", "ErrorKind", "LocalBuilder", "LocalRunner", "MeasureInput",
    "MeasureResult", "Runner", "TimingOptions",
]
