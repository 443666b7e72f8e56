"""Comparators as data: URL spellings, the parameterised SQL each compiles to, a description.

Each operator renders ``(sql, params)`` for a column expression through a ``Dialect`` (which
holds all backend-specific SQL text); values are always bound, never spliced. ``index`` tells
the planner how well a declared index serves the comparator: ``"equality"``, ``"range"`` or
``None`` (the index cannot help, so the condition is checked by scanning).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .dialect import Dialect
from .model import COMPARATOR_ALIASES

__all__ = ["OPERATORS", "URL_COMPARATORS", "Operator", "operator"]

Render = Callable[[Dialect, str, Any], tuple[str, list[Any]]]

# The highest code point: ``prefix + TOP`` bounds every string starting with ``prefix``.
_TOP = "\U0010ffff"


@dataclass(frozen=True, slots=True)
class Operator:
    """A comparator: its name, how it reads in a URL, its SQL and its description."""

    name: str
    url: tuple[str, ...]
    render: Render
    describe: str
    index: str | None
    text: bool = False  # compares text (sw/ew/ct): numbers are compared as their text


# Against null, a range follows the order sorts use: null is lower than every value.
_AGAINST_NULL = {
    "<": "FALSE",  # nothing is lower than null
    "<=": "{col} IS NULL",
    ">": "{col} IS NOT NULL",
    ">=": "TRUE",  # everything, null included
}


def _cmp(op: str) -> Render:
    def render(d: Dialect, col: str, value: Any) -> tuple[str, list[Any]]:
        if value is None:
            return _AGAINST_NULL[op].format(col=col), []
        return f"{col} {op} ?", [value]

    return render


def _equals(d: Dialect, col: str, value: Any) -> tuple[str, list[Any]]:
    if value is None:
        return f"{col} IS NULL", []
    return f"{col} = ?", [value]


def _not_equal(d: Dialect, col: str, value: Any) -> tuple[str, list[Any]]:
    if value is None:
        return f"{col} IS NOT NULL", []
    return f"({col} IS NULL OR {col} <> ?)", [value]


def _starts_with(d: Dialect, col: str, value: Any) -> tuple[str, list[Any]]:
    prefix = str(value)
    # A range keeps the index usable.
    return f"({col} >= ? AND {col} < ?)", [prefix, prefix + _TOP]


def _ends_with(d: Dialect, col: str, value: Any) -> tuple[str, list[Any]]:
    suffix = str(value)
    if not suffix:
        return f"{col} >= {d.empty_text}", []  # every text value
    sql, count = d.ends_with(col)
    return sql, ([len(suffix), suffix] if count == 2 else [suffix])


def _contains(d: Dialect, col: str, value: Any) -> tuple[str, list[Any]]:
    return d.contains_text(col), [str(value)]


def _between(d: Dialect, col: str, value: Any) -> tuple[str, list[Any]]:
    low, high = value
    if high is None:  # null is the lowest value: only null lies between (null, null)
        return (f"{col} IS NULL", []) if low is None else ("FALSE", [])
    if low is None:
        return f"({col} IS NULL OR {col} <= ?)", [high]
    return f"{col} BETWEEN ? AND ?", [low, high]


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("equals", ("==", "="), _equals, "equals", "equality"),
        Operator("not_equal", ("=ne=", "!="), _not_equal, "does not equal", None),
        Operator("less_than", ("=lt=",), _cmp("<"), "is less than", "range"),
        Operator("less_than_equal", ("=le=",), _cmp("<="), "is at most", "range"),
        Operator("greater_than", ("=gt=",), _cmp(">"), "is greater than", "range"),
        Operator("greater_than_equal", ("=ge=",), _cmp(">="), "is at least", "range"),
        Operator("starts_with", ("=sw=",), _starts_with, "starts with", "range", True),
        Operator("ends_with", ("=ew=",), _ends_with, "ends with", None, True),
        Operator("contains", ("=ct=",), _contains, "contains", None, True),
        Operator("between", ("=bt=",), _between, "is between", "range"),
    )
}

URL_COMPARATORS: dict[str, str] = {token: op.name for op in OPERATORS.values() for token in op.url}
URL_COMPARATORS["=eq="] = "equals"


def operator(name: str) -> Operator | None:
    """The operator called ``name`` (a comparator name or a two-letter alias such as ``gt``)."""
    return OPERATORS.get(COMPARATOR_ALIASES.get(name, name))
