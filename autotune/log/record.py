"""One line of the tuning log: a measured config, with what it was measured for and on.

A line is checked against the JSON Schema of its version (`autotune/log/schema/`) before
it becomes a `Record`, so a wrong type is reported, never coerced (a costs string "12"
must not become (1.0, 2.0), nor a version "2" become 2).
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from autotune.log import schema
from autotune.log.key import RecordKey, cpu_of
from autotune.measure.result import ErrorKind, MeasureResult
from schedules import Workload

SCHEMA_VERSION = 1


class LineError(ValueError):
    """A log line that is not a record of the schema it names; the message says why in one line."""


class OtherSchemaError(LineError):
    """A line of another schema version than this code reads."""


@dataclass(frozen=True)
class Record:
    """One measured config, as stored in the log."""

    workload: Workload
    device: str
    target: dict[str, Any]
    template: str
    template_version: int
    config: dict[str, Any]  # {"index": int, "knobs": {name: value}}
    costs: tuple[float, ...] = ()
    error: ErrorKind = ErrorKind.NONE
    message: str = ""
    build_seconds: float = 0.0
    run_seconds: float = 0.0
    timestamp: float = field(default_factory=time.time)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is ErrorKind.NONE

    @property
    def cost(self) -> float:
        return self.result.cost

    @property
    def result(self) -> MeasureResult:
        return MeasureResult(self.costs, self.error, self.message, self.build_seconds, self.run_seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "key": self.workload.key,
            "workload": self.workload.to_json(),
            "device": self.device,
            "target": self.target,
            "template": {"name": self.template, "version": self.template_version},
            "config": self.config,
            "result": {
                "costs": list(self.costs),
                "error": self.error.value,
                "message": self.message,
                "build_s": round(self.build_seconds, 4),
                "run_s": round(self.run_seconds, 4),
            },
            "timestamp": round(self.timestamp, 3),
            "versions": self.versions,
        }

    @cached_property
    def key(self) -> RecordKey:
        """Which results this one competes with (see `RecordKey`)."""
        return RecordKey(self.workload.key, self.template, self.template_version, self.device, cpu_of(self.target))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        """The record of one line's object; OtherSchemaError or LineError says why it is none."""
        if "v" in data and data["v"] != SCHEMA_VERSION:
            raise OtherSchemaError(f"schema version {data['v']!r} (this reads {SCHEMA_VERSION})")
        problem = schema.problem(data, SCHEMA_VERSION)
        if problem:
            raise LineError(problem)
        result, template, config = data["result"], data["template"], data["config"]
        return cls(
            workload=Workload.from_json(data["workload"]),
            device=data["device"],
            target=dict(data["target"]),
            template=template["name"],
            template_version=template["version"],
            config={"index": config["index"], "knobs": config["knobs"]},
            costs=tuple(float(c) for c in result["costs"]),
            error=ErrorKind(result["error"]),
            message=result.get("message", ""),
            build_seconds=float(result.get("build_s", 0.0)),
            run_seconds=float(result.get("run_s", 0.0)),
            timestamp=float(data["timestamp"]),
            versions=dict(data.get("versions", {})),
        )


def parse_line(text: str) -> Record:
    """The record of one log line; LineError (or OtherSchemaError) says in one line why it is none."""
    try:
        data = json.loads(text, parse_constant=_not_json)
    except ValueError as error:
        raise LineError(f"not JSON ({error})") from None
    if not isinstance(data, dict):
        raise LineError(f"a JSON {type(data).__name__}, not an object")
    return Record.from_json(data)


def _not_json(name: str) -> float:
    """NaN and Infinity are Python's extension of JSON, never a measured cost."""
    raise ValueError(f"{name} is not a JSON value")
