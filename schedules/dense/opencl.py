"""Matmul, dense and batch_matmul on OpenCL GPUs (Mali, Adreno): register tiles per work item.

The computation, its workload, matcher and numpy reference are the CPU templates' own
(`schedules.dense`); only the schedule differs. After the same canonical rewrite to
(s, i, j, k) (so the template's PrimFunc and a model's fused one are scheduled alike):

1. M, N and K are padded to whole tiles (`pad_einsum`) where they do not divide, so the
   kernel has no guards in its loops (197 rows included); the pad copies and whatever of
   the epilogue does not fuse become small elementwise kernels of their own;
2. each work item computes an mr x nr tile of C (`tile_i`/`tile_j`: (work groups, threads,
   per-thread)); the work group is ty x tx threads, bound to threadIdx.y/x, the batch axis
   to blockIdx.z, the tiles of a work group to blockIdx.y/x (x along N: neighbouring
   threads read neighbouring columns of B and write neighbouring columns of C);
3. per step of `ku` along K the work item copies its ku-wide piece of A and B into
   registers (`cache_read` "local") with vector loads of `vector` elements (float4,
   float8) along the contiguous axis, then runs the ku x mr x nr multiply-adds unrolled,
   nr in vectors of `vector` lanes;
4. the accumulators (`cache_write` "local") are stored with vector stores, the epilogue
   (bias, GELU, residual add) folded into that store (`fuse_epilogue`).

`__local` memory only on Adreno, and only as a knob (`local_b`: the work group's B tile per k
step fetched together, then read from local memory): on Mali local memory is main memory, so
it would only add copies and barriers. Every config keeps within the GPU spec: threads per work group at
most the preset's, the accumulators at most half a Mali thread's registers and all
per-thread arrays at most all of them.
"""
from __future__ import annotations

import math
from typing import Any

from tvm import s_tir

from schedules.dense.compute import BatchMatmulCompute, DenseCompute, MatmulCompute
from schedules.matching import anchor_block, canonicalize_gemm, fuse_epilogue, pad_gemm, top_blocks
from schedules.opencl_common import (VECTOR_WIDTHS, bind_elementwise, gpu_of, pow2_floor, pow2_work_group,
                                     register_budget, vectorize_inner)
from schedules.space import Config, ConfigSpace
from schedules.template import Workload
from targets import Device


def register_words(mr: int, nr: int, ku: int) -> int:
    """32-bit words of a work item's arrays: accumulators, its A piece and its B piece."""
    return mr * nr + mr * ku + ku * nr


