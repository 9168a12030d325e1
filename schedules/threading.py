"""Thread count and core affinity as tuning knobs, for CPUs with big and little cores.

On a big.LITTLE phone the fastest kernel may run on the 4 big cores only, on all 8, or
(for memory-bound ones) on the little cores; TVM's `runtime.config_threadpool(mode,
threads)` sets both (mode 1: big cores, -1: little cores, 0: let the OS choose). Spaces
of devices with asymmetric cores get these two knobs; the runner applies them before
timing a candidate and the log records them with the rest of the config.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schedules.space import ConfigSpace
from targets import Device

#: Fewest elements (output elements times reduction steps) per parallel task. Waking
#: TVM's thread pool costs about 1.6 us here: a 32k-element add takes 1.9 us as one
#: task and 2.7 us as two, a 128x256 layer norm 38 us as one and 21 us as two. Below
#: twice this, a function runs as one task on the calling thread (a parallel loop of
#: extent 1 launches nothing).
MIN_TASK_ELEMENTS = 16384

#: knob value -> TVM's thread pool mode
AFFINITY_MODES = {"big": 1, "little": -1, "any": 0}


def asymmetric(device: Device) -> bool:
    return device.family == "cpu" and device.cpu_spec.asymmetric


def define_threading(space: ConfigSpace, device: Device) -> None:
    """Add `threads` and `affinity` knobs when the device has big and little cores."""
    if not asymmetric(device):
        return
    big, little = device.cpu_spec.big_cores, device.cpu_spec.little_cores
    space.define_knob("threads", sorted({1, 2, little, big, big + little}))
    space.define_knob("affinity", list(AFFINITY_MODES))
    limits = {"big": big, "little": little, "any": big + little}
    space.add_constraint("no more threads than cores of the chosen kind", lambda c: c["threads"] <= limits[c["affinity"]])


def threading_defaults(device: Device) -> dict[str, Any]:
    """All big cores: the usual best for compute-bound kernels."""
    return {"threads": device.cpu_spec.big_cores, "affinity": "big"} if asymmetric(device) else {}


def thread_pool_setting(config: Mapping[str, Any]) -> tuple[int, int] | None:
    """(mode, threads) for `runtime.config_threadpool`, or None when the config has no threading knobs."""
    if "threads" not in config:
        return None
    return AFFINITY_MODES[config["affinity"]], int(config["threads"])


def pays_for_threads(work: int) -> bool:
    """Whether `work` (output elements times reduction steps) is worth waking the thread pool for.

    Below two tasks' worth a kernel runs on the calling thread: a squeeze-excite 1x1 conv on
    a 1x1 map (15k multiply-adds) took 0.27 us so and 0.81 us in parallel, and a parallel
    call's fork and join doubles for seconds at a time on a shared machine.
    """
    return work >= 2 * MIN_TASK_ELEMENTS
