"""Device presets. Nothing else in the project hard-codes a target."""
from __future__ import annotations

from collections.abc import Callable

import psutil

from targets.cpu_spec import arm_cpu_spec, host_cpu_spec
from targets.device import Device
from targets.gpu_spec import GpuSpec, adreno, mali
from targets.tvm_compat import host_cpu_name

AARCH64_GCC = "aarch64-linux-gnu-gcc"


def physical_cores() -> int:
    """Physical cores: TVM's own default halves the hardware threads, which wastes cores."""
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def host() -> Device:
    """The machine we run on, with its real LLVM CPU name.

    `mcpu: native` is accepted by TVM 0.27 but silently means generic x86-64, so the
    name is asked from LLVM instead.
    """
    cpu = host_cpu_name()
    cores = physical_cores()
    target = {"kind": "llvm", "mcpu": cpu, "num-cores": cores}
    return Device(
        name="host",
        target=target,
        num_threads=cores,
        description=f"this machine ({cpu}, {cores} cores)",
        cpu=host_cpu_spec(target, cores),
    )


def arm_cpu(name: str, mcpu: str | None, description: str, clusters: dict[str, int]) -> Device:
    """A 64-bit ARM CPU with NEON, cross-compiled with aarch64-linux-gnu-gcc.

    `clusters` maps core names to counts, the fast cluster first; kernels run on it by default.
    """
    cpu = arm_cpu_spec(clusters)
    target = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"], "num-cores": cpu.big_cores + cpu.little_cores}
    if mcpu:
        target["mcpu"] = mcpu
    return Device(
        name=name,
        target=target,
        num_threads=cpu.big_cores,
        cross_compiler=AARCH64_GCC,
        rpc_key=name,
        description=description,
        cpu=cpu,
    )


def mobile_gpu(name: str, target: dict, gpu: GpuSpec, description: str) -> Device:
    """An OpenCL GPU driven from a 64-bit ARM host; its launch limits go into the TVM target."""
    host_cpu = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}
    return Device(
        name=name,
        target={**target, **gpu.target_limits()},
        num_threads=1,
        family="opencl",
        host=host_cpu,
        cross_compiler=AARCH64_GCC,
        rpc_key=name,
        description=f"{description}; limits of the {gpu.name}",
        cpu=arm_cpu_spec({"generic": 4}),
        gpu=gpu,
        # The CPUs' blocked layout (blocks of 16 or 8 channels): the OpenCL conv templates read a
        # block in float4s, so the model's layout transforms and weight packs are the CPUs' own.
        conv_layout="NCHWc",
    )


#: TVM's Mali target: warp size 1 keeps TVM's cross-thread reductions in local memory (OpenCL
#: has no portable warp shuffle); the lock-step width is the spec's business.
MALI = {"kind": "opencl", "device": "mali", "keys": ["mali", "opencl", "gpu"], "thread_warp_size": 1}
#: TVM's Adreno tag, with buffers (its texture variant generates invalid OpenCL C for conv2d in 0.27).
ADRENO = {"tag": "qcom/adreno-opencl"}


PRESETS: dict[str, Callable[[], Device]] = {
    "host": host,
    "aarch64": lambda: arm_cpu("aarch64", None, "generic 64-bit ARM with NEON", {"generic": 4}),
    "cortex-a53": lambda: arm_cpu("cortex-a53", "cortex-a53", "in-order Cortex-A53 (Raspberry Pi 3, older phones)",
                                  {"cortex-a53": 4}),
    "cortex-a55": lambda: arm_cpu("cortex-a55", "cortex-a55", "Cortex-A55 (little cores of current phones)",
                                  {"cortex-a55": 4}),
    "cortex-a72": lambda: arm_cpu("cortex-a72", "cortex-a72", "Cortex-A72 (Raspberry Pi 4, 64-bit)", {"cortex-a72": 4}),
    "cortex-a76": lambda: arm_cpu("cortex-a76", "cortex-a76", "Cortex-A76 (Raspberry Pi 5, big cores of phones)",
                                  {"cortex-a76": 4}),
    "phone-a76-a55": lambda: arm_cpu("phone-a76-a55", "cortex-a76", "big.LITTLE phone: 4x Cortex-A76 + 4x Cortex-A55",
                                     {"cortex-a76": 4, "cortex-a55": 4}),
    # Work-group limits as the presets had them: 256 on Bifrost (its drivers report 384, less
    # for kernels past 32 registers), 512 on Valhall, TVM's 256 for the Adreno 6xx, 1024 on the 7xx.
    "mali-bifrost": lambda: mobile_gpu("mali-bifrost", MALI, mali("G76", cores=10, max_threads_per_work_group=256),
                                       "Mali Bifrost GPU (G52/G72/G76), OpenCL"),
    "mali-valhall": lambda: mobile_gpu("mali-valhall", MALI, mali("G78", cores=14, max_threads_per_work_group=512),
                                       "Mali Valhall GPU (G57/G77/G78/G710), OpenCL"),
    "adreno-6xx": lambda: mobile_gpu("adreno-6xx", ADRENO, adreno(640, compute_units=2, wave_size=64,
                                                                  max_threads_per_work_group=256),
                                     "Adreno 6xx GPU, OpenCL"),
    "adreno-7xx": lambda: mobile_gpu("adreno-7xx", ADRENO, adreno(740, compute_units=6, wave_size=64,
                                                                  max_threads_per_work_group=1024),
                                     "Adreno 7xx GPU, OpenCL"),
}


def get_device(name: str) -> Device:
    """The preset called `name`; ValueError lists the known ones."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown device {name!r}; known devices: {', '.join(sorted(PRESETS))}") from None
