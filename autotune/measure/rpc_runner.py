"""Time candidates on remote devices through a TVM RPC tracker.

One worker process per device session (as many as the tracker has free servers under
the key, unless told), each keeping its session across candidates: a session costs the
device an `import tvm`, seconds on a phone. A worker uploads the library, loads it,
and evaluates it on the device exactly as the local runner does (first call checked
against numpy, then `time_evaluator`), except where the server's calling thread runs: it
cannot be kept off the cores of TVM's other workers from here (`targets.tvm_compat.apart_from_workers`).

When a session drops (device reboot, server restart, tracker restart), the candidate
is retried once on a new session; if that session dies under it too, the candidate
itself is taken to crash the device (RUNTIME_ERROR), so a bad kernel cannot take down
server after server. A worker that gets no session within `device_wait` seconds
reports DEVICE_LOST, and the tuning loop stops with the log intact. A hung kernel is a
TIMEOUT for the tuner (its worker is killed); sessions are requested with a
`session_timeout`, after which the device's server ends them, hung kernel included.
`check` asks, before tuning, whether the devices under the key can run a preset's candidates at all.
"""
from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tvm.support.popen_pool import PopenWorker

from autotune.measure.evaluate import evaluate, forget_fixtures
from autotune.measure.result import BuildResult, ErrorKind, MeasureInput, MeasureResult, last_line
from autotune.measure.runner import ResultCallback, Runner, TimingOptions
from targets.tvm_compat import config_threadpool, ping

if TYPE_CHECKING:
    from targets import Device


@dataclass(frozen=True)
class Tracker:
    """Where the devices are: a TVM RPC tracker and the key their servers registered with."""

    host: str
    port: int
    key: str

    @classmethod
    def parse(cls, address: str | None, key: str) -> Tracker:
        """From "host:port", or the TVM_TRACKER_HOST / TVM_TRACKER_PORT environment variables."""
        address = address or (
            f"{os.environ['TVM_TRACKER_HOST']}:{os.environ.get('TVM_TRACKER_PORT', '9190')}"
            if os.environ.get("TVM_TRACKER_HOST") else None
        )
        if not address:
            raise ValueError("no tracker: pass --tracker HOST:PORT or set TVM_TRACKER_HOST and TVM_TRACKER_PORT")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"malformed tracker address {address!r}: expected HOST:PORT")
        return cls(host, int(port), key)

    def summary(self) -> dict:
        """The tracker's queues and servers; ConnectionError at once when nothing listens
        (TVM's own client would retry for a minute)."""
        from tvm import rpc

        socket.create_connection((self.host, self.port), timeout=5).close()
        return rpc.connect_tracker(self.host, self.port).summary()

    def free_devices(self) -> int:
        """Servers registered under the key and not in a session now."""
        info = self.summary().get("queue_info", {}).get(self.key, {})
        return int(info.get("free", 0))

    def registered_keys(self) -> list[str]:
        """The key of every server registered with the tracker, busy or free."""
        return [server.get("key", "").removeprefix("server:") for server in self.summary().get("server_info", [])]

    def registered_devices(self) -> int:
        """Servers registered under the key, busy or free."""
        return self.registered_keys().count(self.key)


class DeviceMismatchError(Exception):
    """The devices under the key cannot run the preset's candidates: a set-up mistake, found before tuning.
    `wrong_architecture`: the server could not load a library built for the device's CPU."""

    def __init__(self, message: str, wrong_architecture: bool = False):
        super().__init__(message)
        self.wrong_architecture = wrong_architecture


#: This worker process's session (workers are separate processes, one session each).
_session = None
#: What `rpc_candidate` answers when the session dropped under it: retry on a new one.
SESSION_LOST = "session_lost"


