"""Record identity: which log lines are results of the same experiment, and which config they tried.

Every place that groups records (resume, best-config lookup, merge, distill, replay,
transfer, model-eval) uses `RecordKey`, so two machines' results never mix: a "host" log
measured on a Zen 4 and one measured on a Zen 5 have different keys and both survive a
merge.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from schedules import Template, Workload
from targets import Device

#: Target fields that make two devices different machines for a kernel.
TARGET_FIELDS = ("kind", "mtriple", "mcpu")

#: A target's (kind, mtriple, mcpu): the CPU (or GPU kind) a kernel was measured on.
Cpu = tuple[Any, ...]


def cpu_of(target: Mapping[str, Any]) -> Cpu:
    """The part of a TVM target dict that says which machine runs the kernel (not its core count)."""
    return tuple(target.get(name) for name in TARGET_FIELDS)


@dataclass(frozen=True)
class RecordKey:
    """One workload tuned with one template version for one device preset on one CPU."""

    workload: str  # Workload.key: operator, shapes and dtype
    template: str
    template_version: int
    device: str  # the preset's name
    cpu: Cpu  # cpu_of(the target measured on)

    @classmethod
    def of(cls, workload: Workload, template: Template, device: Device) -> RecordKey:
        """The key of results of `template` on `workload` measured on `device` (a Task's or a MeasureInput's)."""
        return cls(workload.key, template.name, template.version, device.name, cpu_of(device.target))

    def with_workload(self, workload: str) -> RecordKey:
        """The same experiment on another workload (transfer learns from those)."""
        return replace(self, workload=workload)


def config_id(config: Mapping[str, Any]) -> str:
    """What makes two lines of one key the same config: the knob values (the index is only a hint)."""
    return json.dumps(config["knobs"], sort_keys=True, separators=(",", ":"))
