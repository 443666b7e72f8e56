"""The neutral type language of client generators: what a value on the wire is, whatever the
language a client is written in.

A ``TypeRef`` is a small tree (``Prim``, ``ListOf``, ``DictOf``, ``UnionOf``, ``LiteralOf``,
``Ref``) built from a Python annotation by ``TypeNamer``, which also collects the named object
types (dataclasses, msgspec Structs, TypedDicts, JSON Schema contracts) an app's signatures
use, each once under a unique name. An emitter renders the tree in its own language.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime as dt
import decimal
import enum
import types
import typing
import uuid
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

import msgspec

from ..schema.from_json_schema import type_from_json_schema

__all__ = [
    "DictOf",
    "ListOf",
    "LiteralOf",
    "ObjectType",
    "Prim",
    "Property",
    "Ref",
    "TypeNamer",
    "TypeRef",
    "UnionOf",
]

PrimName = Literal[
    "str", "int", "float", "bool", "bytes", "datetime", "date", "time", "timedelta", "uuid",
    "decimal", "any", "none", "stream",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Prim:
    """A scalar: ``any`` is unknown JSON; ``stream`` a raw byte stream (not JSON)."""

    name: PrimName


@dataclass(frozen=True, slots=True)
class ListOf:
    item: TypeRef


@dataclass(frozen=True, slots=True)
class DictOf:
    """An object with string keys and values of one type."""

    value: TypeRef


@dataclass(frozen=True, slots=True)
class UnionOf:
    options: tuple[TypeRef, ...]


@dataclass(frozen=True, slots=True)
class LiteralOf:
    """One of some constant values (``Literal[...]`` and enums, by value)."""

    values: tuple[str | int | bool, ...]


@dataclass(frozen=True, slots=True)
class Ref:
    """A named type: ``kind`` is ``record``/``create``/``patch`` of a table, or ``object``."""

    name: str
    kind: Literal["record", "create", "patch", "object"] = "object"


TypeRef = Prim | ListOf | DictOf | UnionOf | LiteralOf | Ref


@dataclass(frozen=True, slots=True)
class Property:
    """An attribute of an object type as the wire carries it."""

    name: str
    type: TypeRef
    required: bool


@dataclass(frozen=True, slots=True)
class ObjectType:
    """A named object type (a nested dataclass, Struct, TypedDict or JSON Schema object)."""

    name: str
    properties: tuple[Property, ...]


_PRIMS: dict[Any, PrimName] = {
    str: "str", int: "int", float: "float", bool: "bool", bytes: "bytes", bytearray: "bytes",
    dt.datetime: "datetime", dt.date: "date", dt.time: "time", dt.timedelta: "timedelta",
    uuid.UUID: "uuid", decimal.Decimal: "decimal", type(None): "none", None: "none",
    Any: "any", object: "any",
}  # fmt: skip
_LISTS = (
    list, set, frozenset, collections.abc.Sequence, collections.abc.MutableSequence,
    collections.abc.Set, collections.abc.MutableSet, collections.abc.Collection,
    collections.abc.Iterable,
)  # fmt: skip
_DICTS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_STREAMS = (
    collections.abc.AsyncIterator, collections.abc.AsyncIterable, collections.abc.AsyncGenerator,
)  # fmt: skip


def optional(tp: TypeRef) -> TypeRef:
    """``tp`` or null."""
    if isinstance(tp, UnionOf):
        if Prim("none") in tp.options:
            return tp
        return UnionOf((*tp.options, Prim("none")))
    if tp == Prim("none") or tp == Prim("any"):
        return tp
    return UnionOf((tp, Prim("none")))


class TypeNamer:
    """Turns annotations into ``TypeRef`` trees, collecting the named object types they use.

    Args:
        tables: maps a ``Table`` class to its table's name (None: not one of the app's).
    """

    def __init__(self, tables: typing.Callable[[type], str | None]) -> None:
        self._tables = tables
        self.objects: dict[str, ObjectType] = {}
        self._names: dict[Any, str] = {}
        self.reserved: set[str] = set()
        self._from_schema = False  # naming types built from a JSON Schema (numbered names)

    def convert(self, tp: Any) -> TypeRef:
        """The wire type of the annotation ``tp``."""
        if isinstance(tp, typing.ForwardRef | str):
            return Prim("any")
        if tp in _PRIMS:
            return Prim(_PRIMS[tp])
        origin = get_origin(tp)
        args = get_args(tp)
        if origin is typing.Annotated:
            return self.convert(args[0])
        if origin is Literal:
            return LiteralOf(tuple(_literal(a) for a in args))
        if origin in (typing.Union, types.UnionType):
            options: list[TypeRef] = []
            for arg in args:
                if arg is msgspec.UnsetType:  # an optional attribute: absent, not a value
                    continue
                converted = self.convert(arg)
                if converted == Prim("any"):
                    return converted
                members = converted.options if isinstance(converted, UnionOf) else (converted,)
                options.extend(m for m in members if m not in options)
            return options[0] if len(options) == 1 else UnionOf(tuple(options))
        if origin in _STREAMS and args[:1] == (bytes,):
            return Prim("stream")
        if origin is tuple:
            items = [a for a in args if a is not Ellipsis]
            if not items:
                return ListOf(Prim("any"))
            item = self.convert(typing.Union[tuple(items)])  # noqa: UP007
            return ListOf(item)
        if origin in _LISTS or tp in _LISTS:
            return ListOf(self.convert(args[0]) if args else Prim("any"))
        if origin in _DICTS or tp in _DICTS:
            return DictOf(self.convert(args[1]) if len(args) == 2 else Prim("any"))
        if origin is not None:
            name = getattr(origin, "__name__", "")
            if getattr(origin, "__charter_result__", False):  # HttpResult[T]
                return self.convert(args[0]) if args else Prim("any")
            if name == "Partial" and args:  # Partial[T]: every attribute optional
                inner = self.convert(args[0])
                if isinstance(inner, Ref) and inner.kind in ("record", "create"):
                    return Ref(inner.name, "patch")
                return DictOf(Prim("any"))
            return Prim("any")
        if isinstance(tp, type):
            table = self._tables(tp) if hasattr(tp, "__charter_table__") else None
            if table is not None:
                return Ref(table, "record")
            if issubclass(tp, enum.Enum):
                return LiteralOf(tuple(_literal(m.value) for m in tp))
            if issubclass(tp, bool):
                return Prim("bool")
            if issubclass(tp, str | int | float) and tp in _PRIMS:
                return Prim(_PRIMS[tp])
            if _is_object(tp):
                return Ref(self._object(tp))
        return Prim("any")

    def convert_schema(self, schema: dict[str, Any], name: str) -> TypeRef:
        """A JSON Schema (a contract's) as a wire type, its object types named from ``name``."""
        self._from_schema = True
        try:
            return self.convert(type_from_json_schema(schema, name))
        finally:
            self._from_schema = False

    def _object(self, tp: type) -> str:
        known = self._names.get(tp)
        if known is not None:
            return known
        name = _identifier(getattr(tp, "__name__", "Object"))
        if self._from_schema:  # ``type_from_json_schema`` numbers its types process-wide
            name = name.rstrip("0123456789") or "Object"
        base = name
        counter = 2
        while name in self.objects or name in self.reserved:
            name, counter = f"{base}{counter}", counter + 1
        self._names[tp] = name
        self.objects[name] = ObjectType(name, ())  # placeholder: a type may refer to itself
        try:
            hints = typing.get_type_hints(tp, include_extras=True)
        except (NameError, TypeError):
            hints = {}
        info = msgspec.inspect.type_info(tp)
        properties = tuple(
            Property(f.encode_name, self.convert(hints.get(f.name, Any)), f.required)
            for f in getattr(info, "fields", ())
        )
        self.objects[name] = ObjectType(name, properties)
        return name


def _is_object(tp: type) -> bool:
    return dataclasses.is_dataclass(tp) or issubclass(tp, msgspec.Struct) or typing.is_typeddict(tp)


def _literal(value: Any) -> str | int | bool:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str | int | bool):
        return value
    return str(value)


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return cleaned if cleaned[:1].isalpha() else f"T{cleaned}"
