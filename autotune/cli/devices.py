"""`autotune devices`: the presets, and the devices a tracker knows."""
from __future__ import annotations

import argparse
import os

from autotune.cli.common import reach_tracker


def cmd_devices(args: argparse.Namespace) -> int:
    from targets import PRESETS, get_device

    use_tracker = bool(args.tracker or os.environ.get("TVM_TRACKER_HOST"))
    summary = reach_tracker(args.tracker, "")[1] if use_tracker else {}
    print(f"{'preset':15s} {'family':7s} {'threads':>7s}  {'rpc key':15s} description")
    for name in PRESETS:
        device = get_device(name)
        print(f"{name:15s} {device.family:7s} {device.num_threads:>7d}  {device.rpc_key or '-':15s} {device.description}")
    gpus = {name: get_device(name).gpu for name in PRESETS if get_device(name).gpu is not None}
    if gpus:
        print("\nGPU limits (every compiled kernel is checked against them):")
    for name, gpu in gpus.items():
        registers = f"{gpu.registers_per_thread} registers per thread" if gpu.registers_per_thread else "shared registers"
        print(f"  {name:15s} {gpu.name}: {gpu.shader_cores} cores, lock-step {gpu.lockstep_width}, "
              f"<= {gpu.max_threads_per_work_group} threads per work group, {registers}, "
              f"{gpu.local_memory_bytes // 1024} KiB local memory")
    if use_tracker:
        print("\ndevices registered with the tracker:")
        queues = summary.get("queue_info", {})
        if not queues:
            print("  none")
        for key, queue in sorted(queues.items()):
            print(f"  {key:20s} free {queue.get('free', 0)}, queued requests {queue.get('pending', 0)}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    devices = commands.add_parser("devices", help="list device presets and the devices a tracker knows")
    devices.add_argument("--tracker", help="HOST:PORT of a TVM RPC tracker (or TVM_TRACKER_HOST/TVM_TRACKER_PORT)")
    devices.set_defaults(run=cmd_devices)
