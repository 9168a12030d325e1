"""What a schedule template is: a workload's computation, its knob space, and how a config schedules it."""
from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from tvm import s_tir, tirx

from schedules.space import Config, ConfigSpace
from schedules.threading import define_threading, threading_defaults
from targets import Device


@dataclass(frozen=True)
class Workload:
    """An operator with its shapes and dtypes: what a tuning result is keyed on.

    The key is built from these plain values only (never from a hash of the IR), so it is
    the same on every machine, in every process and with every TVM build.
    """

    op: str
    args: tuple[tuple[str, Any], ...]

    @classmethod
    def make(cls, op: str, **args: Any) -> Workload:
        return cls(op, tuple(sorted(args.items())))

    def __getitem__(self, name: str) -> Any:
        return dict(self.args)[name]

    @property
    def key(self) -> str:
        return json.dumps([self.op, dict(self.args)], sort_keys=True, separators=(",", ":"))

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "args": dict(self.args)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Workload:
        return cls.make(data["op"], **data["args"])

    def __str__(self) -> str:
        return f"{self.op}(" + ", ".join(f"{k}={v}" for k, v in self.args) + ")"


class Template(ABC):
    """A schedule template for one operator on one device family.

    Subclasses declare `name`, `op`, `family` and `version` (bump it whenever the knob
    space or its meaning changes: logs from another version are not applied silently).
    An operator family's folder splits the two halves: `compute.py` has a base class with
    the computation every device family shares (`op`, `workload`, `match`, `compute`,
    `flops`, `make_inputs`, `reference`), and each device family's file (`cpu.py`) a
    subclass with `name`, `family`, `version` and the schedule (`define_space`,
    `default_values`, `apply`), e.g. `Conv2dCPU(Conv2dCompute)`.
    """

    name: ClassVar[str]
    op: ClassVar[str]
    family: ClassVar[str] = "cpu"
    version: ClassVar[int] = 1
    #: (rtol, atol) for comparing the kernel's output with the numpy reference.
    tolerance: ClassVar[tuple[float, float]] = (1e-4, 1e-4)
    #: The operator this template computes by another algorithm (Winograd for conv2d): its
    #: workloads have that operator's arguments, tuning measures both, compiling takes the faster.
    alternative_to: ClassVar[str | None] = None

    @abstractmethod
    def workload(self, shape: Sequence[int], dtype: str) -> Workload:
        """The workload for a user-given shape list (ValueError on a malformed one)."""

    @abstractmethod
    def match(self, sch: s_tir.Schedule) -> Workload | None:
        """The workload of this template's operator in a model's fused PrimFunc, or None.

        `apply` must schedule such a function as well as `compute`'s: the same anchor
        block, with padding producers and elementwise consumers around it.
        """

    @abstractmethod
    def compute(self, wl: Workload) -> tirx.PrimFunc:
        """The unscheduled PrimFunc: inputs first, the output last."""

    @abstractmethod
    def define_space(self, wl: Workload, device: Device) -> ConfigSpace:
        """The knob space for this workload on this device."""

    @abstractmethod
    def default_values(self, wl: Workload, device: Device, space: ConfigSpace) -> dict[str, Any]:
        """Knob values that are reasonable without tuning."""

    @abstractmethod
    def apply(self, sch: s_tir.Schedule, wl: Workload, cfg: Config, device: Device) -> None:
        """Schedule `sch` (made from `compute(wl)`) as `cfg` says."""

    @abstractmethod
    def flops(self, wl: Workload) -> int:
        """Floating-point operations of one call."""

    @abstractmethod
    def make_inputs(self, wl: Workload, rng: np.random.Generator) -> list[np.ndarray]:
        """Random inputs, in the PrimFunc's argument order."""

    @abstractmethod
    def reference(self, wl: Workload, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """The expected output, computed with numpy."""

    def serves(self, wl: Workload) -> bool:
        """Whether this alternative algorithm can compute `wl`, a workload of `alternative_to`."""
        return False

    def space(self, wl: Workload, device: Device) -> ConfigSpace:
        """The template's knobs plus the device's threading knobs (big.LITTLE CPUs only)."""
        space = self.define_space(wl, device)
        define_threading(space, device)
        return space

    def default_config(self, wl: Workload, device: Device, space: ConfigSpace | None = None) -> Config:
        space = space or self.space(wl, device)
        return space.config({**self.default_values(wl, device, space), **threading_defaults(device)})

    def upgrade_config(self, from_version: int, knobs: dict) -> dict | None:
        """Knob values of a config made by an older version of this template, or None when it cannot be converted."""
        return None

    def schedule(self, wl: Workload, cfg: Config, device: Device, function: tirx.PrimFunc | None = None) -> tirx.PrimFunc:
        """`function` (a model's function of this workload; default: `compute(wl)`) scheduled with `cfg`.

        A given function is scheduled on a copy: TVM 0.27's schedule can change the nodes it
        shares with the function it was made from, which the next config would then meet.
        """
        sch = s_tir.Schedule(self.compute(wl) if function is None else copy.deepcopy(function))
        self.apply(sch, wl, cfg, device)
        return sch.mod["main"]
