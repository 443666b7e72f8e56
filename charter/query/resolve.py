"""Resolve attribute paths against table schemas, and type condition values.

A path is a list of names: relationships to follow (``brand``), then a declared attribute
(``name``), then optionally names inside a nested object attribute (``address.city``).
``$id`` names the primary key; ``$updatedtime`` the record's version (ms since the epoch).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

import msgspec

from ..errors import InvalidQuery
from ..limits import MAX_PATH_HOPS
from ..schema import TableSchema
from ..schema.annotations import without_none
from ..schema.table_schema import FieldSpec, RelationshipSpec
from .parser import RawValue
from .scope import View

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
    def is_composite(self) -> bool:
        """Declared to hold a list or an object (not one value to order by)."""
        return self.field is not None and len(self.path) == 1 and _composite(self.field.type)

    @property
    def is_number(self) -> bool:
        if self.field is None or len(self.path) != 1:
            return self.is_version
        inner, _ = without_none(self.field.type)
        return inner in (int, float)

    @property
    def is_text(self) -> bool:
        """Declared to hold text (a string, a key typed so, a date): read as is by ``sw``..."""
        tp = _declared(self, False)
        return tp is not None and tp is not Any and _kind_of_type(tp) in ("string", "date")

    @property
    def is_boolean(self) -> bool:
        tp = _declared(self, False)
        return tp is not None and _kind_of_type(tp) == "boolean"


def _scalar(tp: Any) -> bool:
    """Declared to hold one value (or a list of them): nothing is inside it to name."""
    inner, _ = without_none(tp)
    if get_origin(inner) is Annotated:
        inner = get_args(inner)[0]
    if get_origin(inner) in (list, set, frozenset, tuple):
        args = [a for a in get_args(inner) if a is not Ellipsis]
        return bool(args) and all(_scalar(a) for a in args)
    return _kind_of_type(inner) is not None


def _list_item(tp: Any) -> bool:
    inner, _ = without_none(tp)
    return get_origin(inner) in (list, set, frozenset, tuple)


def _composite(tp: Any) -> bool:
    inner, _ = without_none(tp)
    if get_origin(inner) is Annotated:
        inner = get_args(inner)[0]
    if get_origin(inner) in (list, set, frozenset, tuple, dict) or inner in (list, dict):
        return True
    if isinstance(inner, type):
        return (
            issubclass(inner, msgspec.Struct)
            or dataclasses.is_dataclass(inner)
            or (
                issubclass(inner, dict)  # a TypedDict
            )
        )
    return False


def resolve(
    catalog: Catalog,
    schema: TableSchema,
    path: list[str],
    *,
    public: bool,
    what: str,
    views: Mapping[str, View] | None = None,
) -> Target:
    """Follow ``path`` from ``schema``; ``InvalidQuery`` if it names what does not exist.

    ``views`` (a reader's, see ``scope.py``): a name its table's view does not show does not
    exist, with the same message an unknown name gets.
    """
    hops: list[Hop] = []
    full = ".".join(path)
    if not path or not all(isinstance(p, str) and p for p in path):
        raise InvalidQuery(f"{what}: {full!r} is not an attribute path")
    index = 0
    while path[index] in schema.relationships and _visible(views, schema, path[index]):
        if index == MAX_PATH_HOPS:
            raise InvalidQuery(f"{what}: {full} follows more than {MAX_PATH_HOPS} relationships")
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
    if (public and name in schema.hidden) or not _visible(views, schema, name):
        raise InvalidQuery(f"{what}: {full} is not an attribute of {schema.name}")
    if not all(part.isidentifier() and part.isascii() for part in (name, *rest)):
        raise InvalidQuery(f"{what}: {full!r} is not an attribute path")
    if rest and spec is not None and _scalar(spec.type):
        raise InvalidQuery(f"{what}: {full} names nothing: {name} holds no object")
    key = name == schema.primary_key and not rest
    return Target(tuple(hops), schema, (name, *rest), spec if not rest else None, is_key=key)


def _visible(views: Mapping[str, View] | None, schema: TableSchema, name: str) -> bool:
    if views is None:
        return True
    view = views.get(schema.name)
    return view is None or view.sees(name)


def typed_value(target: Target, value: Any, *, element: bool = False, text: bool = False) -> Any:
    """A condition value typed by the attribute's declared type, then made bindable.

    A value as written in a URL (``RawValue``) is read as that type. A typed value (a
    ``number:``/``string:``/``boolean:``/``date:`` prefix, or a Python value) is converted to
    the declared type when that loses nothing (``number:123`` on a string attribute is
    ``"123"``; ``string:5`` on a number is ``5``); a boolean never becomes a number or a
    string, nor they a boolean (``InvalidQuery``). The rule is the same on every backend.
    """
    if value is None:
        return None
    if text:
        return _bindable(str(value) if isinstance(value, str) else _storable(value))
    tp = _declared(target, element)
    if isinstance(value, RawValue):
        if tp is not None and tp is not Any:
            inner, _ = without_none(tp)
            try:
                value = msgspec.convert(str(value), inner, strict=False)
            except (msgspec.ValidationError, TypeError):
                message = f"{str(value)!r} is not a valid value for {target.name}"
                raise InvalidQuery(message) from None
        else:
            value = str(value)
    elif tp is not None:
        value = _converted(value, _kind_of_type(tp), target.name)
    return _bindable(_storable(value))


def _declared(target: Target, element: bool) -> Any:
    """The declared type a value on ``target`` is compared with (None: not declared)."""
    if target.is_version:
        return int
    tp: Any = target.field.type if target.field is not None else None
    if tp is None and target.is_key:
        tp = target.schema.key_type
    if tp is not None and element:
        inner, _ = without_none(tp)
        args = get_args(inner)
        tp = args[0] if args else Any
    return tp


_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def _kind(value: Any) -> str | None:
    """What a value is, as the query language types it: boolean, number, string or date."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dt.date | dt.time):
        return "date"
    return None


def _kind_of_type(tp: Any) -> str | None:
    """The kind of value a declared type holds (None: several, or a list or an object)."""
    inner, _ = without_none(tp)
    if get_origin(inner) is Annotated:
        inner = get_args(inner)[0]
    if inner is bool:
        return "boolean"
    if inner in (int, float):
        return "number"
    if inner in (str, uuid.UUID, decimal.Decimal, bytes):
        return "string"
    if inner in (dt.datetime, dt.date, dt.time):
        return "date"
    members: tuple[Any, ...] = ()
    if get_origin(inner) is Literal:
        members = get_args(inner)
    elif isinstance(inner, type) and issubclass(inner, enum.Enum):
        members = tuple(m.value for m in inner)
    kinds = {_kind(m) for m in members}
    return kinds.pop() if len(kinds) == 1 else None


def _converted(value: Any, kind: str | None, name: str) -> Any:
    """``value`` as a value of ``kind``, when the conversion loses nothing."""
    have = _kind(value)
    if kind is None or have is None or have == kind:
        return value
    if kind in ("string", "date") and have in ("string", "date"):
        return value  # dates are stored as ISO 8601 strings
    if kind == "string" and have == "number":
        return str(value) if isinstance(value, int) else msgspec.json.encode(value).decode()
    if kind == "number" and have == "string" and _NUMBER_TEXT.fullmatch(value):
        number = float(value)
        if number == number and abs(number) != float("inf"):
            if "." not in value and "e" not in value.lower():
                return int(value)
            return int(number) if number.is_integer() and abs(number) < 2**63 else number
    if kind == "boolean" and have == "string" and value in ("true", "false"):
        return value == "true"
    raise InvalidQuery(f"{_shown(value)} is a {have}; {name} holds a {kind}")


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value).lower()


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
