"""Compile candidates in a pool of worker processes, one per core.

Workers are TVM's PopenPoolExecutor processes: a compile that raises, crashes the worker
or runs past the timeout becomes an error result, and the worker is restarted. Workers
stay alive across batches, since starting one costs an `import tvm`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence

from tvm.support.popen_pool import PopenPoolExecutor

from autotune.measure.builder import Builder
from autotune.measure.candidate import candidate_module
from autotune.measure.result import BuildResult, ErrorKind, MeasureInput, PackedArg, last_line
from targets import physical_cores
from targets.kernel_launch import LaunchLimitError, compile_recording_launches, hard_violations
from targets.tvm_compat import shutdown_pool


def build_candidate(inp: MeasureInput, out_dir: str) -> tuple[str, float, tuple[PackedArg, ...], int]:
    """Schedule, compile and export one candidate (runs in a worker process); on a GPU, LaunchLimitError
    when a kernel's launch is past the GPU's limits, before the candidate costs a trial on the device."""
    import tvm

    start = time.perf_counter()
    module, packed = candidate_module(inp)
    kernels = 0
    if inp.device.gpu is None:
        executable = tvm.compile(module, target=inp.device.tvm_target)
    else:
        executable, launches = compile_recording_launches(module, inp.device.tvm_target)
        violations = hard_violations(launches, inp.device.gpu)
        if violations:  # TVM's pool workers rebuild an exception from its message alone: a plain error
            raise RuntimeError(str(LaunchLimitError(inp.device.name, violations)))
        kernels = len(launches)
    path = os.path.join(out_dir, f"{uuid.uuid4().hex}.so")
    inp.device.export_library(executable, path)
    return path, time.perf_counter() - start, packed, kernels


class LocalBuilder(Builder):
    def __init__(self, n_workers: int | None = None, timeout: float = 30.0, out_dir: str | None = None):
        self.n_workers = n_workers or physical_cores()
        self.timeout = timeout
        self._own_dir = out_dir is None
        self.out_dir = out_dir or tempfile.mkdtemp(prefix="autotune-build-")
        self._pool = PopenPoolExecutor(
            max_workers=self.n_workers, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def build(self, inputs: Sequence[MeasureInput]) -> list[BuildResult]:
        futures = [self._pool.submit(build_candidate, inp, self.out_dir) for inp in inputs]
        results = []
        for future in futures:
            start = time.perf_counter()
            try:
                path, seconds, packed, kernels = future.result()
                results.append(BuildResult(path, seconds=seconds, packed=packed, kernels=kernels))
            except TimeoutError:
                results.append(BuildResult(None, ErrorKind.TIMEOUT, f"build exceeded {self.timeout:g}s", self.timeout))
            except ChildProcessError:
                results.append(BuildResult(None, ErrorKind.COMPILE_ERROR, "build worker crashed", time.perf_counter() - start))
            except Exception as error:  # noqa: BLE001 - any compile failure is a result
                results.append(BuildResult(None, ErrorKind.COMPILE_ERROR, last_line(error), time.perf_counter() - start))
        return results

    def close(self) -> None:
        shutdown_pool(self._pool)
        if self._own_dir:
            shutil.rmtree(self.out_dir, ignore_errors=True)
