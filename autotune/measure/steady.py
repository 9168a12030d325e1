"""Timing on this machine only while every thread of TVM's pool runs: a shared VM's cores come and go.

On a shared virtual machine one of the cores is now and then taken away for up to a second
(seen here on a 2-core Zen 5, with no steal time in /proc/stat): a two-thread
kernel then takes its one-thread time, about 1.8x, and whatever is measured then (a candidate
of the tuner, a model's function) is recorded at that speed. A probe tells
such moments: a parallel kernel of one register tile per thread (about 30 us here), whose
median call should take what one tile takes on one thread, and the same kernel with almost no
work, whose call should take the quickest fork and join seen. `SteadyTimer` measures between
two probes that say so, waiting out a spell for up to two seconds (not at all on a machine that
stays busy), with TVM's calling thread kept off its workers' cores
(`targets.tvm_compat.apart_from_workers`).
"""
from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import tvm
from tvm import te

from targets.tvm_compat import apart_from_workers, host_cpu_name, pool_threads

T = TypeVar("T")

#: A probe slower than this many times the one-thread tile means a thread did not run along.
SLOW = 1.4
#: A call of near-empty tiles slower than this many times the quickest seen: the pool starts and joins slowly.
SLOW_JOIN = 2.0
#: The probe's tile: 4 x 16 accumulators (4 AVX-512 or 16 NEON registers) over operands in L1,
#: passed over `PASSES` times: 1 MFLOP, about 30 us on one core here.
ROWS, COLUMNS, DEPTH, PASSES = 4, 16, 256, 128


def _tile_kernel(tasks: int, passes: int = PASSES, number: int = 1, repeat: int = 15):
    """A timer of `tasks` independent register tiles, in parallel when more than one: the tile's
    time when every task has a thread and a core to itself (with one pass: the pool's fork and join)."""
    a = te.placeholder((tasks, ROWS, DEPTH), name="a")
    b = te.placeholder((tasks, DEPTH, COLUMNS), name="b")
    over, k = te.reduce_axis((0, passes), "over"), te.reduce_axis((0, DEPTH), "k")
    c = te.compute((tasks, ROWS, COLUMNS), lambda t, i, j: te.sum(a[t, i, k] * b[t, k, j], axis=[over, k]), name="c")
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, b, c]))
    task, row, column, over, depth = sch.get_loops(sch.get_sblock("c"))
    sch.reorder(task, over, depth, row, column)
    sch.unroll(row)
    sch.vectorize(column)
    if tasks > 1:
        sch.parallel(task)
    lib = tvm.compile(sch.mod, target=tvm.target.Target({"kind": "llvm", "mcpu": host_cpu_name()}))
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(-1, 1, (tasks, ROWS, DEPTH)), rng.uniform(-1, 1, (tasks, DEPTH, COLUMNS)),
              np.zeros((tasks, ROWS, COLUMNS))]
    tensors = [tvm.runtime.tensor(x.astype("float32")) for x in arrays]
    timer = lib.mod.time_evaluator("main", tvm.cpu(), number=number, repeat=repeat)
    return lambda: timer(*tensors).results


class ParallelProbe:
    """Whether all `threads` of TVM's pool run at once right now, on this machine's CPU, and start
    and join as quickly as they can (in spells of a second here a 2-task call's fork and join took
    1.7 us instead of 0.65, and a 4 us kernel 6)."""

    def __init__(self, threads: int):
        self._parallel = _tile_kernel(threads)
        self._parallel()  # the pool's threads start
        serial = _tile_kernel(1)
        self.one_tile = min(min(serial()) for _ in range(3))
        self._fork_join = _tile_kernel(threads, passes=1, number=100, repeat=3)
        self.quickest_call = min(self._fork_join())

    def disturbed(self) -> bool:
        call = statistics.median(self._fork_join())
        self.quickest_call = min(self.quickest_call, call)
        return call > SLOW_JOIN * self.quickest_call or statistics.median(self._parallel()) > SLOW * self.one_tile


@functools.cache
def _probe(threads: int) -> ParallelProbe:
    return ParallelProbe(threads)


def prepare() -> None:
    """Build and calibrate the probe of this process's pool now (a runner worker's start), not
    within the timeout of the first candidate."""
    if pool_threads() > 1:
        _probe(pool_threads())


class SteadyTimer:
    """Calls a measurement of a CPU function between two undisturbed probes, retrying `pause` seconds
    apart for up to `patience` seconds; then the last measurement counts, whatever the probes say.

    A machine disturbed for all that time is busy (other work on it), not in a spell: the timer then
    measures without waiting until a probe finds it calm again, so that a busy laptop tunes as fast
    as before, only not as steadily."""

    def __init__(self, patience: float = 2.0, pause: float = 0.3):
        self.patience, self.pause = patience, pause
        self.disturbances = 0
        self.waiting = True

    def __call__(self, measure: Callable[[], T]) -> T:
        threads = pool_threads()
        with apart_from_workers():
            if threads < 2:
                return measure()
            probe = _probe(threads)
            deadline = time.monotonic() + (self.patience if self.waiting else 0.0)
            result: T | None = None
            while True:
                if not probe.disturbed():
                    result = measure()
                    if not probe.disturbed():
                        self.waiting = True
                        return result
                self.disturbances += 1
                if time.monotonic() >= deadline:
                    break
                time.sleep(self.pause)
            self.waiting = False
            return result if result is not None else measure()


@functools.cache
def timer() -> SteadyTimer:
    """This process's steady timer (it remembers whether the machine is busy)."""
    return SteadyTimer()
