"""A Task: one workload to tune with one template on one device."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from tvm import tirx

from autotune.log.key import RecordKey
from autotune.log.record import Record
from autotune.log.store import RecordStore, as_store
from autotune.measure.result import MeasureInput
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
    def key(self) -> RecordKey:
        """The key of this task's records: its workload, template version, device and CPU."""
        return RecordKey.of(self.workload, self.template, self.device)

    @cached_property
    def default_config(self) -> Config:
        return self.template.default_config(self.workload, self.device, self.space)

    @property
    def flops(self) -> int:
        return self.template.flops(self.workload)

    def measure_input(self, config: Config) -> MeasureInput:
        return MeasureInput(self.template, self.workload, config, self.device, self.function)

    def matches(self, record: Record) -> bool:
        """Whether a log record was measured for this task (same workload, template version, device and CPU)."""
        return record.key == self.key

    def config_of(self, record: Record) -> Config | None:
        """The record's config as a point of this task's space (None if it is not one)."""
        try:
            return self.space.from_json(record.config)
        except (ValueError, KeyError, TypeError, IndexError):
            return None

    def history(self, records: RecordStore | Iterable[Record]) -> list[tuple[Config, Record]]:
        """This task's configs with their kept records, skipping those that no longer fit the space."""
        pairs = [(self.config_of(record), record) for record in as_store(records).configs(self.key)]
        return [(config, record) for config, record in pairs if config is not None]

    def best(self, records: RecordStore | Iterable[Record]) -> tuple[Config, Record] | None:
        """The fastest correct measured config of this task, if any (a store's index, not a scan)."""
        for record in as_store(records).ranked(self.key):
            config = self.config_of(record)
            if config is not None:
                return config, record
        return None

    def gflops(self, seconds: float) -> float:
        return self.flops / seconds / 1e9 if seconds > 0 else 0.0

    def __str__(self) -> str:
        return f"{self.workload} on {self.device.name} [{self.template.name} v{self.template.version}]"
