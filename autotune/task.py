"""A Task: one workload to tune with one template on one device."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from tvm import tirx

from autotune.measure.result import MeasureInput
from autotune.records import Record, same_machine
from schedules import Config, ConfigSpace, Template, TemplateRegistry, Workload, default_registry
from targets import Device, get_device


@dataclass(frozen=True, eq=False)
class Task:
    """A workload, the template that schedules it, the device; for a model's task, also the model's
    own function the template schedules (`function`), which is what tuning then builds and times."""

    template: Template
    workload: Workload
    device: Device
    function: tirx.PrimFunc | None = None

    @classmethod
    def create(
        cls,
        op: str,
        shape: Sequence[int],
        dtype: str = "float32",
        device: str | Device = "host",
        registry: TemplateRegistry | None = None,
    ) -> Task:
        """The task for an operator name and shape list, e.g. ("matmul", (1024, 1024, 1024))."""
        device = get_device(device) if isinstance(device, str) else device
        template = (registry or default_registry()).get(op, device.family)
        return cls(template, template.workload(shape, dtype), device)

    @cached_property
    def space(self) -> ConfigSpace:
        return self.template.space(self.workload, self.device)

    @cached_property
    def default_config(self) -> Config:
        return self.template.default_config(self.workload, self.device, self.space)

    @property
    def flops(self) -> int:
        return self.template.flops(self.workload)

    def measure_input(self, config: Config) -> MeasureInput:
        return MeasureInput(self.template, self.workload, config, self.device, self.function)

    def matches(self, record: Record) -> bool:
        """Whether a log record was measured for this task (same workload, device, CPU and template version)."""
        return (
            record.workload == self.workload
            and record.device == self.device.name
            and same_machine(record.target, self.device.target)
            and record.template == self.template.name
            and record.template_version == self.template.version
        )

    def config_of(self, record: Record) -> Config | None:
        """The record's config as a point of this task's space (None if it is not one)."""
        try:
            return self.space.from_json(record.config)
        except (ValueError, KeyError, TypeError, IndexError):
            return None

    def history(self, records: Iterable[Record]) -> list[tuple[Config, Record]]:
        """This task's records with their configs, skipping those that no longer fit the space."""
        pairs = []
        for record in records:
            if self.matches(record):
                config = self.config_of(record)
                if config is not None:
                    pairs.append((config, record))
        return pairs

    def best(self, records: Iterable[Record]) -> tuple[Config, Record] | None:
        """The fastest correct measured config of this task, if any."""
        measured = [(c, r) for c, r in self.history(records) if r.ok]
        return min(measured, key=lambda pair: pair[1].cost, default=None)

    def gflops(self, seconds: float) -> float:
        return self.flops / seconds / 1e9 if seconds > 0 else 0.0

    def __str__(self) -> str:
        return f"{self.workload} on {self.device.name} [{self.template.name} v{self.template.version}]"