def open_session(tracker: Tracker, wait: float, session_timeout: float) -> bool:
    """Get a session under the tracker's key, waiting up to `wait` seconds for a device.

    A request for a key with no server queues at the tracker forever, so the tracker is
    asked first whether the key has any server at all.
    """
    from tvm import rpc

    global _session
    _session = None
    forget_fixtures()
    deadline = time.monotonic() + wait
    while _session is None:
        try:
            if tracker.registered_devices() > 0:
                _session = rpc.connect_tracker(tracker.host, tracker.port).request(
                    tracker.key, priority=1, session_timeout=session_timeout
                )
                break
        except Exception:  # noqa: BLE001 - tracker or device away: wait for it
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)
    return True


def _alive(session) -> bool:
    """A round trip to the device (device attributes are cached locally, so ask for a function)."""
    try:
        ping(session)
        return True
    except Exception:  # noqa: BLE001 - any failure means the session is gone
        return False


def cpu_of(device: Device) -> str:
    """The CPU the device's libraries are built for, as the user knows it."""
    return (device.host or device.target).get("mtriple") or f"this machine ({platform.machine()})"


def probe_library(device: Device, folder: str) -> str:
    """A library of one tiny host function, built and linked as the device's candidates are: a server of
    another architecture cannot load it."""
    import tvm
    from tvm import te

    a = te.placeholder((1,), "float32", name="a")
    func = te.create_prim_func([a, te.compute((1,), lambda i: a[i], name="b")]).with_attr("global_symbol", "main")
    path = os.path.join(folder, "autotune_probe.so")
    device.export_library(tvm.compile(func, target=tvm.target.Target(device.host or device.target)), path)
    return path


def probe_session(device: Device, library: str) -> tuple[str, str] | None:
    """(what the session's device lacks for `device`'s candidates, the detail), or None (runs in a worker process)."""
    name = os.path.basename(library)
    try:
        _session.upload(library)
        _session.load_module(name)
        _session.remove(name)
    except Exception as exc:  # noqa: BLE001 - glibc reports another architecture's library as "No such file"
        return ("architecture", last_line(exc)) if _alive(_session) else None  # a lost session: the run retries
    if device.runtime_kind != "cpu" and not _session.device(device.runtime_kind, 0).exist:
        return "runtime", ""
    return None


def rpc_candidate(inp: MeasureInput, build: BuildResult, timing: TimingOptions) -> tuple[tuple[float, ...], str, str]:
    """Upload, load and evaluate one library on the remote device (runs in a worker process)."""
    name = os.path.basename(build.path)
    try:
        _session.upload(build.path)
        module = _session.load_module(name)
        _session.remove(name)  # loaded: the device's storage need not keep it
        dev = inp.device.runtime_device(_session)  # remote.cl(0) for an OpenCL device
        costs, error, message = evaluate(module, dev, inp, timing, config_threadpool(_session), build.packed, build.kernels)
        if error != ErrorKind.RUNTIME_ERROR.value or _alive(_session):
            return costs, error, message
    except Exception as exc:  # noqa: BLE001 - a library that does not load, or a lost session
        if _alive(_session):
            return (), ErrorKind.RUNTIME_ERROR.value, last_line(exc)
    return (), SESSION_LOST, ""


