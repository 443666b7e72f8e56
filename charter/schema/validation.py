"""Turn validation failures into the error details of SPEC section 2.

msgspec stops at the first error and says it in one sentence; the fast path keeps that
speed. When input is invalid we validate again, field by field, to report every top-level
problem with a detail code and a ``loc`` path.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ..errors import CharterError

__all__ = ["InputError", "details_from_message", "too_deep", "validate", "validate_object"]

_PATH = re.compile(r" - at `\$(.*)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[(\.\.\.)\]")
_EXPECTED_GOT = re.compile(r"^Expected `([^`]+)`, got `([^`]+)`")
_BOUND = re.compile(r"^Expected `([^`]+)` (?:of length )?(>=|>|<=|<) ")

_EXPECTED_NAMES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "array": "array",
    "object": "object",
    "null": "null",
}
_GOT_NAMES = {**_EXPECTED_NAMES, "int": "number", "float": "number"}


_CONTAINERS = (dict, list, tuple, set, frozenset)


def too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests containers deeper than ``limit`` (a bare container is 1 deep).

    One level at a time, without recursion: the value may be as deep as its decoder allowed.
    """
    level = [value] if isinstance(value, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        deeper: list[Any] = []
        for container in level:
            members = container.values() if isinstance(container, dict) else container
            deeper.extend(m for m in members if isinstance(m, _CONTAINERS))
            if isinstance(container, dict):  # MessagePack and CBOR keys may be arrays
                deeper.extend(k for k in container if isinstance(k, _CONTAINERS))
        level = deeper
    return False


class InputError(CharterError):
    """Input did not validate; ``details`` holds one entry per problem."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        super().__init__(details[0]["message"] if details else "invalid input")
        self.details = details


def _loc(path: str) -> list[str | int]:
    loc: list[str | int] = []
    for name, index, _ in _PATH_PART.findall(path):
        if name:
            loc.append(name)
        elif index:
            loc.append(int(index))
    return loc


def details_from_message(message: str, loc: list[str | int]) -> dict[str, Any]:
    """One error detail from a msgspec validation message."""
    match = _PATH.search(message)
    if match:
        loc = [*loc, *_loc(match.group(1))]
        message = message[: match.start()]
    detail: dict[str, Any] = {"loc": loc}
    if message.startswith("Object missing required field `"):
        name = message.split("`")[1]
        detail.update(loc=[*loc, name], code="MISSING_PROPERTY", message="property is required")
        return detail
    if message.startswith("Object contains unknown field `"):
        name = message.split("`")[1]
        detail.update(loc=[*loc, name], code="EXTRANEOUS_PROPERTY", message="unknown property")
        return detail
    got = _EXPECTED_GOT.match(message)
    if got:
        detail.update(
            code="UNMATCHING_PROPERTIES",
            expected=_EXPECTED_NAMES.get(got.group(1), got.group(1)),
            got=_GOT_NAMES.get(got.group(2), got.group(2)),
            message=message,
        )
        return detail
    bound = _BOUND.match(message)
    if bound:
        kind, op = bound.groups()
        if "of length" in message and kind == "array":
            code = "MORE_ITEMS_EXPECTED" if op.startswith(">") else "LESS_ITEMS_EXPECTED"
        elif "of length" in message:
            code = "STRING_CONSTRAINT"
        else:
            code = "NUMERIC_CONSTRAINT"
        detail.update(code=code, message=message)
        return detail
    if "matching regex" in message:
        detail.update(code="STRING_CONSTRAINT", message=message)
        return detail
    detail.update(code="UNMATCHING_PROPERTIES", message=message)
    return detail


def validate(value: Any, type_: Any, loc: list[str | int]) -> Any:
    """Convert ``value`` to ``type_`` without coercion, raising ``InputError``."""
    try:
        return msgspec.convert(value, type_, strict=True)
    except msgspec.ValidationError as exc:
        raise InputError([details_from_message(str(exc), loc)]) from None


def validate_object(
    value: Any,
    fields: dict[str, Any],
    required: set[str],
    loc: list[str | int],
    *,
    extra_allowed: bool = False,
    ignored: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Every problem of an object against per-field types (the slow, thorough path)."""
    if not isinstance(value, dict):
        got = _GOT_NAMES.get(type(value).__name__, type(value).__name__)
        if isinstance(value, list):
            got = "array"
        elif value is None:
            got = "null"
        message = f"Expected `object`, got `{got}`"
        return [{"loc": loc, "code": "UNMATCHING_PROPERTIES", "expected": "object", "got": got,
                 "message": message}]  # fmt: skip
    details: list[dict[str, Any]] = [
        {"loc": [*loc, name], "code": "MISSING_PROPERTY", "message": "property is required"}
        for name in sorted(required - value.keys())
    ]
    for key, item in value.items():
        type_ = fields.get(key)
        if type_ is None:
            if not extra_allowed and key not in ignored:
                details.append(
                    {
                        "loc": [*loc, key],
                        "code": "EXTRANEOUS_PROPERTY",
                        "message": "unknown property",
                    }
                )
            continue
        try:
            msgspec.convert(item, type_, strict=True)
        except msgspec.ValidationError as exc:
            details.append(details_from_message(str(exc), [*loc, key]))
    return details
