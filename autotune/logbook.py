"""Tuning logs as a product: summarize, merge, distill, validate, upgrade and write them safely.

Logs outlive the tuning runs that made them: they are merged across machines, distilled to
the best entries CI compiles from, and checked against the templates of today's code. Every
function here takes and returns plain `Record`s so each CLI verb is a few lines, and every
report has `lines()` (and `__str__`) giving the printable table.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from autotune.records import SCHEMA_VERSION, TARGET_FIELDS, FieldTypeError, Record, load_records, same_machine
from schedules import ConfigSpace, Template, TemplateRegistry, default_registry
from targets import Device, get_device

#: (workload key, device, template name, template version): the records that compete.
GroupKey = tuple[str, str, str, int]


def group_key(record: Record) -> GroupKey:
    return (record.workload.key, record.device, record.template, record.template_version)


def config_key(record: Record) -> tuple[GroupKey, str]:
    """What makes two lines the same measurement: the group plus the knob values (not the index)."""
    return group_key(record), json.dumps(record.config["knobs"], sort_keys=True, separators=(",", ":"))


# -- summary -----------------------------------------------------------------------------------
@dataclass
class WorkloadSummary:
    """What a log holds for one workload on one device with one template version."""

    workload: str  # readable form, e.g. matmul(K=64, M=64, N=64, dtype=float32)
    key: str
    device: str
    template: str
    template_version: int
    trials: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # ErrorKind value -> lines
    best_cost: float | None = None  # seconds (median of the best correct config)
    best_knobs: dict[str, Any] | None = None

    def __str__(self) -> str:
        return " | ".join(_summary_row(self))


_SUMMARY_HEADER = ("workload", "device", "template", "trials", "errors", "best ms", "best config")


def _summary_row(s: WorkloadSummary) -> tuple[str, ...]:
    errors = ", ".join(f"{kind} {n}" for kind, n in sorted(s.errors.items())) or "-"
    best = f"{s.best_cost * 1e3:.4g}" if s.best_cost is not None else "-"
    knobs = ", ".join(f"{k}={_short(v)}" for k, v in s.best_knobs.items()) if s.best_knobs else "-"
    return (s.workload, s.device, f"{s.template} v{s.template_version}", str(s.trials), errors, best, knobs)


def summarize(records: Iterable[Record]) -> list[WorkloadSummary]:
    """Per workload/device/template version: trials, errors by kind, best cost and its knobs (first-seen order)."""
    summaries: dict[GroupKey, WorkloadSummary] = {}
    for record in records:
        key = group_key(record)
        summary = summaries.get(key)
        if summary is None:
            summary = summaries[key] = WorkloadSummary(
                str(record.workload), record.workload.key, record.device, record.template, record.template_version
            )
        summary.trials += 1
        if not record.ok:
            summary.errors[record.error.value] = summary.errors.get(record.error.value, 0) + 1
        elif math.isfinite(record.cost) and (summary.best_cost is None or record.cost < summary.best_cost):
            summary.best_cost, summary.best_knobs = record.cost, dict(record.config["knobs"])
    return list(summaries.values())


def summary_lines(summaries: Sequence[WorkloadSummary]) -> list[str]:
    """The summaries as an aligned text table (what `autotune log summary` prints)."""
    return _table(_SUMMARY_HEADER, [_summary_row(s) for s in summaries])


# -- merge and distill -------------------------------------------------------------------------
def _better(new: Record, old: Record) -> bool:
    """Whether `new` should replace `old` as the line kept for one config: correct beats error, then faster."""
    if new.ok != old.ok:
        return new.ok
    return new.ok and new.cost < old.cost


def _sources(sources: Iterable[str | os.PathLike | Iterable[Record]]) -> Iterator[Record]:
    for source in sources:
        if isinstance(source, (str, os.PathLike)):
            if not os.path.exists(source):  # load_records reads a missing file as empty: a typo must not
                raise FileNotFoundError(f"no tuning log at {os.fspath(source)}")
            yield from load_records(source)
        else:
            yield from source


def merge(sources: Iterable[str | os.PathLike | Iterable[Record]]) -> list[Record]:
    """Several logs (paths or record iterables) as one, each measured config once.

    A config measured more than once keeps its fastest correct line, or its first error line
    when it never ran correctly; the kept line takes the place where the config was first seen.
    """
    kept: dict[tuple[GroupKey, str], Record] = {}
    for record in _sources(sources):
        key = config_key(record)
        old = kept.get(key)
        if old is None or _better(record, old):
            kept[key] = record  # replacing a value keeps the key's first-seen position
    return list(kept.values())


def distill(records: Iterable[Record], top: int = 1) -> list[Record]:
    """The `top` fastest correct configs per workload/device/template version: the small log to commit.

    Groups come in first-seen order, each fastest first; a config measured twice counts once.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    groups: dict[GroupKey, list[Record]] = {}
    for record in merge([records]):
        if record.ok and math.isfinite(record.cost):
            groups.setdefault(group_key(record), []).append(record)
    return [r for group in groups.values() for r in sorted(group, key=lambda r: r.cost)[:top]]


