"""Turn a JSON Schema dict into a msgspec type, so contracts given as JSON Schema are checked
as fast as contracts given as Python types.

Covers what contracts use: ``type`` (one or a list), ``properties``/``required``,
``additionalProperties``, ``items``, ``enum``, ``const``, ``anyOf``/``oneOf``, string
``minLength maxLength pattern format``, number ``minimum maximum exclusiveMinimum
exclusiveMaximum``, array ``minItems maxItems``. Anything else is accepted as it is.

Two approximations, where msgspec has no exact type: an ``enum``/``const`` holding values other
than strings, integers, booleans and null checks only their JSON types; an ``anyOf``/``oneOf``
of several object shapes must be discriminated by a property each option fixes with ``const``
(it becomes a tagged union), and is refused otherwise.
"""

from __future__ import annotations

import datetime as dt
import itertools
import keyword
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
        return _literal([schema["const"]])
    if "enum" in schema:
        return _literal(list(schema["enum"]))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return _union(schema[key], name)
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


_LITERALS = (str, int, bool, type(None))
_JSON_TYPES = {bool: bool, int: int, float: float, str: str, list: list, dict: dict}


def _literal(values: list[Any]) -> Any:
    """``Literal[...]`` when msgspec can hold the values; else the union of their JSON types."""
    if all(isinstance(v, _LITERALS) for v in values):
        return Literal[tuple(values)]
    kinds = {_JSON_TYPES.get(type(v), Any) for v in values}
    if float in kinds:
        kinds.discard(int)
    return typing.Union[tuple(kinds)]  # noqa: UP007


def _union(schemas: list[Any], name: str) -> Any:
    """``anyOf``/``oneOf``: several object shapes become a union tagged by a ``const``."""
    objects = [s for s in schemas if isinstance(s, dict) and _is_object(s)]
    if len(objects) < 2:
        options = tuple(type_from_json_schema(s, f"{name}{i}") for i, s in enumerate(schemas))
        return typing.Union[options]  # noqa: UP007
    tag = _discriminator(objects)
    if tag is None:
        raise TypeError(
            f"{name}: anyOf/oneOf of several objects needs a property that each option fixes "
            "with const (a discriminator)"
        )
    options = tuple(
        _object(s, f"{name}{i}", tag) if s in objects else type_from_json_schema(s, f"{name}{i}")
        for i, s in enumerate(schemas)
    )
    return typing.Union[options]  # noqa: UP007


def _is_object(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" or ("type" not in schema and "properties" in schema)


def _discriminator(objects: list[dict[str, Any]]) -> str | None:
    """A property every object fixes to a distinct string or integer (``const`` or one enum)."""
    first: dict[str, Any] = objects[0].get("properties", {})
    for prop in first:
        values = [_const(o.get("properties", {}).get(prop)) for o in objects]
        if all(isinstance(v, str | int) and not isinstance(v, bool) for v in values) and len(
            set(values)
        ) == len(values):
            return str(prop)
    return None


def _const(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    return enum[0] if isinstance(enum, list) and len(enum) == 1 else None


def _object(schema: dict[str, Any], name: str, tag: str | None = None) -> Any:
    properties: dict[str, Any] = dict(schema.get("properties", {}))
    extra = schema.get("additionalProperties", True)
    required = set(schema.get("required", ()))
    for prop in sorted(required - properties.keys()):
        properties[prop] = {}  # required, of any type
    if not properties:
        if isinstance(extra, dict):
            return dict[str, type_from_json_schema(extra, f"{name}Value")]  # type: ignore[misc]
        return dict[str, Any]
    fields = []
    rename: dict[str, str] = {}
    for i, (prop, sub) in enumerate(properties.items()):
        if prop == tag:
            continue  # the tag field of a tagged union: checked by msgspec as the tag
        tp = type_from_json_schema(sub, f"{name}_{prop}")
        default = msgspec.NODEFAULT if prop in required else msgspec.UNSET
        if default is msgspec.UNSET:
            tp = tp | msgspec.UnsetType if tp is not Any else Any
        attr = prop if prop.isidentifier() and not keyword.iskeyword(prop) else f"field{i}_"
        if attr != prop:
            rename[attr] = prop  # JSON names that are not Python identifiers
        fields.append((attr, tp, default))
    return msgspec.defstruct(
        f"{name}{next(_counter)}",
        fields,
        kw_only=True,
        forbid_unknown_fields=extra is False,
        rename=rename or None,
        tag_field=tag,
        tag=_const(properties[tag]) if tag is not None else None,
    )
