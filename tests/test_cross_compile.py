"""Libraries built for ARM presets are aarch64 shared objects using NEON (checked with binutils)."""
import shutil
import subprocess

import pytest

from autotune.measure import ErrorKind, LocalBuilder
from autotune.task import Task
from targets import PRESETS, get_device

ARM_CPUS = [name for name in PRESETS if get_device(name).cross_compiler and get_device(name).family == "cpu"]


@pytest.fixture(scope="module")
def builder():
    with LocalBuilder() as b:
        yield b


@pytest.mark.parametrize("preset", ARM_CPUS)
def test_arm_preset_builds_aarch64_elf_with_neon(preset, builder):
    task = Task.create("matmul", (64, 64, 64), device=preset)
    build = builder.build([task.measure_input(task.default_config)])[0]
    assert build.error is ErrorKind.NONE, build.message
    kind = subprocess.run([shutil.which("file") or "file", build.path], capture_output=True, text=True, check=True).stdout
    assert "ELF 64-bit" in kind and "ARM aarch64" in kind and "shared object" in kind
    disassembly = subprocess.run(
        ["aarch64-linux-gnu-objdump", "-d", build.path], capture_output=True, text=True, check=True
    ).stdout
    # NEON: fused multiply-adds on 4 x float32 vector registers (v<n>.4s).
    assert "fmla\tv" in disassembly and ".4s" in disassembly
