"""`autotune log upgrade`: records of older template versions converted to the current one, or dropped."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from autotune.log.record import Record
from autotune.log.spaces import Spaces, reindexed
from autotune.log.text import table
from schedules import TemplateRegistry, default_registry


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
            out += table(("template", "converted", "dropped", "why dropped"), rows)
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
    report, spaces, out = UpgradeReport(), Spaces(None), []
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
            config = reindexed(spaces.space(template, record, device), knobs)
        except (ValueError, KeyError, TypeError, IndexError):
            report.drop(record.template, version, "converted config not in the current space")
            continue
        out.append(replace(record, template_version=template.version, config=config))
        report.converted[(record.template, version)] += 1
    return out, report