# -- devices and spaces of records ---------------------------------------------------------------
class _Spaces:
    """Current-template spaces of the records' workloads, built once per workload and device."""

    def __init__(self, device: Device | None):
        self.device = device
        self._devices: dict[tuple[str, str], Device | None] = {}
        self._spaces: dict[tuple[str, str, str, str], ConfigSpace] = {}

    def device_of(self, record: Record) -> Device | None:
        """The given device, else the record's preset on the record's own target (None: unknown preset).

        The record's target wins over the preset's because the space depends on it ("host"
        on an AVX-512 machine has wider vectors than "host" here).
        """
        if self.device is not None:
            return self.device
        key = (record.device, json.dumps(record.target, sort_keys=True, default=str))
        if key not in self._devices:
            try:
                device = get_device(record.device)
            except ValueError:
                device = None
            if device is not None and not same_machine(device.target, record.target):
                own = replace(device, target=dict(record.target))
                try:
                    own.tvm_target  # noqa: B018 - TVM refuses a malformed target with its own error types
                    device = own
                except Exception:  # noqa: BLE001 - then the preset's target is the best guess
                    pass
            self._devices[key] = device
        return self._devices[key]

    def space(self, template: Template, record: Record, device: Device) -> ConfigSpace:
        key = (template.name, record.workload.key, device.name, json.dumps(device.target, sort_keys=True, default=str))
        if key not in self._spaces:
            if record.workload.op != template.op:
                raise ValueError(f"workload {record.workload.op!r} is not a {template.op!r} workload")
            self._spaces[key] = template.space(record.workload, device)
        return self._spaces[key]


def _reindexed(space: ConfigSpace, knobs: dict[str, Any]) -> dict[str, Any]:
    """The config JSON (index and knobs) of these knob values in `space`; ValueError when not a valid point."""
    config = space.from_json({"knobs": knobs})
    if not space.is_valid(config):
        raise ValueError("violates the space's constraints")
    return space.to_json(config)


# -- validate --------------------------------------------------------------------------------------
#: Problem kinds in the order they are checked: a line is counted under the first that applies.
PROBLEMS = {
    "corrupt": "corrupt",
    "other_schema": "other schema version",
    "unknown_template": "unknown template",
    "stale": "stale template version",
    "other_device": "other device",
    "not_in_space": "config not in space",
}


