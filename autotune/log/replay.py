"""Answer from recorded results: replaying a log makes tuner comparisons cheap and fair.

A config measured before (in the store given, or earlier through this runner) gets its
recorded result again; anything else is measured by the fallback runner, if there is
one, and remembered. Every tuner compared through one ReplayRunner sees the same cost
for the same config, so the comparison is about search, not about measurement noise.

It lives in the log package, not in `measure`: it is a Runner whose answers come from
the log, and the log sits above measurement (records hold measure results), never below.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from autotune.log.key import RecordKey, config_id
from autotune.log.record import Record
from autotune.log.store import RecordStore, as_store
from autotune.measure.result import BuildResult, MeasureInput, MeasureResult
from autotune.measure.runner import ResultCallback, Runner


class ReplayRunner(Runner):
    def __init__(self, records: RecordStore | Iterable[Record] = (), fallback: Runner | None = None):
        self.store = as_store(records)
        self.fallback = fallback
        self._fresh: dict[tuple[RecordKey, str], MeasureResult] = {}
        self.replayed = self.measured = 0

    @staticmethod
    def slot(inp: MeasureInput) -> tuple[RecordKey, str]:
        """The record key and config identity of a candidate: what the store is indexed by."""
        return RecordKey.of(inp.workload, inp.template, inp.device), config_id({"knobs": inp.config.values})

    def known(self, inp: MeasureInput) -> MeasureResult | None:
        """The candidate's recorded result (the store's, else one measured through this runner), if any."""
        key, config = self.slot(inp)
        record = self.store.find_id(key, config)
        return record.result if record else self._fresh.get((key, config))

    def run(
        self, inputs: Sequence[MeasureInput], builds: Sequence[BuildResult], on_result: ResultCallback | None = None
    ) -> list[MeasureResult]:
        results = [self.known(inp) for inp in inputs]
        unknown = [i for i, result in enumerate(results) if result is None]
        if unknown and self.fallback is None:
            raise ValueError(f"{len(unknown)} configs are not in the replayed records and there is no fallback runner")
        if unknown:
            fresh = self.fallback.run(
                [inputs[i] for i in unknown], [builds[i] for i in unknown],
                on_result and (lambda position, result: on_result(unknown[position], result)),
            )
            for i, result in zip(unknown, fresh):
                self._fresh[self.slot(inputs[i])] = results[i] = result
            self.measured += len(unknown)
        self.replayed += len(inputs) - len(unknown)
        if on_result:
            measured = set(unknown)  # already reported by the fallback
            for i, result in enumerate(results):
                if i not in measured:
                    on_result(i, result)
        return results

    def close(self) -> None:
        if self.fallback is not None:
            self.fallback.close()
