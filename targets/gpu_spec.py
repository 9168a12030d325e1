"""What a mobile GPU allows a kernel: work-group size, registers, local memory; and how it runs threads.

The launch check (`targets.kernel_launch`) compares every compiled OpenCL kernel with
these limits, so a kernel a phone would refuse (CL_INVALID_WORK_GROUP_SIZE, out of local
memory) fails at compile time, by name, and never costs a trial. The work-group rule
(`schedules.workgroup`) shapes work groups from the lock-step width and the core count.
A preset names one representative GPU of its family; its figures are that GPU's (from
the vendors' OpenCL guides and what their drivers report), and a board with another GPU
of the family gets a spec of its own through `mali` or `adreno`.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Threads a Mali core issues in lock-step (its warp width), by model. Arm's Mali GPU best
#: practices: quad-wide on the first Bifrost cores, 8 wide on the later ones, 16 on Valhall.
MALI_LOCKSTEP: dict[str, int] = {
    "G31": 4, "G51": 4, "G71": 4, "G72": 4,  # Bifrost, 4-wide
    "G52": 8, "G76": 8,  # Bifrost, 8-wide
    "G57": 16, "G68": 16, "G77": 16, "G78": 16, "G310": 16, "G510": 16, "G610": 16, "G710": 16,  # Valhall
}
VALHALL = frozenset({"G57", "G68", "G77", "G78", "G310", "G510", "G610", "G710"})


@dataclass(frozen=True)
class GpuSpec:
    """One GPU's launch limits and thread organisation.

    `lockstep_width`: threads that execute together (Mali's warp, Adreno's wave); a work
    group that is not a multiple of it leaves lanes idle. `registers_per_thread`: the
    32-bit registers a thread may hold before the compiler spills (Mali: 64; None where
    more registers only lower occupancy, as on Adreno, whose driver then shrinks the
    kernel's largest work group). `local_memory_bytes`: OpenCL `__local` memory per work
    group (on Mali it is carved from main memory, so tiling into it does not pay).
    `preferred_work_group`: the work-group size the vendor's guide starts from.
    `max_launches_per_measurement`: kernel launches one timed repeat may queue before it waits for
    the device (MetaSchedule's 1 s `min_repeat_ms` queued thousands on a Mali-G610, whose driver
    then failed with CL_OUT_OF_HOST_MEMORY); the runners size `number` to stay within it.
    """

    name: str
    family: str  # "mali" or "adreno"
    architecture: str  # "bifrost", "valhall", "adreno6xx", "adreno7xx"
    shader_cores: int
    lockstep_width: int
    max_threads_per_work_group: int
    local_memory_bytes: int
    registers_per_thread: int | None
    preferred_work_group: int
    max_launches_per_measurement: int = 256

    def __post_init__(self) -> None:
        if self.max_threads_per_work_group % self.lockstep_width:
            raise ValueError(f"{self.name}: {self.max_threads_per_work_group} threads per work group is not a multiple "
                             f"of its lock-step width {self.lockstep_width}")
        if not self.lockstep_width <= self.preferred_work_group <= self.max_threads_per_work_group:
            raise ValueError(f"{self.name}: preferred work group {self.preferred_work_group} outside "
                             f"[{self.lockstep_width}, {self.max_threads_per_work_group}]")

    @property
    def min_work_groups(self) -> int:
        """Work groups a launch needs to keep every core busy: two per core, so that one core's
        groups overlap (TNN doubles Adreno's compute units from the A540 on for the same reason)."""
        return 2 * self.shader_cores

    def target_limits(self) -> dict[str, int]:
        """The limits in TVM's target attributes, which dlight's GPU rules and TVM's passes read."""
        return {"max_num_threads": self.max_threads_per_work_group,
                "max_threads_per_block": self.max_threads_per_work_group,
                "max_shared_memory_per_block": self.local_memory_bytes}


def mali(model: str, cores: int, max_threads_per_work_group: int) -> GpuSpec:
    """A Mali GPU by model name ("G76") and core count (the MPn of "Mali-G76 MP10").

    Every Bifrost and Valhall core gives a thread 64 registers and reports 32 KiB of local memory.
    Arm's guides start from work groups of 64 threads.
    """
    if model not in MALI_LOCKSTEP:
        raise ValueError(f"unknown Mali model {model!r}; known: {', '.join(MALI_LOCKSTEP)}")
    return GpuSpec(f"Mali-{model} MP{cores}", "mali", "valhall" if model in VALHALL else "bifrost", cores,
                   lockstep_width=MALI_LOCKSTEP[model], max_threads_per_work_group=max_threads_per_work_group,
                   local_memory_bytes=32 * 1024, registers_per_thread=64, preferred_work_group=64)


def adreno(model: int, compute_units: int, wave_size: int, max_threads_per_work_group: int) -> GpuSpec:
    """An Adreno GPU by model number (640), compute units (its shader processors) and wave size.

    Qualcomm's OpenCL guide: waves of 64 fibers at full precision on the 6xx and 7xx (128 at half
    precision), 32 KiB of on-chip local memory. Work groups start from two waves (as TNN's rule).
    """
    generation = f"adreno{model // 100}xx"
    return GpuSpec(f"Adreno {model}", "adreno", generation, compute_units, lockstep_width=wave_size,
                   max_threads_per_work_group=max_threads_per_work_group, local_memory_bytes=32 * 1024,
                   registers_per_thread=None, preferred_work_group=min(2 * wave_size, max_threads_per_work_group))
