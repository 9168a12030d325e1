"""What a CPU core offers a kernel: vector registers, FMA pipes, caches; and a CPU's clusters.

The templates size their register tiles from this (how many accumulators fit beside the
operands), the tuner's spaces leave out tiles that would spill, and the static check of
ARM kernels (`autotune.static_check`) compares LLVM's predicted FLOP per cycle with the
core's peak. Figures are from the vendors' software optimization guides; x86 hosts are
described from LLVM's feature list (their widest vector extension), so any CPU LLVM knows
gets a description.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from targets.cpu_kind import cpu_kind


@dataclass(frozen=True)
class Core:
    """One core's vector unit and caches.

    `accumulators` is how many vector registers a kernel's accumulator tile may take: the
    rest hold the operands (NEON GEMMs keep an 8x12 tile, 24 of 32 registers; on AVX-512
    16 of 32 was measured best here, 28 spilled; on the in-order Cortex-A55, whose LLVM
    scheduling model interleaves more, 16 spilled less than 24 at the same predicted
    FLOP per cycle). `mca_model` is the LLVM CPU whose
    scheduling model llvm-mca uses for this core (LLVM 19 gives the Cortex-A76 the
    Cortex-A57 model, half the A76's FMA rate; the Neoverse N1 is the A76's design).
    `fma_memory_operand`: an FMA can read one operand from memory (x86), so unrolled
    reduction steps need no registers for their weights; on NEON every operand is loaded
    into a register first, and LLVM hoists the loads of unrolled steps.
    `in_order`: the core issues in order (Cortex-A53, A55). LLVM then unrolls every loop it can
    (partial and runtime unrolling for in-order AArch64 cores) and its scheduling model
    interleaves the copies, which a heavy epilogue (SiLU's exp) pays in spilled registers.
    """

    name: str
    vector_registers: int
    vector_bits: int
    accumulators: int
    fma_per_cycle: float  # vector FMA instructions issued per cycle
    fma_latency: int  # cycles
    l1d_kib: int
    l2_kib: int
    mca_model: str | None = None
    fma_memory_operand: bool = False
    in_order: bool = False

    def lanes(self, dtype_bits: int = 32) -> int:
        return max(1, self.vector_bits // dtype_bits)

    def peak_flops_per_cycle(self, dtype_bits: int = 32) -> float:
        """Two FLOP per lane per FMA."""
        return 2 * self.lanes(dtype_bits) * self.fma_per_cycle

    def registers_per_vector(self, lanes: int, dtype_bits: int = 32) -> int:
        """Vector registers that one vector of `lanes` elements takes (a 16-float block: 1 on AVX-512, 4 on NEON)."""
        return max(1, -(-lanes // self.lanes(dtype_bits)))


@dataclass(frozen=True)
class Cluster:
    """Cores of one kind: a big.LITTLE CPU has two."""

    core: Core
    count: int


@dataclass(frozen=True)
class CpuSpec:
    """A CPU's clusters, the fastest first (kernels are shaped for its cores)."""

    clusters: tuple[Cluster, ...]

    @property
    def core(self) -> Core:
        return self.clusters[0].core

    @property
    def big_cores(self) -> int:
        return self.clusters[0].count

    @property
    def little_cores(self) -> int:
        """Cores of the slower clusters (0 on a CPU with one kind of core)."""
        return sum(cluster.count for cluster in self.clusters[1:])

    @property
    def asymmetric(self) -> bool:
        return self.little_cores > 0


def _neon(name: str, fma_per_cycle: float, fma_latency: int, l1d_kib: int, l2_kib: int,
          mca_model: str | None = None, accumulators: int = 24, in_order: bool = False) -> Core:
    return Core(name, vector_registers=32, vector_bits=128, accumulators=accumulators, fma_per_cycle=fma_per_cycle,
                fma_latency=fma_latency, l1d_kib=l1d_kib, l2_kib=l2_kib, mca_model=mca_model or name, in_order=in_order)


#: ARM cores by LLVM CPU name (Arm's software optimization guides: Q-form FMLA issue rate and latency).
ARM_CORES: dict[str, Core] = {
    "cortex-a53": _neon("cortex-a53", 0.5, 8, 32, 512, in_order=True),
    "cortex-a55": _neon("cortex-a55", 1, 4, 32, 256, accumulators=16, in_order=True),
    "cortex-a72": _neon("cortex-a72", 1, 7, 32, 1024),
    "cortex-a76": _neon("cortex-a76", 2, 4, 64, 512, mca_model="neoverse-n1"),
    "generic": _neon("generic", 1, 4, 32, 512),
}

#: x86 vector extensions: (registers, accumulators, FMA issue per cycle).
X86_VECTOR_UNITS: dict[str, tuple[int, int, float]] = {
    "avx512": (32, 16, 2), "avx2": (16, 12, 2), "avx": (16, 12, 1), "sse2": (16, 12, 1),
}


def arm_cpu_spec(clusters: Mapping[str, int]) -> CpuSpec:
    """An ARM CPU from {LLVM core name: core count}, fastest cluster first."""
    return CpuSpec(tuple(Cluster(ARM_CORES[name], count) for name, count in clusters.items()))


def host_cpu_spec(target: Mapping[str, Any], cores: int) -> CpuSpec:
    """An x86 (or other LLVM) CPU described from its widest vector extension."""
    kind = cpu_kind(target)
    name = str(target.get("mcpu", "generic"))
    if kind is None or kind.arch != "x86_64":
        core = ARM_CORES.get(name, ARM_CORES["generic"]) if kind and kind.arch == "aarch64" else _neon(name, 1, 4, 32, 512)
        return CpuSpec((Cluster(core, cores),))
    registers, accumulators, fma = X86_VECTOR_UNITS[kind.vector_isa]
    core = Core(name, vector_registers=registers, vector_bits=kind.vector_bits, accumulators=accumulators,
                fma_per_cycle=fma, fma_latency=4, l1d_kib=32, l2_kib=1024, mca_model=name, fma_memory_operand=True)
    return CpuSpec((Cluster(core, cores),))
