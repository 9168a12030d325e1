"""Applying one of TVM's dlight rules to a function, as both device families' defaults do."""
from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir import dlight
from tvm.target import Target


def apply_rule(rule: dlight.ScheduleRule, func: tirx.PrimFunc, target: Target) -> s_tir.Schedule | None:
    """The rule's schedule of `func`, or None where it does not apply or fails: dlight rules raise
    assertion, value and TVM errors on functions they do not expect, never fatal here."""
    try:
        with target:
            sch = rule.apply(func, target, False)
    except Exception:  # noqa: BLE001 - see the docstring
        return None
    if isinstance(sch, list):
        sch = sch[0] if sch else None
    return sch
