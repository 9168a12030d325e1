"""The RecordStore role: records indexed by `RecordKey`, one kept line per config, best first.

A config measured more than once keeps its median correct line (of an even count, the faster
of the middle two; an error line only when it never ran correctly): on a shared machine one
measurement can fall in a slow spell, or, for a kernel whose data lives in a cache other
tenants share, in a fast one that the model will not see, and a median of three sets both aside.

Lookups are by key (a dict), never a scan of the whole log: a model's compile asks for the
best config of every task, and the replay runner for every candidate. `MemoryStore` holds
records in memory; `JsonLinesStore` (`autotune.log.jsonl`) also appends each one to a file.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

from autotune.log.key import RecordKey, config_id
from autotune.log.record import Record


def _kept(lines: list[Record]) -> Record:
    """The line kept for one config of its lines so far: the median correct one, else the first."""
    correct = sorted((r for r in lines if r.ok), key=lambda r: r.cost)
    return correct[(len(correct) - 1) // 2] if correct else lines[0]


class RecordStore(ABC):
    """Records by key and config: a config measured several times keeps its median line, in first-seen order.

    A store has no len(), so an empty one is still true where an optional writer is tested.
    """

    def __init__(self) -> None:
        self._configs: dict[tuple[RecordKey, str], Record] = {}
        self._lines: dict[tuple[RecordKey, str], list[Record]] = {}
        self._keys: dict[RecordKey, list[tuple[RecordKey, str]]] = {}
        self._ranked: dict[RecordKey, list[Record]] = {}

    @abstractmethod
    def _write(self, record: Record) -> None:
        """Make `record` durable (before it is indexed, so what is indexed is kept)."""

    def add(self, record: Record) -> None:
        self._write(record)
        self._index(record)

    def extend(self, records: Iterable[Record]) -> None:
        for record in records:
            self.add(record)

    def _index(self, record: Record) -> None:
        slot = (record.key, config_id(record.config))
        lines = self._lines.setdefault(slot, [])
        if not lines:
            self._keys.setdefault(record.key, []).append(slot)
        lines.append(record)
        kept = _kept(lines)
        if kept is not self._configs.get(slot):
            self._configs[slot] = kept  # replacing a value keeps the slot's first-seen position
            self._ranked.pop(record.key, None)

    def __iter__(self) -> Iterator[Record]:
        """One line per config (its kept one), in the order configs were first seen."""
        return iter(list(self._configs.values()))

    def keys(self) -> list[RecordKey]:
        """The keys, in first-seen order."""
        return list(self._keys)

    def configs(self, key: RecordKey) -> list[Record]:
        """The key's line per config, in first-seen order."""
        return [self._configs[slot] for slot in self._keys.get(key, ())]

    def ranked(self, key: RecordKey) -> list[Record]:
        """The key's correct configs, fastest first (sorted once per change of the key)."""
        if key not in self._ranked:
            self._ranked[key] = sorted((r for r in self.configs(key) if r.ok), key=lambda r: r.cost)
        return self._ranked[key]

    def best(self, key: RecordKey) -> Record | None:
        ranked = self.ranked(key)
        return ranked[0] if ranked else None

    def find_id(self, key: RecordKey, config: str) -> Record | None:
        """The kept line of one config, by its `config_id`."""
        return self._configs.get((key, config))

    def lines(self, record: Record) -> list[Record]:
        """Every line of `record`'s config (same key and config), in the order they came."""
        return list(self._lines.get((record.key, config_id(record.config)), ()))

    def close(self) -> None:
        """Release what the store holds open."""

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MemoryStore(RecordStore):
    """Records in memory only: logs merged for a compile, a replay's answers, tests."""

    def __init__(self, records: Iterable[Record] = ()) -> None:
        super().__init__()
        self.extend(records)

    def _write(self, record: Record) -> None:
        pass


def as_store(records: RecordStore | Iterable[Record]) -> RecordStore:
    """`records` as a store: itself if it is one, else indexed once in memory."""
    return records if isinstance(records, RecordStore) else MemoryStore(records)
