"""Tuning logs on disk: JSON lines, appended crash-safely while tuning, rewritten atomically by the tools.

A line is written with a single write() and fsync'd, so Ctrl-C or kill -9 loses at most
the line being written; loading skips a torn or corrupt line with a warning, and the
writer starts on a fresh line when the file ends mid-line. Whole logs (merge, distill,
packs) go to a temp file that replaces the old one, so a reader sees one or the other.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterable

from autotune.log.record import LineError, Record, parse_line
from autotune.log.store import RecordStore


class LogWarning(UserWarning):
    """A tuning log line that was skipped."""


def load_records(path: str | os.PathLike) -> list[Record]:
    """Every valid record of a log, in file order; a missing file is an empty log, bad lines are skipped with a warning."""
    if not os.path.exists(path):
        return []
    records, bad = [], []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(parse_line(line))
            except (LineError, KeyError, TypeError, AttributeError) as error:
                bad.append(f"{number} ({type(error).__name__}: {error})")
    if bad:
        shown = "; ".join(bad[:5]) + ("; ..." if len(bad) > 5 else "")
        warnings.warn(f"{os.fspath(path)}: skipped {len(bad)} corrupt line(s): {shown}", LogWarning, stacklevel=2)
    return records


def _line(record: Record) -> str:
    return json.dumps(record.to_json(), separators=(",", ":")) + "\n"


class JsonLinesStore(RecordStore):
    """A log file as a store: its records are loaded when opened, and each new one is appended and fsync'd."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        self.path = os.fspath(path)
        for record in load_records(self.path):
            self._index(record)
        self._file = open(self.path, "a+b")  # noqa: SIM115 - kept open for the whole run
        self._file.seek(0, os.SEEK_END)
        if self._file.tell() > 0:
            self._file.seek(-1, os.SEEK_END)
            if self._file.read(1) != b"\n":
                self._file.write(b"\n")  # the last run was killed mid-line: start clean

    def _write(self, record: Record) -> None:
        self._file.write(_line(record).encode())
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


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
                out.write(_line(record))
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
