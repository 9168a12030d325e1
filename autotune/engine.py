"""The tuning loop: propose, build, run, log, learn, until the budget or patience runs out."""
from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import tvm

from autotune import __version__
from autotune.log.jsonl import JsonLinesStore, load_records
from autotune.log.record import Record
from autotune.log.store import MemoryStore, RecordStore, as_store
from autotune.measure import Builder, ErrorKind, MeasureResult, Runner, create_builder, create_runner
from autotune.options import TuneOptions
from autotune.task import Task
from autotune.tuners import Tuner, create_tuner
from schedules import Config


class DeviceLostError(RuntimeError):
    """The device stayed away: the run stops, everything measured is in the log."""


@dataclass
class Progress:
    """Where a tuning run stands; passed to the progress callback after every batch."""

    task: Task
    measured: int  # new measurements in this run
    budget: int
    errors: int
    best_cost: float  # seconds, over this run and the resumed history
    elapsed: float
    resumed: int = 0
    search_seconds: float = 0.0  # spent proposing configs and learning from results

    @property
    def best_gflops(self) -> float:
        return self.task.gflops(self.best_cost) if self.best_cost < float("inf") else 0.0


@dataclass
class TuneResult:
    task: Task
    best_config: Config | None
    best_cost: float
    measured: int
    errors: int
    resumed: int
    elapsed: float
    search_seconds: float = 0.0
    records: list[Record] = field(default_factory=list)
    #: (wall seconds, search seconds) of each round: what the search costs beside measuring.
    rounds: list[tuple[float, float]] = field(default_factory=list)

    @property
    def worst_round_search_share(self) -> float:
        return max((search / wall for wall, search in self.rounds if wall > 0), default=0.0)

    @property
    def best_gflops(self) -> float:
        return self.task.gflops(self.best_cost) if self.best_config is not None else 0.0


def make_record(task: Task, config: Config, result: MeasureResult) -> Record:
    return Record(
        workload=task.workload,
        device=task.device.name,
        target=task.device.target,
        template=task.template.name,
        template_version=task.template.version,
        config=task.space.to_json(config),
        costs=result.costs,
        error=result.error,
        message=result.message,
        build_seconds=result.build_seconds,
        run_seconds=result.run_seconds,
        versions={"tvm": tvm.__version__, "autotune": __version__},
    )


class TuningSession:
    """One task's search state: its tuner, best so far and counters; `step` measures one batch.

    `tune_task` steps one session until its budget ends; the model task scheduler keeps
    one session per task and steps whichever promises most, sharing one builder, runner
    and log among them.
    """

    def __init__(self, task: Task, tuner: str | Tuner = "xgb", history: RecordStore | Iterable[Record] = (),
                 seed: int = 0, transfer: RecordStore | Iterable[Record] = ()):
        start = time.perf_counter()
        self.task = task
        self.search = create_tuner(tuner, task, seed)
        history, transfer = as_store(history), as_store(transfer)
        pairs = task.history(history)
        if pairs:
            self.search.load_history([c for c, _ in pairs], [r.result for _, r in pairs])
        if transfer.keys():  # a store is true even when empty
            self.search.load_transfer(transfer_samples(task, transfer))
        best = task.best(history)
        self.best_config, self.best_cost = (best[0], best[1].cost) if best else (None, float("inf"))
        self.resumed = len(pairs)
        self.measured = self.errors = self.since_improvement = 0
        self.records: list[Record] = []
        self.rounds: list[tuple[float, float]] = []
        self.search_seconds = time.perf_counter() - start
        #: the template's default goes first, so a tuned model is never slower than an untuned one
        self._default_pending = all(c.index != task.default_config.index for c, _ in pairs)

    def step(self, n: int, builder: Builder, runner: Runner, store: RecordStore) -> int:
        """Measure up to `n` new configs, adding each to `store` as it arrives; returns how many (0: space exhausted)."""
        round_start = time.perf_counter()
        batch = self._next_batch(n)
        round_search = time.perf_counter() - round_start
        if not batch:
            return 0
        inputs = [self.task.measure_input(config) for config in batch]
        logged: dict[int, Record] = {}
        lock = threading.Lock()

        def log_result(position: int, result: MeasureResult) -> None:
            """Append as soon as measured (runners call this from their threads)."""
            if result.error is ErrorKind.DEVICE_LOST:
                return  # unmeasured: kept out of the log, so a resumed run measures it
            record = make_record(self.task, batch[position], result)
            with lock:
                store.add(record)
                logged[position] = record

        results = runner.run(inputs, builder.build(inputs), log_result)
        for position, result in enumerate(results):
            if position not in logged:  # a runner that does not report as it goes
                log_result(position, result)
        kept = sorted(logged)
        done_configs, done_results = [batch[p] for p in kept], [results[p] for p in kept]
        for config, result, position in zip(done_configs, done_results, kept):
            self.records.append(logged[position])
            self.measured += 1
            self.errors += not result.ok
            self.since_improvement += 1
            if result.cost < self.best_cost:
                self.best_config, self.best_cost, self.since_improvement = config, result.cost, 0
        learning = time.perf_counter()
        self.search.update(done_configs, done_results)
        round_search += time.perf_counter() - learning
        self.search_seconds += round_search
        self.rounds.append((time.perf_counter() - round_start, round_search))
        lost = [r for r in results if r.error is ErrorKind.DEVICE_LOST]
        if lost:
            raise DeviceLostError(f"{lost[0].message}; {self.measured} new results are in the log, run again to resume")
        return len(batch)

    def _next_batch(self, n: int) -> list[Config]:
        if not self._default_pending:
            return self.search.next_batch(n)
        self._default_pending = False
        default = self.task.default_config
        self.search.visited.add(default.index)
        return [default] + self.search.next_batch(n - 1) if n > 1 else [default]

    def result(self, elapsed: float) -> TuneResult:
        return TuneResult(self.task, self.best_config, self.best_cost, self.measured, self.errors, self.resumed,
                          elapsed, self.search_seconds, self.records, self.rounds)