class OpenCLGemmSchedule:
    """The OpenCL schedule, mixed in before a GEMM computation (`schedules.dense.compute`)."""

    family = "opencl"
    version = 1

    def define_space(self, wl: Workload, device: Device) -> ConfigSpace:
        gpu = gpu_of(device)
        threads = gpu.max_threads_per_work_group
        space = ConfigSpace()
        space.define_split("tile_i", wl["M"], 3, max_factor=(min(threads, 64), 8))  # (groups, ty, mr)
        space.define_split("tile_j", wl["N"], 3, max_factor=(min(threads, 128), 8))  # (groups, tx, nr)
        space.define_split("tile_k", wl["K"], 2, max_factor=16)  # (k0, ku): ku unrolled
        space.define_knob("vector", list(VECTOR_WIDTHS))
        # B's k step shared by the work group in __local memory: Adreno only (on Mali it is main memory)
        space.define_knob("local_b", [False, True] if gpu.family == "adreno" else [False])
        space.add_constraint(f"B's tile within {gpu.local_memory_bytes} bytes of local memory",
                             lambda c: not c["local_b"] or 4 * c["tile_k"][1] * c["tile_j"][1] * c["tile_j"][2] <= gpu.local_memory_bytes)
        space.add_constraint("every thread fetches its share of B's tile (no guarded fetch: TVM 0.27 then drops the barriers)",
                             lambda c: not c["local_b"] or _whole_fetch(c))
        budget = register_budget(gpu)
        space.add_constraint(f"work group within {threads} threads",
                             lambda c: c["tile_i"][1] * c["tile_j"][1] <= threads)
        space.add_constraint(f"accumulators within {budget // 2} registers",
                             lambda c: c["tile_i"][2] * c["tile_j"][2] <= budget // 2)
        space.add_constraint(f"per-thread arrays within {budget} registers",
                             lambda c: register_words(c["tile_i"][2], c["tile_j"][2], c["tile_k"][1]) <= budget)
        space.add_constraint("vector width divides the columns per thread", lambda c: c["tile_j"][2] % c["vector"] == 0)
        return space

    def default_values(self, wl: Workload, device: Device, space: ConfigSpace) -> dict[str, Any]:
        """A 4 x 4 tile (shrunk for small shapes) with float4 loads and stores, k unrolled by 4, and the
        work group of the rule (`schedules.workgroup`) for the tiles' global size, in powers of two."""
        gpu = gpu_of(device)
        mr, nr = min(4, pow2_floor(wl["M"])), min(4, pow2_floor(wl["N"]))
        ku = min(4, pow2_floor(wl["K"]))
        tx, ty = pow2_work_group([-(-wl["N"] // nr), -(-wl["M"] // mr)], gpu)
        return {
            "tile_i": (-(-wl["M"] // (ty * mr)), ty, mr),
            "tile_j": (-(-wl["N"] // (tx * nr)), tx, nr),
            "tile_k": (-(-wl["K"] // ku), ku),
            "vector": min(4, nr),
            "local_b": False,
        }

    def apply(self, sch: s_tir.Schedule, wl: Workload, cfg: Config, device: Device) -> None:
        gpu = gpu_of(device)
        _, ty, mr = cfg["tile_i"]
        _, tx, nr = cfg["tile_j"]
        _, ku = cfg["tile_k"]
        vector = cfg["vector"]
        block = anchor_block(sch)
        if wl["M"] % (ty * mr) or wl["N"] % (tx * nr) or wl["K"] % ku:
            pad_gemm(sch, block, ty * mr, tx * nr, ku)
        canonicalize_gemm(sch, block)

        s, i, j, k = sch.get_loops(block)
        i0, i1, i2 = sch.split(i, [None, ty, mr])
        j0, j1, j2 = sch.split(j, [None, tx, nr])
        k0, k1 = sch.split(k, [None, ku])
        sch.reorder(s, i0, j0, i1, j1, k0, k1, i2, j2)
        sch.bind(s, "blockIdx.z")
        sch.bind(i0, "blockIdx.y")
        sch.bind(j0, "blockIdx.x")
        sch.bind(i1, "threadIdx.y")
        sch.bind(j1, "threadIdx.x")

        write_back = sch.cache_write(block, 0, "local")
        sch.reverse_compute_at(write_back, j1)
        fuse_epilogue(sch, write_back)
        pieces = []
        for index in (0, 1):  # A's and B's piece of this k step, in registers, loaded in vectors
            piece = sch.cache_read(block, index, "local")
            sch.compute_at(piece, k0)
            own = sch.get_loops(piece)[len(sch.get_loops(block)) - 3:]  # below k0 (none when the piece is one element)
            if own:
                vectorize_inner(sch, own[-1], vector)
            pieces.append(piece)
        if cfg["local_b"]:  # the work group's B tile of this k step, fetched by all its threads together
            shared = sch.cache_read(pieces[1], 0, "shared")
            sch.compute_at(shared, k0)
            own = sch.get_loops(shared)[len(sch.get_loops(block)) - 3:]
            fused = sch.fuse(*own) if len(own) > 1 else own[0]
            lanes = math.gcd(vector, int(sch.get(fused).extent))
            *_, row, col, lane = sch.split(fused, [None, ty, tx, lanes])
            sch.bind(row, "threadIdx.y")
            sch.bind(col, "threadIdx.x")
            sch.vectorize(lane)
        sch.unroll(k1)
        sch.unroll(i2)
        vectorize_inner(sch, j2, vector)
        init = sch.decompose_reduction(block, k0)
        init_loops = sch.get_loops(init)
        sch.unroll(init_loops[-2])
        vectorize_inner(sch, init_loops[-1], vector)
        *_, rows, cols = sch.get_loops(write_back)
        sch.unroll(rows)
        vectorize_inner(sch, cols, vector)
        for other in top_blocks(sch):  # pad copies, a model's prologue (a mask's cast), an unfused epilogue
            bind_elementwise(sch, other, gpu)


def _whole_fetch(c) -> bool:
    """Whether B's tile of a k step (ku x tx*nr) splits into whole vectors for each of the ty*tx threads."""
    (_, ty, _), (_, tx, nr), (_, ku) = c["tile_i"], c["tile_j"], c["tile_k"]
    elements = ku * tx * nr
    return elements % (ty * tx * math.gcd(c["vector"], elements)) == 0


class MatmulOpenCL(OpenCLGemmSchedule, MatmulCompute):
    name = "matmul.opencl"


class DenseOpenCL(OpenCLGemmSchedule, DenseCompute):
    name = "dense.opencl"


class BatchMatmulOpenCL(OpenCLGemmSchedule, BatchMatmulCompute):
    name = "batch_matmul.opencl"
