"""TVM's OpenCL runtime, found and loaded in one place.

The PyPI wheels generate OpenCL but ship no OpenCL runtime (`tvm.runtime.enabled("opencl")`
is False). `libtvm_runtime_opencl.so`, TVM's own OpenCL device runtime built for the pinned
wheels, is kept outside the package; with it and any OpenCL driver (PoCL, a CPU OpenCL, on
this machine and CI; the vendor's on a board) compiled OpenCL modules run through TVM itself.
It is looked for, per CPU architecture (`x86_64/`, `aarch64/`), in:

1. `$AUTOTUNE_OPENCL_RUNTIME`: the library itself, or a folder holding it or the per-architecture folders;
2. `../shared/tvm-opencl-runtime` beside the repository checkout;
3. `/work/shared/tvm-opencl-runtime`.

Pitfalls (its README): load it before `tvm.compile` of a module that is run in the same
process (compiled before, the OpenCL part is a stand-in that cannot run); and load one copy
only (a second copy from another path aborts the process), so nothing is loaded when TVM's
own hook already did (`LD_LIBRARY_PATH` holding its folder).
"""
from __future__ import annotations

import ctypes
import functools
import os
import platform
from pathlib import Path

LIBRARY = "libtvm_runtime_opencl.so"
ENVIRONMENT_VARIABLE = "AUTOTUNE_OPENCL_RUNTIME"
SHARED_FALLBACK = Path("/work/shared/tvm-opencl-runtime")


def candidate_folders() -> list[Path]:
    """Where the runtime is looked for, in order (see the module docstring)."""
    folders = []
    if os.environ.get(ENVIRONMENT_VARIABLE):
        folders.append(Path(os.environ[ENVIRONMENT_VARIABLE]))
    checkout = Path(__file__).resolve().parents[1]
    folders += [checkout.parent / "shared" / "tvm-opencl-runtime", SHARED_FALLBACK]
    return folders


def find_opencl_runtime(arch: str | None = None) -> Path | None:
    """The runtime library for `arch` (this machine's by default), or None when none is installed."""
    arch = arch or platform.machine()
    for place in candidate_folders():
        if place.is_file():
            return place
        for path in (place / LIBRARY, place / arch / LIBRARY):
            if path.is_file():
                return path
    return None


@functools.cache
def load_opencl_runtime() -> Path | None:
    """Make TVM's OpenCL runtime available in this process (once); the library loaded, or None when
    TVM's own hook had loaded it already. RuntimeError when it is not installed."""
    import tvm

    if tvm.runtime.enabled("opencl"):
        return None
    path = find_opencl_runtime()
    if path is None:
        raise RuntimeError(f"TVM's OpenCL runtime ({LIBRARY}) is not installed: set {ENVIRONMENT_VARIABLE} to it "
                           f"(looked in {', '.join(str(folder) for folder in candidate_folders())})")
    ctypes.CDLL(str(path), ctypes.RTLD_GLOBAL)
    if not tvm.runtime.enabled("opencl"):
        raise RuntimeError(f"{path} loaded, but TVM still has no OpenCL runtime")
    return path


def opencl_runtime_installed() -> bool:
    """Whether TVM's OpenCL runtime is loaded or can be (whether an OpenCL driver is present is not asked)."""
    import tvm

    return tvm.runtime.enabled("opencl") or find_opencl_runtime() is not None


def require_opencl_runtime() -> None:
    """The runtime loaded, and an OpenCL device present; RuntimeError saying which is missing."""
    import tvm

    load_opencl_runtime()
    if not tvm.opencl(0).exist:
        raise RuntimeError("TVM's OpenCL runtime is loaded but finds no OpenCL device "
                           "(install an OpenCL driver: Debian's pocl-opencl-icd runs OpenCL on the CPU)")


def opencl_unavailable_reason() -> str | None:
    """Why OpenCL modules cannot run here (for a test's skip), or None when they can."""
    try:
        require_opencl_runtime()
    except RuntimeError as error:
        return str(error)
    return None
