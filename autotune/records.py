"""The tuning log: one JSON object per measured config, appended and flushed as it arrives.

A line is written with a single write() and fsync'd, so Ctrl-C or kill -9 loses at most
the line being written; loading skips a torn or corrupt line with a warning, and the
writer starts on a fresh line when the file ends mid-line.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autotune.measure.result import ErrorKind, MeasureResult
from schedules import Workload

SCHEMA_VERSION = 1

#: Target fields that make two devices different machines for a kernel.
TARGET_FIELDS = ("kind", "mtriple", "mcpu")


def same_machine(target: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether kernels tuned for one target are valid measurements for the other."""
    return all(target.get(name) == other.get(name) for name in TARGET_FIELDS)


class LogWarning(UserWarning):
    """A tuning log line that was skipped."""


class FieldTypeError(ValueError):
    """A log line's field has the wrong type (which parsing would otherwise coerce)."""


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

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        """Parse one line's object; KeyError/ValueError/TypeError when it is malformed."""
        if data["v"] != SCHEMA_VERSION:
            raise ValueError(f"schema version {data['v']!r} (this reads {SCHEMA_VERSION})")
        problem = _type_problem(data)
        if problem:
            raise FieldTypeError(problem)
        result, template, config = data["result"], data["template"], data["config"]
        if not isinstance(config["index"], int) or not isinstance(config["knobs"], dict):
            raise ValueError("config needs an integer index and a knobs object")
        return cls(
            workload=Workload.from_json(data["workload"]),
            device=str(data["device"]),
            target=dict(data["target"]),
            template=str(template["name"]),
            template_version=int(template["version"]),
            config={"index": config["index"], "knobs": config["knobs"]},
            costs=tuple(float(c) for c in result["costs"]),
            error=ErrorKind(result["error"]),
            message=str(result.get("message", "")),
            build_seconds=float(result.get("build_s", 0.0)),
            run_seconds=float(result.get("run_s", 0.0)),
            timestamp=float(data["timestamp"]),
            versions=dict(data.get("versions", {})),
        )


def _type_problem(data: Mapping[str, Any]) -> str | None:
    """What is of the wrong type in a log line's object (None: nothing), before any coercion.

    A costs string "12" must not become (1.0, 2.0), nor a version "2" become 2.
    """
    result = data.get("result")
    costs = result.get("costs") if isinstance(result, dict) else None
    if not isinstance(costs, list) or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in costs):
        return "result.costs is not a list of numbers"
    if not all(math.isfinite(c) and c >= 0 for c in costs):
        return "result.costs has a negative or non-finite cost"
    if result.get("error") == ErrorKind.NONE.value and not costs:
        return "a correct result without costs"
    template = data.get("template")
    version = template.get("version") if isinstance(template, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        return "template.version is not an integer"
    if not isinstance(template.get("name"), str) or not isinstance(data.get("device"), str):
        return "template.name or device is not a string"
    if not isinstance(data.get("target"), dict):
        return "target is not an object"
    return None


def load_records(path: str | os.PathLike) -> list[Record]:
    """Every valid record of a log; a missing file is an empty log, bad lines are skipped with a warning."""
    if not os.path.exists(path):
        return []
    records, bad = [], []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(Record.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                bad.append(f"{number} ({type(error).__name__}: {error})")
    if bad:
        shown = "; ".join(bad[:5]) + ("; ..." if len(bad) > 5 else "")
        warnings.warn(f"{path}: skipped {len(bad)} corrupt line(s): {shown}", LogWarning, stacklevel=2)
    return records


class RecordLog:
    """Append-only writer of a tuning log."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._file = open(self.path, "a+b")  # noqa: SIM115 - kept open for the whole run
        self._file.seek(0, os.SEEK_END)
        if self._file.tell() > 0:
            self._file.seek(-1, os.SEEK_END)
            if self._file.read(1) != b"\n":
                self._file.write(b"\n")  # the last run was killed mid-line: start clean

    def append(self, record: Record) -> None:
        line = json.dumps(record.to_json(), separators=(",", ":")) + "\n"
        self._file.write(line.encode())
        self._file.flush()
        os.fsync(self._file.fileno())

    def extend(self, records: Iterable[Record]) -> None:
        for record in records:
            self.append(record)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
