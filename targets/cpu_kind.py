"""What kind of CPU a target is: architecture, widest vector extension and its width.

Configs tuned on one CPU transfer best to CPUs with the same vector registers: tile
sizes and vector lengths follow the register width. The kind is read from LLVM's own
feature list for the target's triple and CPU name, so any CPU LLVM knows has one, with
no table of CPU names here.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import tvm
from tvm.target import codegen

#: Per architecture, vector extensions widest first: (LLVM feature, name, register bits).
VECTOR_EXTENSIONS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "x86_64": (("avx512f", "avx512", 512), ("avx2", "avx2", 256), ("avx", "avx", 256), ("sse2", "sse2", 128)),
    "aarch64": (("neon", "neon", 128),),
}


@dataclass(frozen=True)
class CpuKind:
    """Architecture, widest vector extension and its register width (x86_64 avx512 512)."""

    arch: str
    vector_isa: str
    vector_bits: int

    def __str__(self) -> str:
        return f"{self.arch} {self.vector_isa} ({self.vector_bits}-bit)"


def cpu_kind(target: Mapping[str, Any]) -> CpuKind | None:
    """The kind of an LLVM CPU target (None: not an LLVM CPU, or a CPU name this LLVM does not know)."""
    if target.get("kind") != "llvm":
        return None
    triple = target.get("mtriple") or codegen.llvm_get_system_triple()
    arch = triple.split("-")[0]
    mcpu = target.get("mcpu")
    if arch not in VECTOR_EXTENSIONS or (mcpu and not codegen.llvm_is_valid_cpu(mcpu, triple)):
        return None
    features = codegen.llvm_get_cpu_features(tvm.target.Target(dict(target)))
    for feature, name, bits in VECTOR_EXTENSIONS[arch]:
        if feature in features:
            return CpuKind(arch, name, bits)
    return None
