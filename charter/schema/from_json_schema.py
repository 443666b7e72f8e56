"""Turn a JSON Schema dict into a msgspec type, so contracts given as JSON Schema are checked
as fast as contracts given as Python types.

Covers what contracts use: ``type`` (one or a list), ``properties``/``required``,
``additionalProperties``, ``items``, ``enum``, ``const``, ``anyOf``/``oneOf``, string
``minLength maxLength pattern format``, number ``minimum maximum exclusiveMinimum
exclusiveMaximum``, array ``minItems maxItems``. Anything else is accepted as it is.
"""

from __future__ import annotations

import datetime as dt
import itertools
import typing
import uuid
from typing import Annotated, Any, Literal

import msgspec

__all__ = ["type_from_json_schema"]

_counter = itertools.count()
_FORMATS: dict[str, Any] = {
    "date-time": dt.datetime,
    "date": dt.date,
    "uuid": uuid.UUID,
}


def _meta(schema: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {ours: schema[theirs] for theirs, ours in names.items() if theirs in schema}


def type_from_json_schema(schema: Any, name: str = "Schema") -> Any:
    """The msgspec type that accepts exactly what ``schema`` describes (see module doc)."""
    if schema is True or schema == {}:
        return Any
    if not isinstance(schema, dict):
        raise TypeError(f"not a JSON Schema: {schema!r}")
    if "const" in schema:
        return Literal[schema["const"]]  # type: ignore[misc]
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]  # type: ignore[misc]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = tuple(
                type_from_json_schema(s, f"{name}{i}") for i, s in enumerate(schema[key])
            )
            return typing.Union[options]  # noqa: UP007
    kind = schema.get("type")
    if isinstance(kind, list):
        options = tuple(type_from_json_schema({**schema, "type": k}, name) for k in kind)
        return typing.Union[options]  # noqa: UP007
    if kind == "object" or (kind is None and "properties" in schema):
        return _object(schema, name)
    if kind == "array":
        items = type_from_json_schema(schema.get("items", {}), f"{name}Item")
        meta = _meta(schema, {"minItems": "min_length", "maxItems": "max_length"})
        return Annotated[list[items], msgspec.Meta(**meta)] if meta else list[items]  # type: ignore[valid-type]
    if kind == "string":
        base = _FORMATS.get(schema.get("format", ""), str)
        if base is not str:
            return base
        meta = _meta(
            schema, {"minLength": "min_length", "maxLength": "max_length", "pattern": "pattern"}
        )
        return Annotated[str, msgspec.Meta(**meta)] if meta else str
    if kind in ("integer", "number"):
        base = int if kind == "integer" else float
        meta = _meta(
            schema,
            {"minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt"},
        )
        return Annotated[base, msgspec.Meta(**meta)] if meta else base
    if kind == "boolean":
        return bool
    if kind == "null":
        return None
    return Any


def _object(schema: dict[str, Any], name: str) -> Any:
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    if not properties:
        if isinstance(extra, dict):
            return dict[str, type_from_json_schema(extra, f"{name}Value")]  # type: ignore[misc]
        return dict[str, Any]
    required = set(schema.get("required", ()))
    fields = []
    for prop, sub in properties.items():
        tp = type_from_json_schema(sub, f"{name}_{prop}")
        default = msgspec.NODEFAULT if prop in required else msgspec.UNSET
        if default is msgspec.UNSET:
            tp = tp | msgspec.UnsetType if tp is not Any else Any
        fields.append((prop, tp, default))
    return msgspec.defstruct(
        f"{name}{next(_counter)}",
        fields,
        kw_only=True,
        forbid_unknown_fields=extra is False,
    )
