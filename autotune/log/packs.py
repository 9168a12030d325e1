"""Pre-tuned packs: distilled tuning logs shipped inside the package.

A pack is a JSON-lines log in `autotune/packs/` holding the best config per workload for
one device preset and CPU (e.g. `host-znver5.jsonl`). It serves its own CPU exactly, and,
as the nearest pack, every other CPU of the same kind (`targets.cpu_kind`: architecture,
widest vector extension and width; a Zen 4 gets a Zen 5's configs, an AVX2 or ARM CPU
does not). Compiling looks a task up in the user's logs, then exact packs, then nearest
packs, then falls back to the template's default (`best_config`).
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from autotune.log.jsonl import load_records, write_log
from autotune.log.key import cpu_of
from autotune.log.record import Record
from autotune.log.spaces import Spaces, device_on, reindexed
from autotune.log.store import MemoryStore, RecordStore
from autotune.log.validate import validate
from autotune.task import Task
from schedules import Config, default_registry
from targets import Device, cpu_kind

PACK_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "packs")


@dataclass
class Pack:
    name: str
    path: str
    device: str
    target: dict[str, Any] = field(default_factory=dict)
    workloads: int = 0


@dataclass
class PackRecords:
    """The records of one pack that serve a device, and whether they were measured on another CPU of its kind."""

    pack: Pack
    nearest: bool
    store: RecordStore

    @property
    def label(self) -> str:
        """How the coverage line names the source: "the pack host-znver5", "the nearest pack host-znver5"."""
        return f"the {'nearest ' if self.nearest else ''}pack {self.pack.name}"


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


def pack_records(device: Device, folder: str = PACK_DIR) -> list[PackRecords]:
    """The packs that serve `device`, exact ones (same preset and CPU) first, then the nearest (same kind of CPU).

    Packs for other kinds of CPU are skipped silently: they are for other machines.
    """
    kind = cpu_kind(device.target)
    exact, nearest = [], []
    for pack in list_packs(folder):
        if (pack.device, cpu_of(pack.target)) == (device.name, cpu_of(device.target)):
            exact.append(PackRecords(pack, False, MemoryStore(validate(pack.path, device).usable())))
        elif kind is not None and cpu_kind(pack.target) == kind:
            nearest.append(PackRecords(pack, True, MemoryStore(_adopted(pack, device))))
    return exact + nearest


def _adopted(pack: Pack, device: Device) -> list[Record]:
    """A nearest pack's valid records as `device`'s: its preset and target, each config re-indexed in its space.

    Re-keyed so that `device`'s tasks find them; configs that are no point of this device's
    space (other knobs, other vector lengths) are dropped. `PackRecords.nearest` says where
    they came from.
    """
    own = device_on(pack.device, pack.target)
    if own is None:
        return []
    registry, spaces, adopted = default_registry(), Spaces(device), []
    for record in validate(pack.path, own).usable():
        try:
            config = reindexed(spaces.space(registry.by_name(record.template), record, device), record.config["knobs"])
        except (ValueError, KeyError, TypeError, IndexError):
            continue
        adopted.append(replace(record, device=device.name, target=dict(device.target), config=config))
    return adopted


def best_config(
    task: Task, records: RecordStore, packs: Sequence[PackRecords] = ()
) -> tuple[Config, Record, PackRecords | None] | None:
    """`task`'s best config: from the user's records, else from the first pack that has one (exact before nearest).

    The third item is the pack it came from (None: the user's records); None when nothing has one.
    """
    best = task.best(records)
    if best:
        return (*best, None)
    for pack in packs:
        best = task.best(pack.store)
        if best:
            return (*best, pack)
    return None


def build_pack(name: str, records: Sequence[Record], folder: str = PACK_DIR) -> str:
    """Write `records` (already distilled) as the pack `name`; ValueError for a bad name or mixed devices."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"pack name {name!r}: use letters, digits, '.', '_' and '-'")
    devices = {(r.key.device, r.key.cpu) for r in records}
    if len(devices) != 1:
        raise ValueError(f"a pack holds one device's records; these logs have {len(devices)}: {sorted(map(str, devices))}")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.jsonl")
    write_log(path, records)
    return path
