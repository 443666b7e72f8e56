"""What a field's type was, and whether a stored value survives a change of it.

Storage records each field's type (``field_types``) when it migrates a table, so the next start
can tell which fields changed type. The stored values of a changed field are then converted one
by one (``Conversion``) under these rules, the same on every backend:

1. A value the new type reads as it is (``T`` -> ``T | None``, ``int`` -> ``float``,
   ``str`` -> a ``Literal``/``Enum``/``datetime`` it spells, ``T | None`` -> ``T`` where the
   value is not null) is kept, written the way the new type writes it (``5`` -> ``5.0``), as
   long as it means the same: numbers are compared by value (an ``int`` above 2**53 that a
   ``float`` would round is refused), and nothing inside it may be dropped.
2. Otherwise a scalar is converted when the conversion is exact: a number -> ``str`` (its JSON
   text: ``5`` -> ``"5"``, ``2.5`` -> ``"2.5"``); a whole ``float`` -> ``int`` (``5.0`` -> ``5``);
   a ``str`` -> ``int`` when it is an integer written plainly (``"5"``, ``"-12"``; not ``"05"``,
   ``" 5"``, ``"5.0"``); a ``str`` -> ``float`` when it is a JSON number whose value a float
   holds exactly as written (``"2.5"``, ``"1e3"``; not ``"0.1000000000000000001"``).
3. Anything else (``null`` into a type without ``None``, ``bool`` <-> ``int``, ``"abc"`` -> ``int``,
   a list into a scalar) does not convert: storage then refuses to start and changes nothing.

Pure computation, no I/O (see this folder's README).
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec

from ..errors import CharterError

if typing.TYPE_CHECKING:
    from .table_schema import TableSchema

__all__ = ["Conversion", "Unconvertible", "field_types", "type_name"]

_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INT64 = (-(2**63), 2**63 - 1)
_encode = msgspec.json.encode


class Unconvertible(CharterError):
    """A stored value the new type cannot hold without losing or inventing something."""


def type_name(tp: Any) -> str:
    """A readable name of a type that differs whenever the type does (``int | None``)."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        return f"Annotated[{type_name(base)}, {', '.join(map(repr, meta))}]"
    if origin in (Union, types.UnionType):
        # Members sorted, None last: ``Optional[int]`` and ``None | int`` are ``int | None``.
        names = sorted(type_name(a) for a in get_args(tp) if a is not type(None))
        if type(None) in get_args(tp):
            names.append("None")
        return " | ".join(names)
    if origin is Literal:
        return f"Literal[{', '.join(map(repr, get_args(tp)))}]"
    if origin is not None:
        args = get_args(tp)
        inner = ", ".join(type_name(a) for a in args)
        return f"{type_name(origin)}[{inner}]" if args else type_name(origin)
    if tp is None or tp is type(None):
        return "None"
    if isinstance(tp, type):
        module = tp.__module__
        return tp.__qualname__ if module == "builtins" else f"{module}.{tp.__qualname__}"
    return repr(tp)


def _shape(tp: Any) -> str:
    """The JSON Schema of a type: catches a nested struct's fields changing under one name."""
    try:
        return json.dumps(msgspec.json.schema(tp), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):  # a type msgspec cannot describe: its name must do
        return ""


def field_types(schema: TableSchema) -> dict[str, dict[str, str]]:
    """Each stored field's type, as recorded in the schema catalog: ``{name: {type, shape}}``."""
    return {
        name: {"type": type_name(spec.type), "shape": _shape(spec.type)}
        for name, spec in schema.fields.items()
    }


def _same(old: Any, new: Any) -> bool:
    """Whether ``new`` holds everything ``old`` did (numbers by value; ``new`` may add keys)."""
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new) and old == new
    if isinstance(old, int | float) and isinstance(new, int | float):
        return old == new
    if isinstance(old, dict) and isinstance(new, dict):
        return all(k in new and _same(v, new[k]) for k, v in old.items())
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(map(_same, old, new))
    return type(old) is type(new) and old == new


