"""Time one loaded candidate and check its output: shared by the local and the RPC runners.

Runs inside a runner's worker process, on a local or a remote (RPC) device. The inputs
and the numpy reference are made once per workload and device; the output buffer is
filled with NaN before each candidate, so a kernel that writes nothing cannot pass on
stale data; the output is checked after the timed calls. The first call is a warm-up; on a GPU
it also builds the OpenCL program (drivers compile a program at its first launch: on PoCL
0.3-9 s, which the call's time would otherwise report as the kernel's), so a second call
stands in for it. A kernel whose first (on a GPU: second) call already takes
`timing.slow_seconds` keeps that single wall-clock time: it is far from the best, and
repeating it would only spend the budget. A local runner times
with the calling thread kept off the cores of TVM's other workers (`targets.tvm_compat.apart_from_workers`):
left free, it shares a worker's core in some processes and parallel kernels take their
one-thread time there; and only while all of the pool's threads run (`autotune.measure.steady`):
on a shared VM a core is sometimes taken away for up to a second.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from autotune.measure.result import ErrorKind, MeasureInput, PackedArg, last_line
from autotune.measure.runner import TimingOptions, launch_capped_number
from schedules.threading import thread_pool_setting

_fixtures: dict[tuple, tuple[list, np.ndarray]] = {}


def fixture(inp: MeasureInput, dev) -> tuple[list, np.ndarray]:
    """Device tensors (inputs then output) and the expected output, made once per workload (or model
    function) and device."""
    import tvm
    import tvm_ffi

    function = None if inp.function is None else tvm_ffi.structural_hash(inp.function)
    key = (inp.template.name, inp.workload.key, function, str(dev))
    if key not in _fixtures:
        _fixtures.clear()
        rng = np.random.default_rng(0)
        if inp.function is None:
            inputs = inp.template.make_inputs(inp.workload, rng)
            expected = inp.template.reference(inp.workload, inputs)
        else:
            inputs, expected = _function_fixture(inp.function, rng)
        tensors = [tvm.runtime.tensor(x, dev) for x in inputs]
        tensors.append(tvm.runtime.tensor(np.empty_like(expected), dev))
        _fixtures[key] = (tensors, expected)
    return _fixtures[key]


def _function_fixture(function, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """Random inputs of a model's function and its output, from the function compiled unscheduled
    for this machine's CPU (TVM's plain loops: slow, but no schedule of ours can be wrong in it)."""
    import tvm

    *params, out = function.params
    inputs = [rng.uniform(-1, 1, [int(d) for d in p.shape]).astype(str(p.dtype)) if "float" in str(p.dtype)
              else rng.integers(0, 2, [int(d) for d in p.shape]).astype(str(p.dtype)) for p in params]
    reference = tvm.compile(function.with_attr("global_symbol", "main"), target="llvm")
    tensors = [tvm.runtime.tensor(x) for x in inputs] + [tvm.runtime.empty([int(d) for d in out.shape], str(out.dtype))]
    reference["main"](*tensors)
    return inputs, tensors[-1].numpy()


def forget_fixtures() -> None:
    """Drop the cached tensors (their RPC session is gone)."""
    _fixtures.clear()


def _call_seconds(module, tensors: list, dev) -> float:
    """Wall-clock seconds of one call of main, finished on the device."""
    start = time.perf_counter()
    module["main"](*tensors)
    dev.sync()
    return time.perf_counter() - start


def evaluate(module, dev, inp: MeasureInput, timing: TimingOptions, config_threadpool=None,
             packed: tuple[PackedArg, ...] = (), kernels: int = 0,
             steady: Callable[[Callable[[], tuple]], tuple] = lambda timed: timed()) -> tuple[tuple[float, ...], str, str]:
    """(costs, error kind value, message) of `module`'s main function on `dev`.

    `config_threadpool` is the device's `runtime.config_threadpool`, called first when the
    config carries thread count and affinity knobs (big.LITTLE devices). `packed` lists the
    weights main reads packed: each is packed once, by the module's "prepack_<i>", untimed.
    On a GPU, a repeat's calls are fixed from the first call's time so that it queues at most
    the spec's launches (`kernels` per call; `runner.launch_capped_number`). `steady` makes the timed
    calls, after the warm-up (which starts the thread pool): the local runner's `SteadyTimer`.
    """
    import tvm

    setting = thread_pool_setting(inp.config)
    if setting is not None and config_threadpool is not None:
        config_threadpool(*setting)
    tensors, expected = fixture(inp, dev)
    tensors = list(tensors)
    try:
        for index, shape, dtype in packed:
            weight = tvm.runtime.empty(shape, dtype, dev)
            module[f"prepack_{index}"](tensors[index], weight)
            tensors[index] = weight
    except Exception as error:  # noqa: BLE001 - a failing pack is a result
        return (), ErrorKind.RUNTIME_ERROR.value, last_line(error)
    output = tensors[-1]
    output.copyfrom(np.full(expected.shape, np.nan, expected.dtype))
    try:
        first = _call_seconds(module, tensors, dev)
        if inp.device.gpu is not None:  # that call built the OpenCL program (drivers compile at the first launch)
            first = _call_seconds(module, tensors, dev)
        if first >= timing.slow_seconds:
            costs: tuple[float, ...] = (first,)
        else:
            number, min_repeat_ms = timing.number, timing.min_repeat_ms
            if inp.device.gpu is not None:
                number = launch_capped_number(timing, first, kernels, inp.device.gpu.max_launches_per_measurement)
                min_repeat_ms = 0
            timer = module.time_evaluator(
                "main", dev, number=number, repeat=timing.repeat,
                min_repeat_ms=min_repeat_ms, cooldown_interval_ms=timing.cooldown_ms,
            )
            costs = steady(lambda: tuple(timer(*tensors).results))
    except Exception as error:  # noqa: BLE001 - a failing kernel is a result
        return (), ErrorKind.RUNTIME_ERROR.value, last_line(error)
    rtol, atol = inp.template.tolerance
    actual = output.numpy()
    if not np.allclose(actual, expected, rtol=rtol, atol=atol):
        worst = float(np.nanmax(np.abs(actual - expected))) if not np.isnan(actual).all() else float("nan")
        return costs, ErrorKind.WRONG_ANSWER.value, f"output differs from numpy (max abs error {worst:.3g})"
    return costs, ErrorKind.NONE.value, ""
