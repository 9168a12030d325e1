"""Every use of TVM internals in one place, so that a TVM upgrade breaks this file, loudly.

TVM 0.27 has no Python API for some things the project needs: global functions looked
up by name, a MetaSchedule constructor behind a private FFI module, and a lock of the
process pool that its `shutdown` can leave held. Each entry here wraps one of them and
has a test in `tests/test_tvm_compat.py`. Global functions are looked up when first
called, not at import, so a renamed one fails the feature that needs it with a
`TVMCompatError` naming it, not `import autotune`.

It lives in `targets` because that is the package every other one may import
(`cost_model` imports neither `schedules` nor `autotune`), and it imports only TVM.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator

import tvm


class TVMCompatError(RuntimeError):
    """This TVM lacks an internal the project relies on."""


@functools.cache
def _global_func(name: str) -> Callable:
    func = tvm.get_global_func(name, allow_missing=True)
    if func is None:
        raise TVMCompatError(f"TVM {tvm.__version__} has no global function {name!r} (autotune is written for TVM 0.27)")
    return func


def host_cpu_name() -> str:
    """LLVM's name of this machine's CPU (`mcpu: native` silently means generic x86-64 in TVM 0.27)."""
    return str(_global_func("tvm.codegen.llvm.GetHostCPUName")())


def config_threadpool(session=None) -> Callable[[int, int], None]:
    """TVM's `runtime.config_threadpool(affinity_mode, n_threads)` here, or on an RPC session's device."""
    if session is None:
        return _global_func("runtime.config_threadpool")
    return session.get_function("runtime.config_threadpool")


def pool_threads() -> int:
    """Threads of this process's TVM thread pool (TVM_NUM_THREADS or `config_threadpool`'s count)."""
    return int(_global_func("runtime.NumThreads")())


def ping(session) -> None:
    """One round trip to an RPC session's device (device attributes are cached locally); raises if it is gone."""
    session.get_function("runtime.GetDeviceAttr")


#: The TIR pass after which a module holds the host code and the kernels side by side, the host
#: launching each kernel with `call_ffi_kernel(name, *args, *extents, launch_params=[...])`.
LOWERED_HOST_DEVICE_PASS = "tirx.MakePackedAPI"


def is_kernel_launch(call) -> bool:
    """Whether a TIR call is the host code's launch of a device kernel (`tirx.call_ffi_kernel`)."""
    return isinstance(call.op, tvm.ir.Op) and call.op.name == "tirx.call_ffi_kernel"


def sblock_realize(sch: tvm.s_tir.Schedule, block) -> tvm.s_tir.SBlockRealize:
    """The realize of a block: its iterators' bindings to the surrounding loops."""
    return _global_func("s_tir.schedule.GetSBlockRealize")(sch, block)


def bare_tune_context(target: tvm.target.Target):
    """A MetaSchedule TuneContext holding just `target`, which is all the feature extractor reads.

    `TuneContext.__init__` imports `tvm.s_tir.tensor_intrin` (13 s here) for its space
    generators; the extractor needs none of that, so the object is made through the
    private FFI constructor instead.
    """
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule import _ffi_api
    from tvm.s_tir.meta_schedule.logging import get_logger, get_logging_func

    context = ms.TuneContext.__new__(ms.TuneContext)
    context.__init_handle_by_constructor__(
        _ffi_api.TuneContext, None, target, None, None, "main", 1, -1, get_logging_func(get_logger(__name__))
    )
    return context


def shutdown_pool(pool, attempts: int = 3) -> None:
    """Shut a `PopenPoolExecutor` down, also when TVM 0.27's shutdown races a dying worker.

    `shutdown` raises AttributeError with the pool's private `_lock` held when a worker
    thread is clearing a child that just died (Ctrl-C reaches the workers too), which
    hangs the interpreter's exit: release the lock and shut down again.
    """
    for _ in range(attempts):
        try:
            pool.shutdown(wait=True)
            return
        except AttributeError:
            pool._lock.release()


# TVM's launching thread. TVM 0.27 pins the pool's workers 1.. to one core each but lets the
# calling thread (worker 0) roam over all of the pool's cores (`SetMainThreadFullCpuAffinity`,
# src/runtime/threading_backend.cc). When the OS puts it on a worker's core, the two chunks of
# every parallel loop take turns on one core and a kernel takes its one-thread time, often for
# the life of the process (measured here: the same group conv 77 or 140 us per process).
# Read from outside: the affinity of the process's threads.


def worker_cores() -> set[int]:
    """The cores that threads of this process other than the calling one are pinned to, one core each."""
    own = os.sched_getaffinity(0)
    me, taken = threading.get_native_id(), set()
    for tid in map(int, os.listdir("/proc/self/task")):
        if tid == me:
            continue
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            cpus = os.sched_getaffinity(tid)
            if len(cpus) == 1 and cpus < own:
                taken |= cpus
    return taken


@contextlib.contextmanager
def apart_from_workers() -> Iterator[None]:
    """Within the block, the calling thread runs on the pool's cores that no other TVM worker is pinned to.

    The calling thread's pool must exist already (it made a parallel call), and the block must not
    call `runtime.config_threadpool` (which re-pins the workers and frees the caller again). Nothing
    changes where TVM pinned no worker: one thread, more threads than cores, an OS without affinity.
    """
    if not hasattr(os, "sched_getaffinity") or not os.path.isdir("/proc/self/task"):
        yield
        return
    own = os.sched_getaffinity(0)
    free = own - worker_cores()
    if free == own or not free:
        yield
        return
    os.sched_setaffinity(0, free)
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)
