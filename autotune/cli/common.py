"""What every group of commands shares: one-line errors, argument checks, and the tuning set-up."""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from autotune.cli.display import ProgressLine
from autotune.engine import DeviceLostError
from autotune.measure import Runner, TimingOptions, create_runner
from autotune.measure.rpc_runner import DeviceMismatchError, RPCRunner, Tracker
from autotune.options import TuneOptions
from autotune.tuners import TUNERS
from targets import Device

R = TypeVar("R")


class Exit(Exception):
    """Ends a command with `code` after one line on stderr."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class UsageError(Exit):
    """A user mistake: reported as one line with exit code 2."""

    def __init__(self, message: str):
        super().__init__(2, f"autotune: error: {message}")


def parse_shape(text: str) -> list[int]:
    try:
        shape = [int(part) for part in text.replace("x", ",").split(",")]
    except ValueError:
        raise UsageError(f"malformed shape {text!r}: expected positive integers like 1024,1024,1024") from None
    if not shape or any(d < 1 for d in shape):
        raise UsageError(f"malformed shape {text!r}: expected positive integers like 1024,1024,1024")
    return shape


def check_writable(path: str) -> None:
    """Fail before tuning, not after the first measured batch."""
    if os.path.isdir(path):
        raise UsageError(f"log path {path!r} is a directory")
    existed = os.path.exists(path)
    try:
        with open(path, "a"):
            pass
    except OSError as error:
        raise UsageError(f"cannot write log {path!r}: {error.strerror}") from None
    if not existed:
        os.unlink(path)  # the tuning run creates it; a failed command leaves nothing behind


def check_readable(path: str) -> None:
    if not os.path.isfile(path):
        raise UsageError(f"no such log file: {path!r}")


def add_tuning_flags(parser: argparse.ArgumentParser, default_trials: int) -> None:
    parser.add_argument("--trials", type=int, default=default_trials, help=f"new measurements to make (default {default_trials})")
    parser.add_argument("--tuner", choices=sorted(TUNERS), default="xgb", help="search strategy (default xgb)")
    parser.add_argument("--rpc", action="store_true", help="measure on the device through a TVM RPC tracker")
    parser.add_argument("--tracker", help="HOST:PORT of the tracker (default TVM_TRACKER_HOST:TVM_TRACKER_PORT)")
    parser.add_argument("--rpc-key", help="device key at the tracker (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=16, help="candidates built and measured per round")
    parser.add_argument("--seed", type=int, default=0)
    timing = TimingOptions()
    parser.add_argument("--repeat", type=int, default=timing.repeat, help="timed repeats per candidate; the median counts")
    parser.add_argument("--min-repeat-ms", type=int, default=timing.min_repeat_ms, help="shortest repeat; calls are added until reached")
    parser.add_argument("--cooldown-ms", type=int, default=timing.cooldown_ms, help="pause between repeats")
    parser.add_argument("--run-timeout", type=float, default=timing.timeout, help="seconds before a candidate's run is killed")


def add_this_host_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--this-host", action="store_true",
                        help="a GPU preset's kernels with this machine as their host instead of the board's CPU "
                             "(to run them here on an OpenCL such as PoCL, or on an x86 RPC server standing in)")


def check_tuning_flags(args: argparse.Namespace) -> None:
    """The flags in the user's terms (TuneOptions checks its fields again for API callers)."""
    for flag in ("trials", "batch_size", "repeat", "early_stopping"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be positive, got {value}")
    for flag in ("min_repeat_ms", "cooldown_ms"):
        if getattr(args, flag) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must not be negative, got {getattr(args, flag)}")
    if args.run_timeout <= 0:
        raise UsageError(f"--run-timeout must be positive, got {args.run_timeout:g}")
    if (args.tracker or args.rpc_key) and not args.rpc:
        raise UsageError("--tracker and --rpc-key take effect with --rpc only")


def tune_options(args: argparse.Namespace, **options) -> TuneOptions:
    """The engine's options from the tuning flags (plus a command's own `options`)."""
    check_tuning_flags(args)
    try:
        return TuneOptions(trials=args.trials, tuner=args.tuner, batch_size=args.batch_size, seed=args.seed, **options)
    except ValueError as error:
        raise UsageError(str(error)) from None


def reach_tracker(address: str | None, key: str) -> tuple[Tracker, dict]:
    """The tracker at `address` (or from the environment) and its summary, or a usage error."""
    try:
        tracker = Tracker.parse(address, key)
        return tracker, tracker.summary()
    except ValueError as error:
        raise UsageError(str(error)) from None
    except Exception:  # noqa: BLE001 - refused, unreachable, not a tracker
        raise UsageError(f"no RPC tracker answers at {address or 'TVM_TRACKER_HOST:TVM_TRACKER_PORT'}") from None


def rpc_tracker(args: argparse.Namespace, device: Device) -> Tracker | None:
    """Where to measure: None for this machine, else the tracker and key of the device."""
    if not args.rpc:
        if device.cross_compiler or device.family != "cpu":
            raise UsageError(f"device {device.name!r} cannot run here: measure on it with --rpc (and --tracker)")
        return None
    tracker, _ = reach_tracker(args.tracker, args.rpc_key or device.rpc_key or device.name)
    return tracker


@contextmanager
def measuring_runner(args: argparse.Namespace, tracker: Tracker | None, device: Device) -> Iterator[Runner]:
    """The one place the CLI makes a runner: this machine's, or the device's behind `tracker`."""
    timing = TimingOptions(repeat=args.repeat, min_repeat_ms=args.min_repeat_ms, cooldown_ms=args.cooldown_ms,
                           timeout=args.run_timeout)
    options = {"tracker": tracker} if tracker else {}
    with create_runner("rpc" if tracker else "local", timing=timing, **options) as runner:
        if isinstance(runner, RPCRunner):
            check_device(runner, device)
        yield runner


def check_device(runner: RPCRunner, device: Device) -> None:
    """A usage error, before the first trial, when the devices under the key cannot run the preset's candidates."""
    try:
        runner.check(device)
    except DeviceMismatchError as error:
        standing_in = error.wrong_architecture and device.family != "cpu" and device.cross_compiler
        hint = "; a server on this machine standing in for the board (e.g. on PoCL) needs --this-host" if standing_in else ""
        raise UsageError(f"{error}{hint}") from None


def run_tuning(args: argparse.Namespace, tracker: Tracker | None, device: Device, log: str, progress: ProgressLine,
               tune: Callable[[Runner], R]) -> R:
    """`tune` with the runner; Ctrl-C and a lost device end the command with one line and the log intact."""
    try:
        with measuring_runner(args, tracker, device) as runner:
            return tune(runner)
    except KeyboardInterrupt:
        raise Exit(130, f"interrupted: every finished measurement is in {log}; run the same command to resume") from None
    except DeviceLostError as error:
        raise Exit(1, f"autotune: device lost: {error}") from None
    finally:
        progress.done()
