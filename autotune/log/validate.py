"""`autotune log validate`: every line of a log checked against the schema, today's templates and a device."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from autotune.log.key import TARGET_FIELDS, cpu_of
from autotune.log.record import LineError, OtherSchemaError, Record, parse_line
from autotune.log.spaces import Spaces, reindexed
from autotune.log.text import ranges, table
from schedules import TemplateRegistry, default_registry
from targets import Device, get_device


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
        rows = [("valid", str(len(self.valid)), ranges(self.valid))]
        rows += [(label, str(len(getattr(self, kind))), ranges(getattr(self, kind))) for kind, label in PROBLEMS.items()]
        out = [f"{self.path}: {self.total} lines, {len(self.valid)} valid"]
        out += ["  " + line for line in table(("kind", "lines", "line numbers"), rows)]
        if self.unchecked:
            out.append(f"  config not checked (device is no preset): {len(self.unchecked)} valid lines: {ranges(self.unchecked)}")
        for number in sorted(self.reasons)[:limit]:
            out.append(f"  line {number}: {self.reasons[number]}")
        if len(self.reasons) > limit:
            out.append(f"  ... {len(self.reasons) - limit} more problem lines")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _check_line(
    text: str, device: Device | None, registry: TemplateRegistry, spaces: Spaces
) -> tuple[str, str, Record | None]:
    """(kind, reason, record) of one line; kind is "valid", "unchecked" or one of PROBLEMS."""
    try:
        record = parse_line(text)
    except OtherSchemaError as error:
        return "other_schema", str(error), None
    except LineError as error:
        return "corrupt", str(error), None
    except (KeyError, TypeError, AttributeError) as error:
        return "corrupt", f"not a record ({type(error).__name__}: {error})", None
    try:
        template = registry.by_name(record.template)
    except ValueError:
        return "unknown_template", f"template {record.template!r} is not in the registry", record
    if record.template_version != template.version:
        age = "older" if record.template_version < template.version else "newer"
        return "stale", f"{record.template} v{record.template_version} ({age} than the current v{template.version})", record
    if device is not None and (record.key.device, record.key.cpu) != (device.name, cpu_of(device.target)):
        theirs = {k: record.target.get(k) for k in TARGET_FIELDS if k in record.target}
        return "other_device", f"device {record.device!r} {theirs}, not {device.name!r}", record
    record_device = spaces.device_of(record)
    if record_device is None:
        return "unchecked", "", record
    try:
        reindexed(spaces.space(template, record, record_device), record.config["knobs"])
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
    report, spaces = ValidationReport(os.fspath(path)), Spaces(device)
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
