"""Measurement: build candidates in worker processes, time and check them on a device."""
from __future__ import annotations

from autotune.factory import create
from autotune.measure.builder import Builder
from autotune.measure.local_builder import LocalBuilder
from autotune.measure.local_runner import LocalRunner
from autotune.measure.result import BuildResult, ErrorKind, MeasureInput, MeasureResult
from autotune.measure.runner import Runner, TimingOptions

#: builder name -> (module, class)
BUILDERS: dict[str, tuple[str, str]] = {"local": ("autotune.measure.local_builder", "LocalBuilder")}
#: runner name -> (module, class): this machine, devices behind an RPC tracker. A log replayed
#: (`autotune.log.replay.ReplayRunner`) is passed as an instance: the log is above measurement.
RUNNERS: dict[str, tuple[str, str]] = {
    "local": ("autotune.measure.local_runner", "LocalRunner"),
    "rpc": ("autotune.measure.rpc_runner", "RPCRunner"),
}


def create_builder(kind: str | Builder = "local", **options) -> Builder:
    """A builder from its name and constructor options (`n_workers`, `timeout`, ...), or the instance itself."""
    return create(Builder, BUILDERS, kind, **options)


def create_runner(kind: str | Runner = "local", **options) -> Runner:
    """A runner from its name and constructor options, or the instance itself (a `ReplayRunner`, say).

    "local": `timing`, `n_threads`; "rpc": `tracker`, `timing`, `device_wait`, ...
    """
    return create(Runner, RUNNERS, kind, **options)


__all__ = [
    "BUILDERS", "BuildResult", "Builder", "ErrorKind", "LocalBuilder", "LocalRunner", "MeasureInput",
    "MeasureResult", "RUNNERS", "Runner", "TimingOptions", "create_builder", "create_runner",
]
