"""Implementations of a role by name, as MetaSchedule's `create(kind)`: every slot takes a name or an instance.

Each role (tuner, builder, runner) keeps a table of name -> (module, class); a module is
imported on first use, so an optional dependency breaks only what needs it.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def implementation(role: type[T], table: Mapping[str, tuple[str, str]], kind: str) -> type[T]:
    """The class registered as `kind` in `table`; ValueError naming the known ones otherwise."""
    if kind not in table:
        what = role.__name__.lower()
        raise ValueError(f"unknown {what} {kind!r}; known {what}s: {', '.join(table)}")
    module, name = table[kind]
    return getattr(importlib.import_module(module), name)


def create(role: type[T], table: Mapping[str, tuple[str, str]], kind: str | T, *args, **options) -> T:
    """An instance of `kind` made with `args` and `options`, or `kind` itself when it is already one.

    Options cannot reconfigure an instance, so passing both is an error rather than ignored.
    """
    if isinstance(kind, role):
        if options:
            raise ValueError(f"options {', '.join(options)} apply to a {role.__name__.lower()} made by name, not to an instance")
        return kind
    return implementation(role, table, kind)(*args, **options)