def _candidates(value: Any) -> list[Any]:
    """Exact scalar conversions of ``value`` (rule 2 of the module docstring)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, float):
        whole = [int(value)] if value.is_integer() and _INT64[0] <= value <= _INT64[1] else []
        return [*whole, _encode(value).decode()]
    if isinstance(value, str):
        if _INTEGER.fullmatch(value) and _INT64[0] <= int(value) <= _INT64[1]:
            return [int(value)]
        if _NUMBER.fullmatch(value):
            number = float(value)
            if math.isfinite(number) and Decimal(repr(number)) == Decimal(value):
                return [number]
    return []


def _show(value: Any) -> str:
    text = _encode(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


class Conversion:
    """Converts the stored values of one field to its new type."""

    def __init__(self, new_type: Any) -> None:
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(new_type)
        self.type = type_name(new_type)

    def _fit(self, value: Any) -> bytes | None:
        """The JSON of ``value`` as the new type writes it, if the type reads it unchanged."""
        try:
            typed = self._decoder.decode(_encode(value))
        except msgspec.ValidationError:
            return None
        out = _encode(typed)
        return out if _same(value, msgspec.json.decode(out)) else None

    def convert(self, value: Any) -> bytes:
        """The JSON to store for ``value`` (a decoded stored value); ``Unconvertible`` if none."""
        fitted = self._fit(value)
        if fitted is not None:
            return fitted
        for candidate in _candidates(value):
            fitted = self._fit(candidate)
            if fitted is not None:
                return fitted
        raise Unconvertible(f"{_show(value)} does not convert exactly to {self.type}")


class TypeChanges:
    """The fields of one table whose type changed since its last migration, checked record by
    record: what to rewrite, and whether any stored value does not convert.

    ``recorded`` is what the schema catalog holds for the table: ``{name: field type}`` as
    ``field_types`` makes it, or a list of names from a version that did not record types
    (every field is then checked once against its declared type).
    """

    def __init__(self, schema: TableSchema, recorded: dict[str, Any] | list[str]) -> None:
        self.table = schema.name
        self.key = schema.primary_key
        self.scanned = 0
        now = field_types(schema)
        self.changed: dict[str, str | None] = {}  # name -> its previous type (None: unknown)
        for name, desc in now.items():
            if isinstance(recorded, dict):
                if name in recorded and recorded[name] != desc:
                    old = recorded[name]
                    self.changed[name] = old.get("type") if isinstance(old, dict) else None
            elif name in recorded:
                self.changed[name] = None
        self._conversions = {n: Conversion(schema.fields[n].type) for n in self.changed}
        self._failures: dict[str, tuple[int, Any, str]] = {}  # name -> (count, first id, why)

    def __bool__(self) -> bool:
        return bool(self.changed)

    def check(self, key: Any, document: dict[str, Any]) -> dict[str, bytes]:
        """The JSON to store for each changed field of one record whose value must be rewritten."""
        self.scanned += 1
        out: dict[str, bytes] = {}
        for name, conversion in self._conversions.items():
            if name not in document:
                continue
            value = document[name]
            try:
                fitted = conversion.convert(value)
                if name == self.key and fitted != _encode(value):
                    raise Unconvertible("a primary key is never rewritten")
            except Unconvertible as exc:
                count, first, why = self._failures.get(name, (0, key, str(exc)))
                self._failures[name] = (count + 1, first, why)
                continue
            if fitted != _encode(value):
                out[name] = fitted
        return out

    def problem(self) -> str | None:
        """Why the table cannot be migrated (``None``: every stored value converts)."""
        if not self._failures:
            return None
        parts = []
        for name, (count, first, why) in self._failures.items():
            old = self.changed[name]
            change = (
                f"changed type from {old} to {self._conversions[name].type}"
                if old is not None
                else f"is declared {self._conversions[name].type} (the type its values were "
                "written with was not recorded)"
            )
            parts.append(
                f"{self.table}.{name} {change}, but {count} of {self.scanned} stored records "
                f"hold a value that does not convert exactly (e.g. id {_show(first)}: {why})"
            )
        return (
            "; ".join(parts)
            + ". Nothing was changed. Restore the previous type, or migrate in steps: declare a "
            "new field of the new type beside the old one, start, copy and convert each "
            "record's value in a script, then remove the old field (its values move to "
            "_charter_archive). See docs/storage.md, 'Changing a field's type'."
        )
