#!/usr/bin/env python3
"""End-to-end check of an aarch64 TVM RPC device behind a tracker (e.g. the emulated one).

Cross-compiles a vector add for aarch64+NEON on the host, uploads the .so through the
tracker, runs it on the remote CPU, compares with numpy and times it once.

    python scripts/emulated_aarch64_check.py 127.0.0.1:9190 emulated-aarch64

Exits 0 when the numbers match. Start the device with scripts/emulated_aarch64.sh.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import tvm
from tvm import rpc, te

from targets import get_device

DEVICE = get_device("aarch64")


def build_vector_add(n: int, path: str) -> None:
    a = te.placeholder((n,), name="A", dtype="float32")
    b = te.placeholder((n,), name="B", dtype="float32")
    c = te.compute((n,), lambda i: a[i] + b[i], name="C")
    mod = tvm.IRModule({"main": te.create_prim_func([a, b, c])})
    ex = tvm.compile(mod, target=DEVICE.tvm_target)
    DEVICE.export_library(ex, path)
    with open(path, "rb") as f:
        header = f.read(20)
    machine = int.from_bytes(header[18:20], "little")
    if header[:4] != b"\x7fELF" or machine != 183:  # EM_AARCH64
        raise RuntimeError(f"{path} is not an aarch64 shared library (e_machine={machine})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tracker", help="HOST:PORT of the RPC tracker")
    parser.add_argument("key", help="device key the server registered with")
    parser.add_argument("--n", type=int, default=1024, help="vector length")
    parser.add_argument("--session-timeout", type=float, default=120)
    args = parser.parse_args()
    host, port = args.tracker.rsplit(":", 1)

    with tempfile.TemporaryDirectory(prefix="aarch64-check-") as tmp:
        lib_name = "vadd_aarch64.so"
        t0 = time.monotonic()
        build_vector_add(args.n, os.path.join(tmp, lib_name))
        print(f"cross-compiled {lib_name} for {DEVICE.target} in {time.monotonic() - t0:.1f} s")

        t0 = time.monotonic()
        remote = rpc.connect_tracker(host, int(port)).request(
            args.key, priority=1, session_timeout=args.session_timeout
        )
        print(f"got a '{args.key}' session in {time.monotonic() - t0:.1f} s")

        t0 = time.monotonic()
        remote.upload(os.path.join(tmp, lib_name))
        f = remote.load_module(lib_name)
        print(f"uploaded and loaded {lib_name} in {time.monotonic() - t0:.1f} s")

    dev = remote.cpu()
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal(args.n).astype("float32")
    b_np = rng.standard_normal(args.n).astype("float32")
    a = tvm.runtime.tensor(a_np, dev)
    b = tvm.runtime.tensor(b_np, dev)
    c = tvm.runtime.tensor(np.zeros(args.n, dtype="float32"), dev)
    entry = f.entry_name or "main"
    f[entry](a, b, c)
    err = float(np.max(np.abs(c.numpy() - (a_np + b_np))))
    ok = np.allclose(c.numpy(), a_np + b_np, rtol=1e-6, atol=1e-6)
    print(f"remote {entry}(A, B, C) on remote.cpu(): max |C - (A + B)| = {err:.3g} -> {'OK' if ok else 'MISMATCH'}")

    timer = f.time_evaluator(entry, dev, number=1, repeat=1)
    cost = timer(a, b, c).mean
    print(f"time_evaluator('{entry}', number=1, repeat=1): {cost * 1e6:.1f} us per call")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
