"""What the user sees: progress lines, notes on stderr, and TVM's own output kept out of the way."""
from __future__ import annotations

import gc
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from autotune.engine import Progress

#: Warnings of these packages are the project's own, meant for the user.
OWN_PACKAGES = ("autotune", "schedules", "cost_model", "targets")


def note(text: str) -> None:
    """A line for the user beside the results: on stderr."""
    print(text, file=sys.stderr)


class ProgressLine:
    """One live status line on a terminal; a line per batch otherwise."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stderr  # read when made: inside `quiet_tvm`, the terminal
        self.live = self.stream.isatty()

    def __call__(self, p: Progress) -> None:
        best = f"{p.best_gflops:.1f} GFLOPS" if p.best_gflops else "none yet"
        self.write(f"[{p.measured:>{len(str(p.budget))}}/{p.budget}] errors {p.errors} | best {best} | {p.elapsed:.0f}s")

    def write(self, text: str) -> None:
        if self.live:
            self.stream.write("\r" + text + "\033[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.live:
            self.stream.write("\n")


class ModelProgressLine(ProgressLine):
    def __call__(self, p) -> None:
        pending = f" ({p.unmeasured} tasks not measured yet)" if p.unmeasured else ""
        text = (f"[{p.measured:>{len(str(p.budget))}}/{p.budget}] {p.elapsed:.0f}s | tuned operators "
                f"{p.latency * 1e3:.2f} ms/inference{pending} | errors {p.errors} | {p.current.model_task.task.workload}")
        self.write(text)


@contextmanager
def quiet_tvm(verbose: bool) -> Iterator[None]:
    """Run a command with TVM's own output hidden, unless `verbose`.

    TVM's C++ log lines (`LOG(WARNING)`, e.g. "Fast mode segfaults when there are
    out-of-bounds indices" on every ONNX import with a Gather) are written straight to
    file descriptor 2, past Python: fd 2 goes to a temporary file, deleted at the end,
    while `sys.stderr` writes to the terminal through a duplicate, so the command's own
    lines still show. Python warnings of other packages (TVM, numpy, xgboost) go the same
    way; the project's own are one line, `warning: ...`. All of it only for the command:
    the warning filters and `showwarning` are restored after it.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("always", module=rf"({'|'.join(OWN_PACKAGES)})(\.|$)")
        if verbose:
            warnings.showwarning = _show_warning(None)
            yield
            return
        with tempfile.TemporaryFile() as hidden, _fd2_to(hidden):
            warnings.showwarning = _show_warning(hidden)
            yield


def _show_warning(hidden: IO[bytes] | None):
    """`warnings.showwarning` for a command: the project's as one line, the rest to `hidden` (None: stderr)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if category.__module__.split(".")[0] in OWN_PACKAGES:
            sys.stderr.write(f"warning: {message}\n")
        elif hidden is None:
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
        else:
            hidden.write(warnings.formatwarning(message, category, filename, lineno, line).encode())

    return show


@contextmanager
def _fd2_to(target: IO[bytes]) -> Iterator[None]:
    """Point file descriptor 2 at `target`, and `sys.stderr` at where fd 2 pointed before."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = open(saved, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")  # noqa: SIM115
    previous, sys.stderr = sys.stderr, terminal
    os.dup2(target.fileno(), 2)
    try:
        yield
    finally:
        gc.collect()  # C++ objects freed with a Python cycle (an exception's traceback) log from their destructors
        terminal.flush()
        sys.stderr = previous
        os.dup2(saved, 2)
        terminal.close()
