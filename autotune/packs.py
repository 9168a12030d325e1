"""Pre-tuned packs: distilled tuning logs shipped inside the package.

A pack is a JSON-lines log in `autotune/packs/` holding the best config per workload for
one device preset and CPU (e.g. `host-znver5.jsonl`). Compiling looks a task up in the
user's logs first, then in the packs whose lines are valid for the device (same preset
and target, current template versions), then falls back to the template's default.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autotune.logbook import validate, write_log
from autotune.records import Record, load_records
from targets import Device

PACK_DIR = os.path.join(os.path.dirname(__file__), "packs")


@dataclass
class Pack:
    name: str
    path: str
    device: str
    target: dict[str, Any] = field(default_factory=dict)
    workloads: int = 0


def list_packs(folder: str = PACK_DIR) -> list[Pack]:
    packs = []
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if entry.endswith(".jsonl"):
            path = os.path.join(folder, entry)
            records = load_records(path)
            first = records[0] if records else None
            packs.append(Pack(entry[: -len(".jsonl")], path, first.device if first else "-",
                              first.target if first else {}, len({r.workload.key for r in records})))
    return packs


def pack_records(device: Device, folder: str = PACK_DIR) -> list[Record]:
    """The records of every pack that are valid for `device` (others are skipped silently: they are for other machines)."""
    records = []
    for pack in list_packs(folder):
        records += validate(pack.path, device).usable()
    return records


def build_pack(name: str, records: Sequence[Record], folder: str = PACK_DIR) -> str:
    """Write `records` (already distilled) as the pack `name`; ValueError for a bad name or mixed devices."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"pack name {name!r}: use letters, digits, '.', '_' and '-'")
    devices = {(r.device, r.target.get("mcpu")) for r in records}
    if len(devices) != 1:
        raise ValueError(f"a pack holds one device's records; these logs have {len(devices)}: {sorted(map(str, devices))}")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.jsonl")
    write_log(path, records)
    return path
