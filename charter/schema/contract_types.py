"""The checkable type and the JSON Schema of a contract's schemas (types, JSON Schema dicts or
error shapes), built from the declarations of ``charter.model.contracts``."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from ..model.contracts import ErrorSchema
from .from_json_schema import type_from_json_schema

__all__ = ["schema_json", "schema_type"]


@functools.lru_cache(maxsize=256)
def _error_type(shape: ErrorSchema) -> Any:
    return type_from_json_schema(shape.json_schema(), "Error")


def schema_type(schema: Any, name: str) -> Any:
    """The msgspec type for a contract schema given as a type, a JSON Schema or an error shape."""
    if isinstance(schema, ErrorSchema):
        return _error_type(schema)
    if isinstance(schema, dict):
        return type_from_json_schema(schema, name)
    return schema


def schema_json(schema: Any) -> dict[str, Any]:
    """The JSON Schema of a contract schema (for OpenAPI)."""
    if isinstance(schema, ErrorSchema):
        return schema.json_schema()
    if isinstance(schema, dict):
        return schema
    return msgspec.json.schema(schema)
