"""autotune: schedule templates, learned cost models and device measurement for TVM 0.27.

    import autotune
    task = autotune.Task.create("matmul", (1024, 1024, 1024))
    result = autotune.tune(task, n_trials=200, log="matmul.jsonl")
    func = autotune.apply_best("matmul.jsonl", task)

    module = autotune.load_onnx("model.onnx")              # lowered Relax module
    tasks = autotune.extract_tasks(module, device)          # one per distinct workload
    autotune.tune_model(tasks, 2000, log="model.jsonl")
    scheduled, coverage = autotune.schedule_model(module, device, autotune.load_records("model.jsonl"))
    autotune.export_model(autotune.compile_model(scheduled, device), device, "model.so", inputs)
"""
__version__ = "0.1.0"

from autotune.apply import apply_best, best_config  # noqa: E402
from autotune.engine import Progress, TuneResult  # noqa: E402
from autotune.engine import tune_task as tune  # noqa: E402
from autotune.compile import compile_model, export_model, extract_tasks, load_model, schedule_model  # noqa: E402
from autotune.model import load_onnx  # noqa: E402
from autotune.records import load_records  # noqa: E402
from autotune.scheduler import tune_model  # noqa: E402
from autotune.task import Task  # noqa: E402

__all__ = [
    "Progress", "Task", "TuneResult", "__version__", "apply_best", "best_config", "compile_model", "export_model",
    "extract_tasks", "load_model", "load_onnx", "load_records", "schedule_model", "tune", "tune_model",
]
