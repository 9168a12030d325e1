"""Answer from recorded results: replaying a log makes tuner comparisons cheap and fair.

A config measured before (in the records given, or earlier through this runner) gets its
recorded result again; anything else is measured by the fallback runner, if there is
one, and remembered. Every tuner compared through one ReplayRunner sees the same cost
for the same config, so the comparison is about search, not about measurement noise.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from autotune.measure.result import BuildResult, MeasureInput, MeasureResult
from autotune.measure.runner import ResultCallback, Runner
from autotune.records import Record


def _key(workload_key: str, template: str, version: int, device: str, index: int) -> tuple:
    return workload_key, template, version, device, index


class ReplayRunner(Runner):
    def __init__(self, records: Iterable[Record] = (), fallback: Runner | None = None):
        self.fallback = fallback
        self._known: dict[tuple, MeasureResult] = {}
        for record in records:
            key = _key(record.workload.key, record.template, record.template_version, record.device, record.config["index"])
            self._known[key] = record.result
        self.replayed = self.measured = 0

    @staticmethod
    def key_of(inp: MeasureInput) -> tuple:
        return _key(inp.workload.key, inp.template.name, inp.template.version, inp.device.name, inp.config.index)

    def run(
        self, inputs: Sequence[MeasureInput], builds: Sequence[BuildResult], on_result: ResultCallback | None = None
    ) -> list[MeasureResult]:
        unknown = [i for i, inp in enumerate(inputs) if self.key_of(inp) not in self._known]
        if unknown and self.fallback is None:
            raise ValueError(f"{len(unknown)} configs are not in the replayed records and there is no fallback runner")
        if unknown:
            fresh = self.fallback.run(
                [inputs[i] for i in unknown], [builds[i] for i in unknown],
                on_result and (lambda position, result: on_result(unknown[position], result)),
            )
            for i, result in zip(unknown, fresh):
                self._known[self.key_of(inputs[i])] = result
            self.measured += len(unknown)
        self.replayed += len(inputs) - len(unknown)
        results = [self._known[self.key_of(inp)] for inp in inputs]
        if on_result:
            fresh = set(unknown)  # already reported by the fallback
            for i, result in enumerate(results):
                if i not in fresh:
                    on_result(i, result)
        return results

    def close(self) -> None:
        if self.fallback is not None:
            self.fallback.close()