#: Two measurements of a best config within this ratio of each other settle its figure; apart,
#: a third one decides (the store keeps a config's median line).
AGREEMENT = 1.1
#: Batches of the closing re-measurement at most: a median that hands the lead to another config
#: sends that config to be measured again, and so on.
SETTLING_ROUNDS = 4


def settled(lines: Sequence[Record]) -> bool:
    """Whether a config's lines settle its figure: three of them, or two correct ones that agree."""
    correct = sorted(r.cost for r in lines if r.ok)
    return len(lines) >= 3 or (len(correct) == 2 and correct[1] <= AGREEMENT * correct[0])


def remeasure_bests(sessions: Sequence[TuningSession], builder: Builder, runner: Runner, store: RecordStore) -> int:
    """Measure each session's best config again until its figure is settled; returns how many measurements.

    One batch measures every best once more, and each later batch the bests not yet settled: a
    short task's trials all fall within seconds, in one slow spell of a shared machine, or in a
    fast one that a kernel living in a cache other tenants share will not see in the model. The
    store keeps each config's median line, so the log's figure of a best is one the model runs at.
    """
    count = 0
    for _ in range(SETTLING_ROUNDS):
        chosen = [(s, best) for s in sessions if (best := s.task.best(store)) and not settled(store.lines(best[1]))]
        if not chosen:
            break
        inputs = [s.task.measure_input(config) for s, (config, _) in chosen]
        for (session, (config, _)), result in zip(chosen, runner.run(inputs, builder.build(inputs))):
            if result.error is not ErrorKind.DEVICE_LOST:  # unmeasured, as in `step`
                store.add(make_record(session.task, config, result))
        count += len(inputs)
        for session, _ in chosen:
            config, record = session.task.best(store)
            session.best_config, session.best_cost = config, record.cost
    return count


def open_sessions(tasks: Sequence[Task], history: RecordStore, options: TuneOptions) -> list[TuningSession]:
    """A session per task, resumed from `history` (the run's log) and warm-started from `options.transfer_log`."""
    if options.transfer_log is not None and not os.path.isfile(options.transfer_log):
        raise ValueError(f"no such transfer log: {os.fspath(options.transfer_log)!r}")
    transfer = MemoryStore(load_records(options.transfer_log) if options.transfer_log else ())
    return [TuningSession(task, options.tuner, history, options.seed, transfer) for task in tasks]


@contextlib.contextmanager
def measurement(
    log: str | os.PathLike | None, builder: str | Builder = "local", runner: str | Runner = "local"
) -> Iterator[tuple[Builder, Runner, RecordStore]]:
    """The builder, runner and record store of one run, single-operator or model.

    The store is `log` itself (`JsonLinesStore`: loaded to resume the run, then each
    result appended), or one in memory when there is no log file. A builder or runner
    given by name is made here and closed at the end, also on Ctrl-C or an error; one
    given as an instance stays open for its owner to reuse.
    """
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(JsonLinesStore(log) if log else MemoryStore())
        if isinstance(builder, str):
            builder = stack.enter_context(create_builder(builder))
        if isinstance(runner, str):
            runner = stack.enter_context(create_runner(runner))
        yield builder, runner, store


def tune_task(
    task: Task,
    log: str | os.PathLike | None = None,
    options: TuneOptions | None = None,
    *,
    builder: str | Builder = "local",
    runner: str | Runner = "local",
    on_progress: Callable[[Progress], None] | None = None,
) -> TuneResult:
    """Measure up to `options.trials` new configs of `task`, appending each result to `log`.

    Configs already in the log are loaded into the tuner and never measured again; the
    template's default config is measured first. `on_progress` hears after every batch.
    """
    options = options or TuneOptions()
    start = time.perf_counter()
    with measurement(log, builder, runner) as (builder, runner, store):
        (session,) = open_sessions([task], store, options)
        while session.measured < options.trials and not options.out_of_time(start):
            if not session.step(min(options.batch_size, options.trials - session.measured), builder, runner, store):
                break  # the space is exhausted
            if on_progress:
                on_progress(Progress(task, session.measured, options.trials, session.errors, session.best_cost,
                                     time.perf_counter() - start, session.resumed, session.search_seconds))
            if options.early_stopping and session.since_improvement >= options.early_stopping:
                break
    return session.result(time.perf_counter() - start)


def transfer_samples(task: Task, records: RecordStore | Iterable[Record], per_workload: int = 500) -> list[tuple[Task, list, list]]:
    """Results of other workloads of `task`'s template version, device and CPU, grouped by workload."""
    store, samples = as_store(records), []
    for key in store.keys():
        if key.workload != task.key.workload and key.with_workload(task.key.workload) == task.key:
            other = Task(task.template, store.configs(key)[0].workload, task.device)
            pairs = other.history(store)[:per_workload]
            samples.append((other, [c for c, _ in pairs], [r.result for _, r in pairs]))
    return samples
