"""Device presets. Nothing else in the project hard-codes a target."""
from __future__ import annotations

from collections.abc import Callable

import psutil

from targets.cpu_spec import arm_cpu_spec, host_cpu_spec
from targets.device import Device
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


def mobile_gpu(name: str, target: dict, description: str) -> Device:
    """An OpenCL GPU driven from a 64-bit ARM host."""
    host_cpu = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}
    return Device(
        name=name,
        target=target,
        num_threads=1,
        family="opencl",
        host=host_cpu,
        cross_compiler=AARCH64_GCC,
        rpc_key=name,
        description=description,
        cpu=arm_cpu_spec({"generic": 4}),
    )


def _mali(generation: str) -> dict:
    return {"kind": "opencl", "device": "mali", "keys": ["mali", "opencl", "gpu"],
            "max_num_threads": 256 if generation == "bifrost" else 512, "thread_warp_size": 1}


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
    "mali-bifrost": lambda: mobile_gpu("mali-bifrost", _mali("bifrost"), "Mali Bifrost GPU (G52/G72/G76), OpenCL"),
    "mali-valhall": lambda: mobile_gpu("mali-valhall", _mali("valhall"), "Mali Valhall GPU (G57/G77/G78/G710), OpenCL"),
    "adreno-6xx": lambda: mobile_gpu("adreno-6xx", {"tag": "qcom/adreno-opencl"}, "Adreno 6xx GPU, OpenCL"),
    "adreno-7xx": lambda: mobile_gpu(
        "adreno-7xx", {"tag": "qcom/adreno-opencl", "max_num_threads": 1024, "max_threads_per_block": 1024},
        "Adreno 7xx GPU, OpenCL",
    ),
}


def get_device(name: str) -> Device:
    """The preset called `name`; ValueError lists the known ones."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown device {name!r}; known devices: {', '.join(sorted(PRESETS))}") from None
