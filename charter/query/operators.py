"""Comparators as data: URL spellings and the parameterised SQL each compiles to.

Each operator renders ``(sql, params)`` for a column expression; values are always bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["OPERATORS", "URL_COMPARATORS", "Operator"]

Render = Callable[[str, Any, bool], tuple[str, list[Any]]]


@dataclass(frozen=True, slots=True)
class Operator:
    """A comparator: its name, how it reads in a URL, its SQL and its description."""

    name: str
    url: tuple[str, ...]
    render: Render
    describe: str


def _cmp(op: str) -> Render:
    def render(col: str, value: Any, is_list: bool) -> tuple[str, list[Any]]:
        return f"{col} {op} ?", [value]

    return render


def _equals(col: str, value: Any, is_list: bool) -> tuple[str, list[Any]]:
    if value is None:
        return f"{col} IS NULL", []
    return f"{col} = ?", [value]


def _not_equal(col: str, value: Any, is_list: bool) -> tuple[str, list[Any]]:
    if value is None:
        return f"{col} IS NOT NULL", []
    return f"({col} IS NULL OR {col} <> ?)", [value]


def _starts_with(col: str, value: Any, is_list: bool) -> tuple[str, list[Any]]:
    prefix = str(value)
    # A range keeps the index usable; the upper bound is the prefix followed by the top code point.
    return f"({col} >= ? AND {col} < ?)", [prefix, prefix + "\U0010ffff"]


def _ends_with(col: str, value: Any, is_list: bool) -> tuple[str, list[Any]]:
    suffix = str(value)
    return f"substr({col}, -?) = ?", [len(suffix), suffix] if suffix else [0, ""]


def _contains(col: str, value: Any, is_list: bool) -> tuple[str, list[Any]]:
    if is_list:
        return f"EXISTS (SELECT 1 FROM json_each({col}) WHERE value = ?)", [value]
    return f"instr({col}, ?) > 0", [str(value)]


def _between(col: str, value: Any, is_list: bool) -> tuple[str, list[Any]]:
    low, high = value
    return f"{col} BETWEEN ? AND ?", [low, high]


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("equals", ("==", "="), _equals, "equals"),
        Operator("not_equal", ("=ne=", "!="), _not_equal, "does not equal"),
        Operator("less_than", ("=lt=",), _cmp("<"), "is less than"),
        Operator("less_than_equal", ("=le=",), _cmp("<="), "is at most"),
        Operator("greater_than", ("=gt=",), _cmp(">"), "is greater than"),
        Operator("greater_than_equal", ("=ge=",), _cmp(">="), "is at least"),
        Operator("starts_with", ("=sw=",), _starts_with, "starts with"),
        Operator("ends_with", ("=ew=",), _ends_with, "ends with"),
        Operator("contains", ("=ct=",), _contains, "contains"),
        Operator("between", ("=bt=",), _between, "is between"),
    )
}

URL_COMPARATORS: dict[str, str] = {token: op.name for op in OPERATORS.values() for token in op.url}
