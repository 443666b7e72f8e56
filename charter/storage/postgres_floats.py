"""Floats on PostgreSQL: JSONB stores numbers as ``numeric``, so floats are written out again."""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import msgspec

from ..schema import TableSchema
from ..schema.annotations import without_none

__all__ = ["LONG_NUMBER", "floats_of", "render_floats"]


# JSONB keeps numbers as ``numeric``, which has no exponent form: a float written as ``1e308``
# is read back as 309 digits, a JSON integer. msgspec writes floats from 1e16 up with an
# exponent, so only a document with a run of 17 or more digits can hold such a float.
LONG_NUMBER = re.compile(r"\d{17}")


def _shape(tp: Any) -> bool | None:
    """For a field of type ``tp``: True if it holds a float, False if a list (or tuple) of
    floats, None if neither (or a union with other number types: no way to tell them apart)."""
    if typing.get_origin(tp) is typing.Annotated:
        return _shape(typing.get_args(tp)[0])
    tp, _ = without_none(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # several number types: no way to tell
        return None
    if tp is float:
        return True
    if origin in (list, tuple) and typing.get_args(tp):
        items = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return False if all(_shape(a) is True for a in items) else None
    return None


def floats_of(schema: TableSchema) -> dict[str, bool]:
    """The attributes of ``schema`` that hold floats (True) or lists of floats (False)."""
    shapes = {name: _shape(spec.type) for name, spec in schema.fields.items()}
    return {name: shape for name, shape in shapes.items() if shape is not None}


def render_floats(data: str, floats: dict[str, bool]) -> str:
    """``data`` with the integers JSONB made of float attributes written as floats again."""
    document = msgspec.json.decode(data)
    if not isinstance(document, dict):
        return data
    changed = False
    for name, single in floats.items():
        value = document.get(name)
        if single:
            if type(value) is int:
                document[name] = float(value)
                changed = True
        elif isinstance(value, list) and any(type(item) is int for item in value):
            document[name] = [float(v) if type(v) is int else v for v in value]
            changed = True
    return msgspec.json.encode(document).decode() if changed else data