class RPCRunner(Runner):
    def __init__(
        self,
        tracker: Tracker,
        timing: TimingOptions | None = None,
        n_parallel: int | None = None,
        device_wait: float = 60.0,
        transfer_allowance: float = 30.0,
        session_timeout: float = 1800.0,
    ):
        self.tracker = tracker
        self.timing = timing or TimingOptions()
        self.device_wait, self.session_timeout = device_wait, session_timeout
        #: a candidate's run may also upload the library and make the inputs on the device
        self.run_timeout = self.timing.timeout + transfer_allowance
        self.n_parallel = n_parallel or max(1, tracker.free_devices())
        self._idle = [PopenWorker(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(self.n_parallel)]
        self._workers = list(self._idle)
        self._connected: set[int] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.n_parallel)

    def run(
        self, inputs: Sequence[MeasureInput], builds: Sequence[BuildResult], on_result: ResultCallback | None = None
    ) -> list[MeasureResult]:
        def measure(position: int) -> MeasureResult:
            result = self._run_one(inputs[position], builds[position])
            if on_result:
                on_result(position, result)
            return result

        return list(self._pool.map(measure, range(len(inputs))))

    def _run_one(self, inp: MeasureInput, build: BuildResult) -> MeasureResult:
        if build.error is not ErrorKind.NONE:
            return MeasureResult(error=build.error, message=build.message, build_seconds=build.seconds)
        with self._lock:
            worker = self._idle.pop()
        start = time.perf_counter()
        try:
            costs, kind, message = self._measure(worker, inp, build)
        finally:
            with self._lock:
                self._idle.append(worker)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(build.path)
        return MeasureResult(costs, kind, message, build.seconds, time.perf_counter() - start)

    def check(self, device: Device) -> None:
        """DeviceMismatchError, in one line, when the devices under the key cannot run `device`'s candidates:
        no server under the key (the run would wait `device_wait`), a server of another architecture or one
        without the device's runtime (every candidate would fail, with a message that does not say why)."""
        where = f"under key {self.tracker.key!r} at {self.tracker.host}:{self.tracker.port}"
        keys = self.tracker.registered_keys()
        if self.tracker.key not in keys:
            raise DeviceMismatchError(f"no RPC server is registered {where} (keys there: {', '.join(sorted(set(keys))) or 'none'})")
        worker = self._idle[0]
        with tempfile.TemporaryDirectory(prefix="autotune-probe-") as folder:
            library = probe_library(device, folder)
            if not self._connect(worker):
                raise DeviceMismatchError(f"no device {where} answered for {self.device_wait:g}s")
            try:
                problem = self._call(worker, probe_session, (device, library), self.run_timeout)
            except TimeoutError:
                raise DeviceMismatchError(f"the device {where} did not load a test library in {self.run_timeout:g}s") from None
        if problem is None:
            return
        kind, detail = problem
        if kind == "architecture":
            raise DeviceMismatchError(f"the RPC server {where} cannot load a library built for {cpu_of(device)} ({detail})",
                                      wrong_architecture=True)
        raise DeviceMismatchError(f"the RPC server {where} has no {device.runtime_kind} device: start it with TVM's OpenCL "
                                  "runtime (rpc_server --load-library .../libtvm_runtime_opencl.so) and an OpenCL driver")

    def _connect(self, worker: PopenWorker) -> bool:
        """The worker in a session (kept across candidates); False when no device answered within `device_wait`."""
        if id(worker) in self._connected:
            return True
        try:
            if not self._call(worker, open_session, (self.tracker, self.device_wait, self.session_timeout),
                              self.device_wait + 30):
                return False
        except TimeoutError:
            return False
        self._connected.add(id(worker))
        return True

    def _measure(self, worker: PopenWorker, inp: MeasureInput, build: BuildResult) -> tuple[tuple[float, ...], ErrorKind, str]:
        for _ in range(2):  # a dropped session gets one more chance
            if not self._connect(worker):
                return (), ErrorKind.DEVICE_LOST, f"no device under key {self.tracker.key!r} for {self.device_wait:g}s"
            try:
                outcome = self._call(worker, rpc_candidate, (inp, build, self.timing), self.run_timeout)
            except TimeoutError:
                return (), ErrorKind.TIMEOUT, f"run exceeded {self.run_timeout:g}s"
            if outcome is not None and outcome[1] != SESSION_LOST:
                costs, error, message = outcome
                return costs, ErrorKind(error), message
            self._connected.discard(id(worker))
        return (), ErrorKind.RUNTIME_ERROR, "the device session died twice while running this candidate"

    def _call(self, worker: PopenWorker, func, args: tuple, timeout: float):
        """`func(*args)` in the worker; None if the worker died. A killed or dead worker has no session."""
        try:
            worker.send(func, args, timeout=timeout)
            return worker.recv()
        except TimeoutError:
            self._connected.discard(id(worker))
            raise
        except ChildProcessError:
            self._connected.discard(id(worker))
            return None

    def close(self) -> None:
        self._pool.shutdown()
        for worker in self._workers:
            worker.kill()
