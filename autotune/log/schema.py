"""The log line's format as data: `schema/<version>/record.schema.json`, one JSON Schema per version.

A new format is a new folder (and a converter), not an edit of checks in code. Each
constrained field's `description` says what it must be, which makes the one-line reason
of a rejected line ("result.costs is not a list of numbers").
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from typing import Any

import jsonschema

SCHEMA_DIR = os.path.join(os.path.dirname(__file__), "schema")


@cache
def validator(version: int) -> jsonschema.protocols.Validator:
    """The compiled validator of one schema version (its folder's schema, checked once)."""
    with open(os.path.join(SCHEMA_DIR, str(version), "record.schema.json"), encoding="utf-8") as stream:
        schema = json.load(stream)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def problem(data: Mapping[str, Any], version: int) -> str | None:
    """Why `data` is not a line of schema `version` (None: it is one), in one line."""
    error = jsonschema.exceptions.best_match(validator(version).iter_errors(data))
    if error is None:
        return None
    where = ".".join(str(part) for part in error.absolute_path if not isinstance(part, int)) or "the line"
    if error.validator == "required":
        return f"{where} has no {error.message.split(' is a required')[0]}"
    what = error.schema.get("description") if isinstance(error.schema, dict) else None
    return f"{where} is not {what}" if what else f"{where}: {error.message}"
