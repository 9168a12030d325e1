"""autotune: schedule templates, learned cost models and device measurement for TVM 0.27.

    import autotune
    task = autotune.Task.create("matmul", (1024, 1024, 1024))
    result = autotune.tune(task, n_trials=200, log="matmul.jsonl")
    func = autotune.apply_best("matmul.jsonl", task)
"""
__version__ = "0.1.0"

from autotune.apply import apply_best, best_config  # noqa: E402
from autotune.engine import Progress, TuneResult  # noqa: E402
from autotune.engine import tune_task as tune  # noqa: E402
from autotune.task import Task  # noqa: E402

__all__ = ["Progress", "Task", "TuneResult", "__version__", "apply_best", "best_config", "tune"]
