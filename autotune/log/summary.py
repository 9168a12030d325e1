"""`autotune log summary`: per record key, trials, errors and the best config."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autotune.log.key import RecordKey
from autotune.log.record import Record
from autotune.log.text import short, table


@dataclass
class WorkloadSummary:
    """What a log holds for one record key: one workload, template version, device and CPU."""

    workload: str  # readable form, e.g. matmul(K=64, M=64, N=64, dtype=float32)
    key: str
    device: str
    template: str
    template_version: int
    trials: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # ErrorKind value -> lines
    best_cost: float | None = None  # seconds (median of the best correct config)
    best_knobs: dict[str, Any] | None = None
    cpu: str = "-"  # the target's mcpu: two machines under one preset name are two rows

    def __str__(self) -> str:
        return " | ".join(_summary_row(self))


_SUMMARY_HEADER = ("workload", "device", "cpu", "template", "trials", "errors", "best ms", "best config")


def _summary_row(s: WorkloadSummary) -> tuple[str, ...]:
    errors = ", ".join(f"{kind} {n}" for kind, n in sorted(s.errors.items())) or "-"
    best = f"{s.best_cost * 1e3:.4g}" if s.best_cost is not None else "-"
    knobs = ", ".join(f"{k}={short(v)}" for k, v in s.best_knobs.items()) if s.best_knobs else "-"
    return (s.workload, s.device, s.cpu, f"{s.template} v{s.template_version}", str(s.trials), errors, best, knobs)


def summarize(records: Iterable[Record]) -> list[WorkloadSummary]:
    """Per record key (workload, template version, device, CPU): trials, errors, best cost and knobs, first seen first."""
    summaries: dict[RecordKey, WorkloadSummary] = {}
    for record in records:
        summary = summaries.get(record.key)
        if summary is None:
            summary = summaries[record.key] = WorkloadSummary(
                str(record.workload), record.workload.key, record.device, record.template, record.template_version,
                cpu=str(record.target.get("mcpu", "-")),
            )
        summary.trials += 1
        if not record.ok:
            summary.errors[record.error.value] = summary.errors.get(record.error.value, 0) + 1
        elif math.isfinite(record.cost) and (summary.best_cost is None or record.cost < summary.best_cost):
            summary.best_cost, summary.best_knobs = record.cost, dict(record.config["knobs"])
    return list(summaries.values())


def summary_lines(summaries: Sequence[WorkloadSummary]) -> list[str]:
    """The summaries as an aligned text table (what `autotune log summary` prints)."""
    return table(_SUMMARY_HEADER, [_summary_row(s) for s in summaries])
