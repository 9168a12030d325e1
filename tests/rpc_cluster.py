"""A real TVM RPC tracker and servers on loopback for tests: free ports, own sessions, clean stop."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from tvm import rpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str]) -> subprocess.Popen:
    """A process in a new session, so stopping it stops every child it forked."""
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


class Cluster:
    """A tracker plus native RPC servers registered under one key."""

    def __init__(self, key: str = "test-device"):
        self.key = key
        self.port = free_port()
        self.tracker = start([
            sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
            "--port", str(self.port), "--port-end", str(self.port + 1),
        ])
        self.servers: list[subprocess.Popen] = []
        self.wait_for(lambda: self.summary() is not None)

    def summary(self) -> dict | None:
        try:
            return rpc.connect_tracker("127.0.0.1", self.port).summary()
        except Exception:  # noqa: BLE001 - not up yet
            return None

    def free(self, key: str | None = None) -> int:
        summary = self.summary() or {}
        return int(summary.get("queue_info", {}).get(key or self.key, {}).get("free", 0))

    def add_server(self, load_library: str | None = None, key: str | None = None) -> subprocess.Popen:
        """A server under the key (or `key`); `load_library`: a library it loads first (TVM's OpenCL runtime)."""
        key = key or self.key
        before = self.free(key)
        port = free_port()
        server = start([
            sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port),
            "--port-end", str(port + 1), "--tracker", f"127.0.0.1:{self.port}", "--key", key,
            *(["--load-library", load_library] if load_library else []),
        ])
        self.servers.append(server)
        self.wait_for(lambda: self.free(key) > before)
        return server

    def wait_for(self, condition, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("RPC cluster did not come up")
            time.sleep(0.2)

    def close(self) -> None:
        for proc in [*self.servers, self.tracker]:
            stop(proc)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
