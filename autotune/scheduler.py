"""Tuning a whole model: a global trial budget split across its tasks where it gains most.

Every task first gets one small batch (its default config first), so each has a measured
latency. After that each batch goes to the task with the largest expected end-to-end
gain: calls per inference x current best latency x recent improvement rate, in the
spirit of Ansor's gradient task scheduler. Tasks that compute one operator by different
algorithms (`ModelTask.alternative_of`) count once, by the faster: a slower one gains
only what would make it the faster, and stops when even its optimistic next batch would
not. A task that has not improved for `patience` trials, or whose space is exhausted,
stops. All tasks share one builder, one runner and one log, so an interrupted run
resumes where it stopped. The run ends by measuring each task's best config again until its
figure is settled (`TuneOptions.remeasure_best`, `engine.remeasure_bests`), within its time budget.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from autotune.compile import ModelTask
from autotune.engine import TuningSession, measurement, open_sessions, remeasure_bests
from autotune.measure import Builder, Runner
from autotune.options import TuneOptions


@dataclass
class TaskProgress:
    """One task of a model run, as the scheduler sees it."""

    model_task: ModelTask
    session: TuningSession
    best_history: list[float] = field(default_factory=list)  # best latency after each of its batches
    done: bool = False

    @property
    def latency(self) -> float:
        """Seconds this task adds to one inference (calls x best latency)."""
        return self.model_task.calls * self.session.best_cost

    @property
    def trials(self) -> int:
        return self.session.resumed + self.session.measured

    def gain(self, operator_latency: float, window: int = 2) -> float:
        """Expected latency saved by one more batch, when its operator now costs `operator_latency`.

        The task's latency is expected to fall by its recent relative improvement (over
        the last `window` batches), but never less than an optimistic prior that decays
        with the batches spent, so a task that stalls once is not abandoned at once.
        """
        history = self.best_history
        if not history or history[-1] == float("inf"):
            return float("inf")
        before = history[-window - 1] if len(history) > window else history[0]
        recent = (before - history[-1]) / before if before < float("inf") else 1.0
        prior = 0.5 / len(history)
        return max(0.0, operator_latency - self.latency * (1 - max(recent, prior)))


@dataclass
class ModelProgress:
    """Where a model run stands; passed to the progress callback after every batch."""

    tasks: list[TaskProgress]
    measured: int  # new measurements in this run
    budget: int
    elapsed: float
    current: TaskProgress | None = None
    remeasured: int = 0  # measurements of the tasks' best configs at the end, until settled

    def operator_latency(self) -> dict[str, float]:
        """Seconds per inference of each operator: its fastest task's."""
        fastest: dict[str, float] = {}
        for t in self.tasks:
            key = t.model_task.operator_key
            fastest[key] = min(fastest.get(key, float("inf")), t.latency)
        return fastest

    @property
    def latency(self) -> float:
        """Estimated seconds of the tuned operators per inference (of the operators measured so far)."""
        return sum(x for x in self.operator_latency().values() if x < float("inf"))

    @property
    def unmeasured(self) -> int:
        return sum(t.latency == float("inf") for t in self.tasks)

    @property
    def errors(self) -> int:
        return sum(t.session.errors for t in self.tasks)


def tune_model(
    tasks: Sequence[ModelTask],
    log: str | os.PathLike,
    options: TuneOptions | None = None,
    *,
    builder: str | Builder = "local",
    runner: str | Runner = "local",
    on_progress: Callable[[ModelProgress], None] | None = None,
) -> ModelProgress:
    """Measure up to `options.trials` new configs over the model's tasks, resuming from `log`."""
    options = options or TuneOptions()
    start = time.perf_counter()
    with measurement(log, builder, runner) as (builder, runner, store):
        sessions = open_sessions([t.task for t in tasks], store, options)
        states = [TaskProgress(t, session) for t, session in zip(tasks, sessions)]
        for state in states:
            if state.session.best_cost < float("inf"):
                state.best_history.append(state.session.best_cost)
        progress = ModelProgress(states, 0, options.trials, 0.0)
        while progress.measured < options.trials and not options.out_of_time(start, _remeasure_time(progress, options)):
            active = [s for s in states if not s.done]
            if not active:
                break
            fresh = [s for s in active if not s.best_history]
            if fresh:
                state = fresh[0]
            else:
                operators = progress.operator_latency()
                gains = {id(s): s.gain(operators[s.model_task.operator_key]) for s in active}
                for s in active:  # an algorithm that cannot catch up with its operator's faster one stops
                    s.done = gains[id(s)] == 0
                active = [s for s in active if not s.done]
                if not active:
                    break
                state = max(active, key=lambda s: gains[id(s)])
            size = min(options.first_batch if fresh else options.batch_size, options.trials - progress.measured)
            count = state.session.step(size, builder, runner, store)
            state.best_history.append(state.session.best_cost)
            state.done = count == 0 or state.session.since_improvement >= options.patience
            progress.measured += count
            progress.elapsed = time.perf_counter() - start
            progress.current = state
            if on_progress:
                on_progress(progress)
        if options.remeasure_best:
            progress.remeasured = remeasure_bests([s.session for s in states], builder, runner, store)
    progress.elapsed = time.perf_counter() - start
    return progress


#: Measurements of each best config the closing re-measurement makes, on average (every best once,
#: those whose two figures disagree once more, and the bests that a median hands the lead to).
REMEASUREMENTS_PER_BEST = 1.5


def _remeasure_time(progress: ModelProgress, options: TuneOptions) -> float:
    """Seconds the closing re-measurement of the tasks' bests will take, at this run's pace per trial."""
    if not options.remeasure_best or not progress.measured:
        return 0.0
    bests = sum(s.session.best_config is not None for s in progress.tasks)
    return progress.elapsed / progress.measured * bests * REMEASUREMENTS_PER_BEST
