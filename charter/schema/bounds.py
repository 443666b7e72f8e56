"""What a record may hold so that both backends can store, index and send it back.

Checked after a write's types (``TableRuntime.validate_full``/``validate_partial``) and on
every key (``check_key``): integers fit 64 bits anywhere in a record (SQLite and MessagePack
hold no more, and a larger one would be cut off on the way out), a string key fits
``MAX_KEY_BYTES`` and an indexed value ``MAX_INDEXED_BYTES`` (a PostgreSQL B-tree entry holds
~2700 bytes; past it the write fails). Only the attributes that can break a bound are looked
at: the set is computed from the declared types when the schema is built.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import types
import typing
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

import msgspec

from ..limits import INT_MAX, INT_MIN, MAX_INDEXED_BYTES, MAX_KEY_BYTES

if TYPE_CHECKING:
    from .table_schema import TableSchema

__all__ = ["key_problem", "may_hold_int", "stored_size", "value_problems"]

_SCALARS = (str, float, bool, bytes, dt.datetime, dt.date, dt.time, uuid.UUID, decimal.Decimal)
_CONTAINERS = (list, tuple, set, frozenset, dict)
_NUMBER_SIZE = 32  # the most a JSON number takes in a PostgreSQL jsonb value, padding included
_MEMBER_SIZE = 8  # what each array element, object member or key adds around its value


def may_hold_int(tp: Any) -> bool:
    """Whether a value of the declared type ``tp`` may hold an integer anywhere in it."""
    if tp is int or tp is Any or tp is object:
        return True
    if tp is bool or tp in _SCALARS or tp is type(None):
        return False
    origin = get_origin(tp)
    if origin is Annotated:
        return may_hold_int(get_args(tp)[0])
    if origin is typing.Literal:
        return False  # the declared values themselves
    if origin in (Union, types.UnionType) or origin in _CONTAINERS:
        return any(may_hold_int(arg) for arg in get_args(tp) if arg is not Ellipsis)
    # A nested object type, a TypedDict, something unknown: look inside (an enum holds its own).
    return not (isinstance(tp, type) and issubclass(tp, enum.Enum))


def _builtin(value: Any) -> Any:
    """``value`` as JSON-like builtins (nested Structs, dataclasses and the like converted)."""
    if isinstance(value, msgspec.Struct) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        return msgspec.to_builtins(value, builtin_types=_SCALARS)
    return value


def _int_out_of_range(value: Any) -> bool:
    """Whether an integer outside 64 bits is anywhere in ``value`` (walked without recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is int:
            if not INT_MIN <= item <= INT_MAX:
                return True
        elif isinstance(item, str | float | bool | None):
            continue
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif isinstance(item, int):  # an int subclass (IntEnum): its value
            if not INT_MIN <= int(item) <= INT_MAX:
                return True
        elif not isinstance(item, _SCALARS) and not isinstance(item, enum.Enum):
            converted = _builtin(item)
            if converted is not item:
                stack.append(converted)
    return False


def stored_size(value: Any) -> int:
    """An upper estimate of the bytes ``value`` takes in an index: a string's UTF-8 bytes, or
    for a list or an object the sum of its members (each number counted as 32 bytes, each
    element, member and key 8 more)."""
    if isinstance(value, str):
        return _utf8_size(value)
    total = 0
    stack = [value]
    while stack:
        item = _builtin(stack.pop())
        if isinstance(item, str):
            total += _MEMBER_SIZE + _utf8_size(item)
        elif isinstance(item, bytes):
            total += _MEMBER_SIZE + 2 * len(item)  # stored as text
        elif isinstance(item, dict):
            total += _MEMBER_SIZE
            for key, member in item.items():
                total += _MEMBER_SIZE + _utf8_size(str(key))
                stack.append(member)
        elif isinstance(item, list | tuple | set | frozenset):
            total += _MEMBER_SIZE
            stack.extend(item)
        elif isinstance(item, bool) or item is None:
            total += _MEMBER_SIZE
        elif isinstance(item, int | float | decimal.Decimal):
            total += _MEMBER_SIZE + _NUMBER_SIZE
        else:
            total += _MEMBER_SIZE + _utf8_size(str(item))
    return total


def _utf8_size(text: str) -> int:
    if len(text) * 4 <= MAX_INDEXED_BYTES:  # cannot be over whatever it holds
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def key_problem(key: Any) -> str | None:
    """Why ``key`` cannot name a record (it is too long, or out of range), or None."""
    if isinstance(key, str):
        if len(key) * 4 > MAX_KEY_BYTES and len(key.encode("utf-8", "surrogatepass")) > (
            MAX_KEY_BYTES
        ):
            return f"a key holds at most {MAX_KEY_BYTES} bytes (UTF-8)"
    elif isinstance(key, int) and not isinstance(key, bool) and not INT_MIN <= key <= INT_MAX:
        return f"an integer key is between {INT_MIN} and {INT_MAX}"
    return None


def value_problems(
    schema: TableSchema, values: dict[str, Any], loc: str = "body"
) -> list[dict[str, Any]]:
    """Error details (SPEC section 2) for the bounds ``values`` break; empty when none.

    Only the attributes in ``schema.bounded`` are looked at (and, on an ``extra="allow"``
    table, the undeclared ones); a small integer or a short string is passed at once.
    """
    details: list[dict[str, Any]] = []
    for name, ints, indexed in schema.bounded:
        value = values.get(name)
        kind = type(value)
        if kind is int:
            if INT_MIN <= value <= INT_MAX:  # type: ignore[operator]
                continue
        elif kind is str:
            if len(value) <= _SHORT:  # type: ignore[arg-type]
                continue
        elif value is None or kind is float or kind is bool:
            continue
        detail = _problem(name, value, ints, indexed, name == schema.primary_key)
        if detail is not None:
            details.append({"loc": [loc, name], **detail})
    if schema.options.extra == "allow":
        for name, value in values.items():
            if name not in schema.fields and _int_out_of_range(value):
                details.append({"loc": [loc, name], **_INT_PROBLEM})
    return details


_SHORT = min(MAX_KEY_BYTES, MAX_INDEXED_BYTES) // 4  # characters that fit whatever they are
_INT_PROBLEM = {
    "code": "NUMERIC_CONSTRAINT",
    "message": f"integers must be between {INT_MIN} and {INT_MAX}",
}


def _problem(name: str, value: Any, ints: bool, indexed: bool, key: bool) -> dict[str, Any] | None:
    if ints and _int_out_of_range(value):
        return _INT_PROBLEM
    if key:
        problem = key_problem(value)
        return None if problem is None else {"code": "STRING_CONSTRAINT", "message": problem}
    if indexed and not isinstance(value, int | float | bool):
        size = stored_size(value)
        if size > MAX_INDEXED_BYTES:
            return {
                "code": "STRING_CONSTRAINT",
                "message": f"an indexed attribute holds at most {MAX_INDEXED_BYTES} bytes"
                f" (this value takes {size})",
            }
    return None
