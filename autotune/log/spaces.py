"""The device and config space a record was measured in, to check its config against today's templates."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from functools import cache
from typing import Any

from autotune.log.key import cpu_of
from autotune.log.record import Record
from schedules import ConfigSpace, Template
from targets import Device, get_device


def device_on(name: str, target: Mapping[str, Any]) -> Device | None:
    """The preset `name` on `target` (None: no such preset).

    The given target wins over the preset's because the space depends on it ("host" on an
    AVX-512 machine has wider vectors than "host" on an AVX2 one).
    """
    return _device_on(name, json.dumps(target, sort_keys=True, default=str))


@cache
def _device_on(name: str, target_json: str) -> Device | None:
    try:
        device = get_device(name)
    except ValueError:
        return None
    target = json.loads(target_json)
    if cpu_of(device.target) == cpu_of(target):
        return device
    own = replace(device, target=target)
    try:
        own.tvm_target  # noqa: B018 - TVM refuses a malformed target with its own error types
    except Exception:  # noqa: BLE001 - then the preset's target is the best guess
        return device
    return own


class Spaces:
    """Current-template spaces of records' workloads, built once per workload and device."""

    def __init__(self, device: Device | None):
        self.device = device
        self._spaces: dict[tuple[str, str, str, str], ConfigSpace] = {}

    def device_of(self, record: Record) -> Device | None:
        """The given device, else the record's preset on the record's own target (None: unknown preset)."""
        return self.device if self.device is not None else device_on(record.device, record.target)

    def space(self, template: Template, record: Record, device: Device) -> ConfigSpace:
        key = (template.name, record.workload.key, device.name, json.dumps(device.target, sort_keys=True, default=str))
        if key not in self._spaces:
            if record.workload.op != template.op:
                raise ValueError(f"workload {record.workload.op!r} is not a {template.op!r} workload")
            self._spaces[key] = template.space(record.workload, device)
        return self._spaces[key]


def reindexed(space: ConfigSpace, knobs: dict[str, Any]) -> dict[str, Any]:
    """The config JSON (index and knobs) of these knob values in `space`; ValueError when not a valid point."""
    config = space.from_json({"knobs": knobs})
    if not space.is_valid(config):
        raise ValueError("violates the space's constraints")
    return space.to_json(config)
