"""Parse the URL query language into a ``Query``.

Supported here: ``attr=value`` and ``attr<comparator>value`` terms joined by ``&``, the
comparators of the operator registry, ``sort(+a,-b)``, ``limit(n)``, ``limit(start,end)``,
``offset(n)``, ``select(a,b)`` and ``explain(true)``. Values stay strings here; the compiler
types them by the attribute's declared type.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from ..errors import InvalidQuery
from .model import Condition, Query, Sort
from .operators import URL_COMPARATORS

__all__ = ["parse_query_string"]

_CALL = re.compile(r"^([a-z_]+)\((.*)\)$", re.DOTALL)
_TERM = re.compile(r"^([^=!<>()|&]+?)(==|!=|=[a-z]{2}=|=)(.*)$", re.DOTALL)


class _Raw(str):
    """A value as written in the URL, still to be typed by its attribute."""

    __slots__ = ()


def _int(text: str, what: str, position: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidQuery(f"{what} expects an integer at position {position}") from None
    if value < 0:
        raise InvalidQuery(f"{what} must not be negative at position {position}")
    return value


def _call(name: str, args: str, query: Query, position: int) -> None:
    parts = [unquote(p).strip() for p in args.split(",")] if args.strip() else []
    if name == "sort":
        head: Sort | None = None
        for part in reversed(parts):
            descending = part.startswith("-")
            attr = part.lstrip("+-")
            if not attr:
                raise InvalidQuery(f"sort() names no attribute at position {position}")
            head = Sort(attr.split(".") if "." in attr else attr, descending, head)
        query.sort = head
    elif name == "limit":
        if len(parts) == 1:
            query.limit = _int(parts[0], "limit()", position)
        elif len(parts) == 2:
            start, end = (_int(p, "limit()", position) for p in parts)
            query.offset, query.limit = start, max(end - start, 0)
        else:
            raise InvalidQuery(f"limit() takes one or two numbers at position {position}")
    elif name == "offset":
        if len(parts) != 1:
            raise InvalidQuery(f"offset() takes one number at position {position}")
        query.offset = _int(parts[0], "offset()", position)
    elif name == "select":
        query.select = parts
    elif name == "explain":
        query.explain = parts[:1] != ["false"]
    else:
        raise InvalidQuery(f"unknown function {name}() at position {position}")


def parse_query_string(qs: str) -> Query:
    """A ``Query`` from a raw (percent-encoded) query string."""
    query = Query()
    position = 0
    for term in qs.split("&"):
        start = position
        position += len(term) + 1
        if not term:
            continue
        if term[0] in "([" or "|" in term:
            raise InvalidQuery(f"'|' and groups are not supported yet, at position {start}")
        call = _CALL.match(term)
        if call:
            _call(call.group(1), call.group(2), query, start)
            continue
        match = _TERM.match(term)
        if not match:
            raise InvalidQuery(f"cannot parse {unquote(term)!r} at position {start}")
        attr, token, raw = match.groups()
        comparator = URL_COMPARATORS.get(token)
        if comparator is None:
            raise InvalidQuery(f"unknown comparator {token!r} at position {start + len(attr)}")
        name = unquote(attr)
        value: Any = _Raw(unquote(raw))
        if comparator == "between":
            value = [_Raw(unquote(v)) for v in raw.split(",")]
            if len(value) != 2:
                raise InvalidQuery(f"=bt= takes two values at position {start + len(attr)}")
        query.conditions.append(
            Condition(name.split(".") if "." in name else name, comparator, value)
        )
    return query
