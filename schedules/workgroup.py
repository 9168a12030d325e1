"""Rule-based work-group sizes for OpenCL kernels: the default of every OpenCL template's
work-group knob, and the thread extent of the GPU default schedule (`schedules.default.gpu`).

Given a kernel's global size (threads per dimension, x first) and the GPU's spec, the rule
picks the threads per work group per dimension:

1. each divides its dimension of the global size (no thread idles behind a bound check),
   and together they stay within the GPU's threads per work group;
2. their product is a multiple of the lock-step width (Mali's warp, Adreno's wave), so no
   lane of a warp idles. When no divisor allows it, the global size is padded, the least
   threads in all, so that one does (7x7 with warps of 16 becomes 8x8; the kernel guards the
   padded threads); a launch with fewer threads in all than one warp is one work group;
3. among those: enough work groups to keep every shader core busy (two per core, as TNN's
   `AdrenoLocalSize2D` asks of later Adrenos; fewer only when the whole launch has fewer,
   then as many as can be), then the size closest to the vendor's starting point
   (`GpuSpec.preferred_work_group`: 64 threads on Mali, two waves on Adreno), then the
   aspect of the global size (each dimension cut by the same fraction, as TNN keeps
   `lws[0] < lws[1]` when `gws[0] < gws[1]`), then the larger.

MACE's `Default3DLocalWS` instead fills one dimension up to the kernel's largest work group
and sizes the rest from the cache size; TNN's rule tries dimensions in a fixed order and
gives up (lets the driver choose) where no divisor fits. This rule scores every divisor
combination instead, which is cheap: work groups hold at most 1024 threads.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

from targets.gpu_spec import GpuSpec


@dataclass(frozen=True)
class WorkGroup:
    """Threads per work group per dimension, and the global size they tile: the requested one,
    or padded so that a lock-step-aligned work group tiles it."""

    local: tuple[int, ...]
    global_size: tuple[int, ...]
    requested: tuple[int, ...]

    @property
    def threads(self) -> int:
        return math.prod(self.local)

    @property
    def groups(self) -> int:
        return math.prod(g // l for g, l in zip(self.global_size, self.local))

    @property
    def padded(self) -> bool:
        return self.global_size != self.requested


def work_group(global_size: Sequence[int], gpu: GpuSpec) -> WorkGroup:
    """The work group for a launch of `global_size` threads (1 to 3 dimensions, x first) on `gpu`."""
    size = tuple(int(g) for g in global_size)
    if not 1 <= len(size) <= 3 or min(size) < 1:
        raise ValueError(f"a global size has 1 to 3 positive dimensions, not {list(size)}")
    if math.prod(size) <= gpu.lockstep_width and math.prod(size) <= gpu.max_threads_per_work_group:
        return WorkGroup(size, size, size)  # fewer threads than one warp: one work group
    for padded in _paddings(size, gpu.lockstep_width):
        best = _best(padded, gpu)
        if best is not None:
            return WorkGroup(best, padded, size)
    raise AssertionError(f"no work group for {size} on {gpu.name}")  # a padded size always has one


def _paddings(size: tuple[int, ...], lockstep: int) -> list[tuple[int, ...]]:
    """The global size as it is, then padded so that a lock-step-aligned work group tiles it, least
    waste first: dimension i rounded up to a multiple of p_i, for every split p of the lock-step
    width into factors (7x7 with warps of 16 becomes 8x8, which wastes less than 16x7)."""
    options = {}
    for factors in _splits(lockstep, len(size)):
        padded = tuple(-(-extent // f) * f for extent, f in zip(size, factors))
        if padded != size:
            options.setdefault(padded, (math.prod(padded), sum(p != s for p, s in zip(padded, size))))
    return [size] + sorted(options, key=lambda padded: (*options[padded], padded))


def _splits(number: int, parts: int) -> list[tuple[int, ...]]:
    """Every way to write `number` as an ordered product of `parts` factors."""
    if parts == 1:
        return [(number,)]
    return [(d, *rest) for d in range(1, number + 1) if number % d == 0 for rest in _splits(number // d, parts - 1)]


def _best(size: tuple[int, ...], gpu: GpuSpec) -> tuple[int, ...] | None:
    """The best lock-step-aligned divisor combination of `size` (None when there is none)."""
    limit = gpu.max_threads_per_work_group
    divisors = [[d for d in range(1, min(extent, limit) + 1) if extent % d == 0] for extent in size]
    best, best_key = None, None
    for local in product(*divisors):
        threads = math.prod(local)
        if threads > limit or threads % gpu.lockstep_width:
            continue
        key = _score(local, size, gpu)
        if best_key is None or key > best_key:
            best, best_key = local, key
    return best


def _score(local: tuple[int, ...], size: tuple[int, ...], gpu: GpuSpec) -> tuple:
    threads = math.prod(local)
    groups = math.prod(g // l for g, l in zip(size, local))
    fractions = [math.log2(l / g) for l, g in zip(local, size)]
    mean = sum(fractions) / len(fractions)
    aspect_error = sum(abs(f - mean) for f in fractions)
    return (min(groups, gpu.min_work_groups), -round(abs(math.log2(threads / gpu.preferred_work_group)), 6),
            -round(aspect_error, 6), threads)
