"""Resolve attribute paths against table schemas, and type condition values.

A path is a list of names: relationships to follow (``brand``), then a declared attribute
(``name``), then optionally names inside a nested object attribute (``address.city``).
``$id`` names the primary key; ``$updatedtime`` the record's version (ms since the epoch).
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import msgspec

from ..errors import InvalidQuery
from ..schema import TableSchema
from ..schema.table_schema import FieldSpec, RelationshipSpec, _strip_optional
from .parser import RawValue

__all__ = ["Catalog", "Hop", "Target", "resolve", "typed_value"]

Catalog = Mapping[str, TableSchema]

ID, UPDATED = "$id", "$updatedtime"


@dataclass(frozen=True, slots=True)
class Hop:
    """One relationship followed from ``source`` to ``target``."""

    relationship: RelationshipSpec
    source: TableSchema
    target: TableSchema


@dataclass(frozen=True, slots=True)
class Target:
    """Where a path lands: the hops, the final table, and the attribute path in its documents."""

    hops: tuple[Hop, ...]
    schema: TableSchema
    path: tuple[str, ...]
    field: FieldSpec | None
    is_key: bool = False
    is_version: bool = False

    @property
    def name(self) -> str:
        return ".".join([h.relationship.name for h in self.hops] + list(self.path))

    @property
    def indexed(self) -> bool:
        if self.is_key:
            return True
        return len(self.path) == 1 and self.path[0] in self.schema.indexes

    @property
    def is_list(self) -> bool:
        return self.field is not None and len(self.path) == 1 and _list_item(self.field.type)

    @property
    def is_number(self) -> bool:
        if self.field is None or len(self.path) != 1:
            return False
        inner, _ = _strip_optional(self.field.type)
        return inner in (int, float) or self.is_version


def _list_item(tp: Any) -> bool:
    inner, _ = _strip_optional(tp)
    return get_origin(inner) in (list, set, frozenset, tuple)


def resolve(
    catalog: Catalog, schema: TableSchema, path: list[str], *, public: bool, what: str
) -> Target:
    """Follow ``path`` from ``schema``; ``InvalidQuery`` if it names what does not exist."""
    hops: list[Hop] = []
    full = ".".join(path)
    if not path or not all(isinstance(p, str) and p for p in path):
        raise InvalidQuery(f"{what}: {full!r} is not an attribute path")
    index = 0
    while path[index] in schema.relationships:
        rel = schema.relationships[path[index]]
        target = catalog.get(rel.target)
        if target is None:
            raise InvalidQuery(f"{what}: relationship {full} names an unknown table")
        hops.append(Hop(rel, schema, target))
        schema = target
        index += 1
        if index == len(path):
            raise InvalidQuery(f"{what}: {full} is a relationship; name one of its attributes")
    name, rest = path[index], path[index + 1 :]
    if name == ID and not rest:
        return Target(tuple(hops), schema, (schema.primary_key,), None, is_key=True)
    if name == UPDATED and not rest:
        return Target(tuple(hops), schema, (), None, is_version=True)
    spec = schema.fields.get(name)
    if spec is None and schema.options.extra != "allow":
        raise InvalidQuery(f"{what}: {full} is not an attribute of {schema.name}")
    if public and name in schema.hidden:
        raise InvalidQuery(f"{what}: {full} is not an attribute of {schema.name}")
    if not all(part.isidentifier() and part.isascii() for part in (name, *rest)):
        raise InvalidQuery(f"{what}: {full!r} is not an attribute path")
    key = name == schema.primary_key and not rest
    return Target(tuple(hops), schema, (name, *rest), spec if not rest else None, is_key=key)


def typed_value(target: Target, value: Any, *, element: bool = False, text: bool = False) -> Any:
    """A condition value typed by the attribute's declared type, then made bindable."""
    if value is None:
        return None
    if text:
        return _bindable(str(value) if isinstance(value, str) else _storable(value))
    if isinstance(value, RawValue):
        tp: Any = target.field.type if target.field is not None else None
        if target.is_version:
            tp = int
        if tp is not None and element:
            inner, _ = _strip_optional(tp)
            args = get_args(inner)
            tp = args[0] if args else Any
        if tp is not None and tp is not Any:
            inner, _ = _strip_optional(tp)
            try:
                value = msgspec.convert(str(value), inner, strict=False)
            except (msgspec.ValidationError, TypeError):
                message = f"{str(value)!r} is not a valid value for {target.name}"
                raise InvalidQuery(message) from None
        else:
            value = str(value)
    return _bindable(_storable(value))


def _storable(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time | uuid.UUID | decimal.Decimal):
        return msgspec.to_builtins(value)
    if isinstance(value, enum.Enum):
        return _storable(value.value)
    return msgspec.json.encode(value).decode()


def _bindable(value: Any) -> Any:
    """A value SQLite can bind: huge integers become floats, strings must be valid Unicode."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        try:
            return float(value)
        except OverflowError:
            return float("inf") if value > 0 else float("-inf")
    if isinstance(value, float) and value != value:
        raise InvalidQuery("NaN is not a valid query value")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidQuery("a query value is not valid Unicode") from None
    return value