@dataclass
class ValidationReport:
    """Line numbers (1-based, blank lines not counted as lines) of each kind of line in one log."""

    path: str
    total: int = 0
    valid: list[int] = field(default_factory=list)
    corrupt: list[int] = field(default_factory=list)
    other_schema: list[int] = field(default_factory=list)
    unknown_template: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)
    other_device: list[int] = field(default_factory=list)
    not_in_space: list[int] = field(default_factory=list)
    #: valid lines whose config could not be checked against a space (their device is no preset)
    unchecked: list[int] = field(default_factory=list)
    #: line number -> why it is not valid
    reasons: dict[int, str] = field(default_factory=dict)
    #: the valid lines' records, in file order
    records: list[Record] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every line is usable (the CLI's exit status)."""
        return len(self.valid) == self.total

    def usable(self) -> list[Record]:
        """The records that compile may use: valid lines only."""
        return list(self.records)

    def counts(self) -> dict[str, int]:
        return {"valid": len(self.valid), **{kind: len(getattr(self, kind)) for kind in PROBLEMS}}

    def lines(self, limit: int = 20) -> list[str]:
        """A count table per kind with line numbers, then the first `limit` problem lines with their reason."""
        rows = [("valid", str(len(self.valid)), _ranges(self.valid))]
        rows += [(label, str(len(getattr(self, kind))), _ranges(getattr(self, kind))) for kind, label in PROBLEMS.items()]
        out = [f"{self.path}: {self.total} lines, {len(self.valid)} valid"]
        out += ["  " + line for line in _table(("kind", "lines", "line numbers"), rows)]
        if self.unchecked:
            out.append(f"  config not checked (device is no preset): {len(self.unchecked)} valid lines: {_ranges(self.unchecked)}")
        for number in sorted(self.reasons)[:limit]:
            out.append(f"  line {number}: {self.reasons[number]}")
        if len(self.reasons) > limit:
            out.append(f"  ... {len(self.reasons) - limit} more problem lines")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _check_line(
    text: str, device: Device | None, registry: TemplateRegistry, spaces: _Spaces
) -> tuple[str, str, Record | None]:
    """(kind, reason, record) of one line; kind is "valid" or one of PROBLEMS."""
    try:
        data = json.loads(text.strip())
    except ValueError as error:
        return "corrupt", f"not JSON ({error})", None
    if not isinstance(data, dict):
        return "corrupt", f"a JSON {type(data).__name__}, not an object", None
    if "v" in data and data["v"] != SCHEMA_VERSION:
        return "other_schema", f"schema version {data['v']!r} (this reads {SCHEMA_VERSION})", None
    try:
        record = Record.from_json(data)
    except FieldTypeError as error:
        return "corrupt", str(error), None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return "corrupt", f"not a record ({type(error).__name__}: {error})", None
    try:
        template = registry.by_name(record.template)
    except ValueError:
        return "unknown_template", f"template {record.template!r} is not in the registry", record
    if record.template_version != template.version:
        age = "older" if record.template_version < template.version else "newer"
        return "stale", f"{record.template} v{record.template_version} ({age} than the current v{template.version})", record
    if device is not None and (record.device != device.name or not same_machine(record.target, device.target)):
        theirs = {k: record.target.get(k) for k in TARGET_FIELDS if k in record.target}
        return "other_device", f"device {record.device!r} {theirs}, not {device.name!r}", record
    record_device = spaces.device_of(record)
    if record_device is None:
        return "unchecked", "", record
    try:
        _reindexed(spaces.space(template, record, record_device), record.config["knobs"])
    except (ValueError, KeyError, TypeError, IndexError) as error:
        return "not_in_space", f"config is not a point of {template.name} v{template.version}'s space ({error})", record
    return "valid", "", record


def validate(
    path: str | os.PathLike, device: Device | str | None = None, registry: TemplateRegistry | None = None
) -> ValidationReport:
    """Check every line of a log against the schema, the templates of today's code and a device.

    Reads the file itself (not load_records) to keep line numbers. With `device`, lines of
    another device or target (kind, mtriple, mcpu) are reported; without, each line's config
    is checked in the space of its own device preset, skipped when the name is no preset.
    """
    device = get_device(device) if isinstance(device, str) else device
    registry = registry or default_registry()
    report, spaces = ValidationReport(os.fspath(path)), _Spaces(device)
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            report.total += 1
            kind, reason, record = _check_line(text, device, registry, spaces)
            if kind in ("valid", "unchecked"):
                report.valid.append(number)
                report.records.append(record)
                if kind == "unchecked":
                    report.unchecked.append(number)
            else:
                getattr(report, kind).append(number)
                report.reasons[number] = f"{PROBLEMS[kind]}: {reason}"
    return report


# -- upgrade ---------------------------------------------------------------------------------------
@dataclass
class UpgradeReport:
    """What upgrade did, per (template, version the records had)."""

    current: int = 0  # records already at the template's version, kept as they are
    unknown: int = 0  # records of templates the registry does not know, kept as they are
    newer: int = 0  # records of a version newer than the registry's, kept as they are
    converted: Counter = field(default_factory=Counter)  # (template, old version) -> records
    dropped: dict[tuple[str, int], Counter] = field(default_factory=dict)  # (template, old version) -> reason -> records

    def drop(self, template: str, version: int, reason: str) -> None:
        self.dropped.setdefault((template, version), Counter())[reason] += 1

    def lines(self) -> list[str]:
        """Kept counts, then one row per old template version: converted, dropped and why."""
        out = [f"kept: {self.current} current, {self.unknown} of unknown templates, {self.newer} of newer versions"]
        keys = sorted(set(self.converted) | set(self.dropped))
        rows = []
        for name, version in keys:
            reasons = self.dropped.get((name, version), Counter())
            why = "; ".join(f"{reason} ({n})" for reason, n in reasons.most_common()) or "-"
            rows.append((f"{name} v{version}", str(self.converted[(name, version)]), str(sum(reasons.values())), why))
        if rows:
            out += _table(("template", "converted", "dropped", "why dropped"), rows)
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def upgrade(records: Iterable[Record], registry: TemplateRegistry | None = None) -> tuple[list[Record], UpgradeReport]:
    """Records of older template versions converted to the current one (Template.upgrade_config), else dropped.

    A converted record gets the current version and its config re-indexed in the current
    space of its device preset (on the record's target). Records that need no conversion are
    kept unchanged. Two old configs may convert to the same new one: merge afterwards.
    """
    registry = registry or default_registry()
    report, spaces, out = UpgradeReport(), _Spaces(None), []
    for record in records:
        try:
            template = registry.by_name(record.template)
        except ValueError:
            report.unknown += 1
            out.append(record)
            continue
        version = record.template_version
        if version >= template.version:
            if version == template.version:
                report.current += 1
            else:
                report.newer += 1
            out.append(record)
            continue
        try:
            knobs = template.upgrade_config(version, dict(record.config["knobs"]))
        except (KeyError, ValueError, TypeError, IndexError) as error:
            report.drop(record.template, version, f"converter failed: {type(error).__name__}: {error}")
            continue
        if knobs is None:
            report.drop(record.template, version, "no converter")
            continue
        device = spaces.device_of(record)
        if device is None:
            report.drop(record.template, version, f"device {record.device!r} is no preset")
            continue
        try:
            config = _reindexed(spaces.space(template, record, device), knobs)
        except (ValueError, KeyError, TypeError, IndexError):
            report.drop(record.template, version, "converted config not in the current space")
            continue
        out.append(replace(record, template_version=template.version, config=config))
        report.converted[(record.template, version)] += 1
    return out, report


# -- writing -----------------------------------------------------------------------------------------
def write_log(path: str | os.PathLike, records: Iterable[Record]) -> int:
    """Write a whole log atomically: a temp file in the same directory, fsync'd, then os.replace.

    Readers see the old log or the new one, never half of one: an error (or kill) while the
    records are produced or written leaves the old file as it was. Returns the lines written.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    temp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    count = 0
    try:
        with open(temp, "x", encoding="utf-8") as out:  # created with the umask's mode, like any log
            for record in records:
                out.write(json.dumps(record.to_json(), separators=(",", ":")) + "\n")
                count += 1
            out.flush()
            os.fsync(out.fileno())
        if os.path.exists(path):
            shutil.copymode(path, temp)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    _fsync_dir(folder)
    return count


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- text helpers ------------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    fmt = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(row) for row in rows)]


def _ranges(numbers: Sequence[int], limit: int = 12) -> str:
    """2, 3, 4, 7 -> "2-4, 7" (the first `limit` runs)."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:limit])
    return text + (", ..." if len(runs) > limit else "")


def _short(value: Any) -> str:
    return "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
