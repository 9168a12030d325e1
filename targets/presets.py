"""Device presets. Nothing else in the project hard-codes a target."""
from __future__ import annotations

from collections.abc import Callable

import psutil
import tvm

from targets.device import Device


def physical_cores() -> int:
    """Physical cores: TVM's own default halves the hardware threads, which wastes cores."""
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def host() -> Device:
    """The machine we run on, with its real LLVM CPU name.

    `mcpu: native` is accepted by TVM 0.27 but silently means generic x86-64, so the
    name is asked from LLVM instead.
    """
    cpu = tvm.get_global_func("tvm.codegen.llvm.GetHostCPUName")()
    cores = physical_cores()
    return Device(
        name="host",
        target={"kind": "llvm", "mcpu": cpu, "num-cores": cores},
        num_threads=cores,
        description=f"this machine ({cpu}, {cores} cores)",
    )


PRESETS: dict[str, Callable[[], Device]] = {"host": host}


def get_device(name: str) -> Device:
    """The preset called `name`; ValueError lists the known ones."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown device {name!r}; known devices: {', '.join(sorted(PRESETS))}") from None
