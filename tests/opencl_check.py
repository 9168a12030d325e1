"""What the OpenCL template tests share: their skip where TVM's OpenCL runtime is absent, loading it
before anything is compiled, the error they allow and the configs they try."""
import random
import subprocess
import sys

import pytest

from targets.opencl_runtime import opencl_runtime_installed, require_opencl_runtime

#: Largest error allowed, relative to the reference's largest magnitude.
TOLERANCE = 1e-4

needs_opencl = pytest.mark.skipif(not opencl_runtime_installed(),
                                  reason="TVM's OpenCL runtime (libtvm_runtime_opencl.so) is not installed: "
                                         "set AUTOTUNE_OPENCL_RUNTIME (see targets/opencl_runtime.py)")


@pytest.fixture(scope="module", autouse=True)
def opencl():
    require_opencl_runtime()  # before anything is compiled: compiled before, OpenCL cannot run in-process


def configs(template, wl, device, n: int, seed: int = 0) -> list:
    """The template's default config for `wl` on `device`, then `n` random ones."""
    space = template.space(wl, device)
    return [template.default_config(wl, device, space)] + space.sample(random.Random(seed), n)


def run_under_oclgrind(code: str, log) -> str:
    """Run Python `code` on Oclgrind's simulated OpenCL device (reporting out-of-bounds accesses and data races to
    `log`); its stdout. Fails on a crash, on any report, or where the last "relative error" printed is too large."""
    result = subprocess.run(["oclgrind", "--data-races", "--log", str(log), sys.executable, "-c", code],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert log.read_text() == ""
    assert float(result.stdout.split("relative error")[-1]) <= TOLERANCE
    return result.stdout
