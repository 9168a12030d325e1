"""`autotune log merge` and `distill`: logs as one, each config once; then the best configs per key.

Both group by `RecordKey`, so logs of one preset measured on two CPUs keep both machines'
results, and distilling keeps each machine's own best.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from autotune.log.jsonl import load_records
from autotune.log.record import Record
from autotune.log.store import MemoryStore


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

    A config measured more than once keeps its median correct line (`autotune.log.store`), or its
    first error line when it never ran correctly; the kept line takes the place where the config
    was first seen.
    """
    return list(MemoryStore(_sources(sources)))


def distill(records: Iterable[Record], top: int = 1) -> list[Record]:
    """The `top` fastest correct configs per record key (workload, template version, device, CPU): the log to commit.

    Keys come in first-seen order, each fastest first; a config measured twice counts once.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    store = MemoryStore(records)
    return [r for key in store.keys() for r in store.ranked(key)[:top]]
