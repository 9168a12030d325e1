"""What a device is: the one place that says which TVM target, threads and toolchain to use."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import tvm

from targets.cpu_spec import Core, CpuSpec, host_cpu_spec
from targets.gpu_spec import GpuSpec


@dataclass(frozen=True)
class Device:
    """A tuning and deployment target.

    `target` is TVM's dict form (TVM 0.27 rejects "llvm -mcpu=..." strings). `family`
    picks the template variant (`cpu` or `opencl`). `cross_compiler` names the compiler
    driver used to link exported libraries when the device is not this machine. `cpu`
    describes the cores that run the kernels (of a GPU device: its host's); `gpu` a GPU
    device's launch limits. `conv_layout` is the data layout the lowering gives the
    convolutions: "NCHWc" blocks channels for the templates (`schedules.conv2d.channel_block`; the
    OpenCL ones read a block of 16 or 8 in float4s), "NCHW" keeps TVM's own layout.
    """

    name: str
    target: dict[str, Any]
    num_threads: int
    family: str = "cpu"
    host: dict[str, Any] | None = None
    cross_compiler: str | None = None
    rpc_key: str | None = None
    description: str = ""
    cpu: CpuSpec | None = None
    gpu: GpuSpec | None = None
    conv_layout: str = "NCHWc"

    @cached_property
    def tvm_target(self) -> tvm.target.Target:
        if self.host is None:
            return tvm.target.Target(self.target)
        return tvm.target.Target(self.target, host=self.host)

    @cached_property
    def cpu_spec(self) -> CpuSpec:
        """The CPU that runs the kernels: the preset's, or one described from LLVM's feature list."""
        if self.cpu is not None:
            return self.cpu
        return host_cpu_spec(self.target if self.family == "cpu" else self.host or {}, self.num_threads)

    @property
    def core(self) -> Core:
        """The core kernels are shaped for (the big one of a big.LITTLE CPU)."""
        return self.cpu_spec.core

    @property
    def vector_bits(self) -> int:
        """SIMD register width in bits of the CPU that runs the kernels (512 with AVX-512, 128 NEON)."""
        return self.core.vector_bits

    def vector_lanes(self, dtype: str) -> int:
        """How many elements of `dtype` one SIMD register holds."""
        return max(1, self.vector_bits // tvm.DataType(dtype).bits)

    @property
    def runtime_kind(self) -> str:
        """TVM's name of the runtime device the kernels run on: "cpu" or "opencl"."""
        return "opencl" if self.family == "opencl" else "cpu"

    def runtime_device(self, session=None) -> tvm.runtime.Device:
        """The runtime device to run this device's modules on: here, or on an RPC session's device
        (`remote.cl(0)` for OpenCL). Here, an OpenCL device loads TVM's OpenCL runtime first
        (`targets.opencl_runtime`; RuntimeError when it is not installed)."""
        if session is not None:
            return session.device(self.runtime_kind, 0)
        if self.runtime_kind == "opencl":
            from targets.opencl_runtime import require_opencl_runtime

            require_opencl_runtime()
        return tvm.device(self.runtime_kind, 0)

    def driven_from_this_machine(self) -> Device:
        """The same device with this machine as its host (host code for this CPU, no cross compiler):
        a GPU preset run through PoCL here, or through an x86 RPC server standing in for the board."""
        from targets.tvm_compat import host_cpu_name

        if self.family == "cpu":
            raise ValueError(f"{self.name} is a CPU: its kernels are host code (use the host preset to run here)")
        return dataclasses.replace(self, host={"kind": "llvm", "mcpu": host_cpu_name()}, cross_compiler=None)

    def export_library(self, executable: Any, path: str) -> None:
        """Write a compiled module as a shared library this device loads (cross-linked if need be)."""
        if self.cross_compiler:
            from tvm.support import cc

            executable.export_library(path, fcompile=cc.cross_compiler(self.cross_compiler))
        else:
            executable.export_library(path)

    def __hash__(self) -> int:
        return hash(self.name)
