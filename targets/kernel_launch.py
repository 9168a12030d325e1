"""The launch of every OpenCL kernel of a compiled module, checked against the GPU's limits.

TVM 0.27's compiled module keeps no launch shapes: the host code passes them to the kernel
at each call. They are read where the compilation writes them, in the lowered host code
(`call_ffi_kernel("f_kernel", ..., 14, 64, launch_params=["blockIdx.x", "threadIdx.x"])`,
work groups per dimension times threads per dimension) during `tvm.compile` itself, so
nothing is compiled twice; each kernel's `__local` arrays (TVM's "shared" scope) and
per-thread arrays (TVM's "local" scope, which live in registers) come from its lowered body.

`check_launches` compares them with a `GpuSpec`: a hard violation is a launch the device
refuses or a kernel that cannot fit (too many threads per work group, too much local
memory, per-thread arrays alone past the registers a thread has); a soft one only wastes
the hardware (a work group that is not a multiple of the lock-step width).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import tvm
import tvm_ffi
from tvm import tirx

from targets.gpu_spec import GpuSpec
from targets.tvm_compat import LOWERED_HOST_DEVICE_PASS, is_kernel_launch

#: TVM's storage scopes of OpenCL `__local` memory, and of per-thread arrays (registers).
_LOCAL_MEMORY_SCOPES = ("shared", "shared.dyn")
_REGISTER_SCOPE = "local"
_DYNAMIC_SHARED = "tirx.use_dyn_shared_memory"


@dataclass(frozen=True)
class KernelLaunch:
    """One kernel's launch: work groups and threads per dimension (x, y, z), its local memory and
    the 32-bit words of its per-thread arrays (a lower bound of the registers it needs)."""

    kernel: str
    groups: tuple[int, ...]
    work_group: tuple[int, ...]
    local_memory_bytes: int = 0
    register_array_words: int = 0
    dynamic: bool = False  # an extent depends on the inputs' shapes: the sizes here are 1 for it

    @property
    def threads(self) -> int:
        """Threads per work group."""
        return math.prod(self.work_group)

    @property
    def global_size(self) -> tuple[int, ...]:
        """Threads per dimension, all work groups together (OpenCL's global work size)."""
        return tuple(g * w for g, w in zip(self.groups, self.work_group))

    def __str__(self) -> str:
        return (f"{self.kernel}: global {'x'.join(map(str, self.global_size))}, "
                f"work group {'x'.join(map(str, self.work_group))}")


@dataclass(frozen=True)
class LaunchViolation:
    """A kernel past one of the GPU's limits; `hard`: the device would refuse or fail it."""

    kernel: str
    limit: str
    value: int
    allowed: int
    hard: bool = True

    def __str__(self) -> str:
        if not self.allowed:
            return f"{self.kernel}: {self.limit}"
        relation = "not a multiple of" if not self.hard else "over"
        return f"{self.kernel}: {self.limit} {self.value} {relation} {self.allowed}"


class LaunchLimitError(RuntimeError):
    """A compiled module has kernels the GPU would refuse; the message names them."""

    def __init__(self, device: str, violations: list[LaunchViolation]):
        self.violations = violations
        shown = "; ".join(map(str, violations[:5])) + ("; ..." if len(violations) > 5 else "")
        super().__init__(f"{len(violations)} kernel launches past the limits of {device}: {shown}")


def check_launches(launches: Iterable[KernelLaunch], gpu: GpuSpec) -> list[LaunchViolation]:
    """Every violation of `gpu`'s limits by `launches`, hard ones and soft ones (see the module docstring)."""
    violations = []
    for launch in launches:
        name = launch.kernel
        if launch.threads > gpu.max_threads_per_work_group:
            violations.append(LaunchViolation(name, "threads per work group", launch.threads, gpu.max_threads_per_work_group))
        if launch.local_memory_bytes > gpu.local_memory_bytes:
            violations.append(LaunchViolation(name, "local memory bytes", launch.local_memory_bytes, gpu.local_memory_bytes))
        if gpu.registers_per_thread is not None and launch.register_array_words > gpu.registers_per_thread:
            violations.append(LaunchViolation(name, "registers per thread (its arrays alone)", launch.register_array_words,
                                              gpu.registers_per_thread))
        if launch.threads % gpu.lockstep_width and math.prod(launch.global_size) >= gpu.lockstep_width:
            violations.append(LaunchViolation(name, "threads per work group", launch.threads, gpu.lockstep_width, hard=False))
        if launch.dynamic:
            violations.append(LaunchViolation(name, "launch extents known at run time only, unchecked", 0, 0, hard=False))
    return violations


def hard_violations(launches: Iterable[KernelLaunch], gpu: GpuSpec) -> list[LaunchViolation]:
    return [v for v in check_launches(launches, gpu) if v.hard]


def kernel_launches(lowered: tvm.IRModule) -> list[KernelLaunch]:
    """The launches in a module lowered past the host/device split (host code and kernels side by side)."""
    kernels = {_symbol(gv, func): func for gv, func in lowered.functions.items()
               if isinstance(func, tirx.PrimFunc) and _is_kernel(func)}
    launches = []
    for func in lowered.functions.values():
        if isinstance(func, tirx.PrimFunc) and not _is_kernel(func):
            for call in _calls(func.body):
                launches.append(_launch(call, kernels))
    return launches


@dataclass
class LaunchRecorder:
    """The kernel launches of whatever `tvm.compile` lowers inside `recording()`."""

    launches: dict[str, KernelLaunch] = field(default_factory=dict)

    @contextmanager
    def recording(self) -> Iterator[LaunchRecorder]:
        recorder = self

        @tvm.instrument.pass_instrument
        class _Instrument:
            def run_after_pass(self, module, info):
                if info.name == LOWERED_HOST_DEVICE_PASS:
                    recorder.launches.update((launch.kernel, launch) for launch in kernel_launches(module))

        context = tvm.transform.PassContext.current()  # the caller's settings, with one more instrument
        with tvm.transform.PassContext(opt_level=context.opt_level, config=dict(context.config),
                                       required_pass=list(context.required_pass),
                                       disabled_pass=list(context.disabled_pass),
                                       instruments=[*context.instruments, _Instrument()]):
            yield self


def compile_recording_launches(module: tvm.IRModule, target: tvm.target.Target):
    """`tvm.compile(module, target)` and the launches of its kernels, in kernel-name order."""
    recorder = LaunchRecorder()
    with recorder.recording():
        executable = tvm.compile(module, target=target)
    return executable, [recorder.launches[name] for name in sorted(recorder.launches)]


def _is_kernel(func: tirx.PrimFunc) -> bool:
    return int((func.attrs or {}).get("calling_conv", 0)) == int(tvm.ir.CallingConv.DEVICE_KERNEL_LAUNCH)


def _symbol(gv, func: tirx.PrimFunc) -> str:
    return str((func.attrs or {}).get("global_symbol", gv.name_hint))


def _calls(body) -> list:
    calls = []

    def visit(call: tvm.ir.Call):
        if is_kernel_launch(call):
            calls.append(call)

    tvm_ffi.structural_walk(body, [(tvm.ir.Call, visit)], order="post")
    return calls


def _launch(call: tvm.ir.Call, kernels: dict[str, tirx.PrimFunc]) -> KernelLaunch:
    """A `call_ffi_kernel`: its last arguments are the extents its launch parameters name, in order."""
    name = str(call.args[0].value)
    tags = [str(tag) for tag in call.attrs.launch_params]
    extents = dict(zip(tags, call.args[len(call.args) - len(tags):]))
    constant = {tag: int(value.value) for tag, value in extents.items() if isinstance(value, tirx.IntImm)}
    groups = tuple(constant.get(f"blockIdx.{axis}", 1) for axis in "xyz")
    work_group = tuple(constant.get(f"threadIdx.{axis}", 1) for axis in "xyz")
    local_bytes, register_words = _arrays(kernels.get(name))
    local_bytes += constant.get(_DYNAMIC_SHARED, 0)
    return KernelLaunch(name, _trim(groups, work_group), _trim(work_group, groups), local_bytes, register_words,
                        dynamic=len(constant) < len(extents))


def _trim(values: tuple[int, ...], other: tuple[int, ...]) -> tuple[int, ...]:
    """(x, y, z) without the trailing dimensions where both grid and work group are 1."""
    size = 3
    while size > 1 and values[size - 1] == 1 and other[size - 1] == 1:
        size -= 1
    return values[:size]


def _arrays(kernel: tirx.PrimFunc | None) -> tuple[int, int]:
    """(bytes of local memory, 32-bit words of per-thread arrays) the kernel allocates."""
    if kernel is None:
        return 0, 0
    sizes = {"local_bytes": 0, "register_words": 0}

    def visit(node: tirx.AllocBuffer):
        buffer = node.buffer
        scope = buffer.scope()
        if scope not in _LOCAL_MEMORY_SCOPES and scope != _REGISTER_SCOPE:
            return
        elements = math.prod(int(d) for d in buffer.shape if isinstance(d, tirx.IntImm)) or 0
        size = elements * tvm.DataType(buffer.dtype).bits * tvm.DataType(buffer.dtype).lanes // 8
        if scope == _REGISTER_SCOPE:
            sizes["register_words"] += -(-size // 4)
        else:
            sizes["local_bytes"] += size

    tvm_ffi.structural_walk(kernel.body, [(tirx.AllocBuffer, visit)], order="post")
    return sizes["local_bytes"], sizes["register_words"]

