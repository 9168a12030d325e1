"""autotune: schedule templates, learned cost models and device measurement for TVM 0.27.

    import autotune
    task = autotune.Task.create("matmul", (1024, 1024, 1024))
    result = autotune.tune(task, "matmul.jsonl", autotune.TuneOptions(trials=200))
    func = autotune.apply_best("matmul.jsonl", task)

    imported = autotune.import_onnx("model.onnx")           # Relax, as imported
    tasks = autotune.with_alternatives(autotune.extract_tasks(autotune.lower(imported, layout=device.conv_layout), device))
    autotune.tune_model(tasks, "model.jsonl", autotune.TuneOptions(trials=2000))   # one task per workload and algorithm
    records = autotune.load_records("model.jsonl")
    module, tasks = autotune.lower_for_logs(imported, device, records)   # the faster algorithms
    scheduled, coverage = autotune.schedule_model(module, device, records, tasks=tasks)
    autotune.export_model(autotune.compile_model(scheduled, device), device, "model.so", inputs)
"""
__version__ = "0.1.0"

from autotune.apply import apply_best, best_config  # noqa: E402
from autotune.engine import Progress, TuneResult  # noqa: E402
from autotune.engine import tune_task as tune  # noqa: E402
from autotune.compile import (  # noqa: E402
    compile_model, export_model, extract_tasks, load_model, lower_for_logs, schedule_model, with_alternatives,
)
from autotune.model import import_onnx, load_onnx, lower  # noqa: E402
from autotune.log.jsonl import load_records  # noqa: E402
from autotune.options import TuneOptions  # noqa: E402
from autotune.scheduler import tune_model  # noqa: E402
from autotune.task import Task  # noqa: E402

__all__ = [
    "Progress", "Task", "TuneOptions", "TuneResult", "__version__", "apply_best", "best_config", "compile_model",
    "export_model", "extract_tasks", "import_onnx", "load_model", "load_onnx", "load_records", "lower",
    "lower_for_logs", "schedule_model", "tune", "tune_model", "with_alternatives",
]
