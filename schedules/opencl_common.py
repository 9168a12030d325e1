"""What the OpenCL templates (`schedules/*/opencl.py`) share: the device's GPU spec and register
budget, vector accesses along a loop, one thread per element for the blocks around an anchor, and
the rule's work group (`schedules.workgroup`) in the powers of two their split knobs take.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from tvm import s_tir
from tvm.s_tir.schedule import LoopRV, SBlockRV

from schedules.workgroup import work_group
from targets import Device
from targets.gpu_spec import GpuSpec

#: Registers a thread may give its per-thread arrays where the spec sets no limit (Adreno).
UNLIMITED_REGISTERS = 128
#: Vector widths of loads and stores (float, float2, float4, float8).
VECTOR_WIDTHS = (1, 2, 4, 8)


def gpu_of(device: Device) -> GpuSpec:
    """The device's GPU spec; ValueError for a CPU preset (the OpenCL templates need a GPU's limits)."""
    if device.gpu is None:
        raise ValueError(f"{device.name} is no GPU: the OpenCL templates need a GPU preset")
    return device.gpu


def register_budget(gpu: GpuSpec) -> int:
    """32-bit registers a work item's arrays may take: the spec's (64 on Mali), else `UNLIMITED_REGISTERS`."""
    return gpu.registers_per_thread or UNLIMITED_REGISTERS


def pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def pow2_work_group(global_size: Sequence[int], gpu: GpuSpec) -> tuple[int, ...]:
    """The rule's work group for `global_size`, each dimension floored to a power of two (the split
    knobs' threads are powers of two). Flooring keeps every power of two that divided a dimension, so a
    multiple of the (power-of-two) lock-step width stays one, and the limit stays kept."""
    return tuple(pow2_floor(t) for t in work_group(global_size, gpu).local)


def vectorize_inner(sch: s_tir.Schedule, loop: LoopRV, vector: int) -> None:
    """Vector accesses of gcd(vector, extent) lanes along `loop` (the rest of it unrolled)."""
    extent = int(sch.get(loop).extent)
    lanes = math.gcd(vector, extent)
    if lanes == 1:
        sch.unroll(loop)
        return
    outer, inner = sch.split(loop, [None, lanes])
    sch.unroll(outer)
    sch.vectorize(inner)


def bind_elementwise(sch: s_tir.Schedule, block: SBlockRV, gpu: GpuSpec) -> None:
    """One thread per element of a top-level block (a pad copy, an unfused epilogue), work groups by the rule;
    nothing for a block already bound (the anchor)."""
    loops = sch.get_loops(block)
    if any(sch.get(loop).thread_binding is not None for loop in loops):
        return
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    threads = work_group([int(sch.get(fused).extent)], gpu).local[0]
    groups, lanes = sch.split(fused, [None, threads])
    sch.bind(groups, "blockIdx.x")
    sch.bind(lanes, "threadIdx.x")
