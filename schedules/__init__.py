"""Schedule templates and the search-space language they are written in."""
from schedules.registry import TemplateRegistry, default_registry
from schedules.space import (
    CategoricalKnob,
    Config,
    ConfigSpace,
    Knob,
    SplitKnob,
    UnrollKnob,
    VectorizeKnob,
)
from schedules.template import Template, Workload

__all__ = [
    "CategoricalKnob", "Config", "ConfigSpace", "Knob", "SplitKnob", "Template",
    "TemplateRegistry", "UnrollKnob", "VectorizeKnob", "Workload", "default_registry",
]
