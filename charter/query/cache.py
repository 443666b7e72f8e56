"""Remembering parsed and planned queries: a key for a ``Query``, a copy of one, a bounded LRU.

Why: a REST client asks the same few query strings again and again, and parsing and planning
one costs more than the SQL that answers it (a 100,000-row page: ~20 us to parse, ~100 us to
plan, ~70 us in SQLite). The schema is fixed while an app runs, so a query's SQL depends only
on the query: ``query_key`` names a query by everything the compiler reads from it, values
with their exact types (``"20"``, ``20`` and ``20.0`` compile differently), and is None for a
query holding a value it cannot name exactly (that query is compiled every time).
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import uuid
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from ..errors import CharterError
from .model import Condition, Group, Query, Select, SelectItem, Sort
from .scope import Scope

__all__ = ["LRU", "copy_query", "query_key", "rule_key"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Values whose type and equality say everything the compiler reads from them (str includes the
# parser's RawValue: the type is part of the key).
_EXACT = (str, int, bool, type(None))
# Values whose repr is exact (equal values may differ: an offset, trailing zeros).
_BY_REPR = (dt.datetime, dt.date, dt.time, uuid.UUID, decimal.Decimal)


class _Unnamed(CharterError):
    """A value the key cannot name exactly (never leaves ``query_key``)."""


def _value(value: Any) -> Hashable:
    kind = type(value)
    if isinstance(value, _EXACT):
        return (kind, value)
    if kind is float:
        return (kind, value.hex())  # -0.0 and 0.0 are equal but print differently
    if isinstance(value, list | tuple):
        return (kind, tuple(_value(v) for v in value))
    if isinstance(value, _BY_REPR):
        return (kind, repr(value))
    raise _Unnamed


def _path(attribute: Any) -> Hashable:
    if isinstance(attribute, str):
        return attribute
    if isinstance(attribute, list | tuple) and all(isinstance(p, str) for p in attribute):
        return (type(attribute), tuple(attribute))
    raise _Unnamed


def _node(node: Any) -> Hashable:
    if type(node) is Condition:
        if not isinstance(node.comparator, str):
            raise _Unnamed
        return (_path(node.attribute), node.comparator, _value(node.value))
    if type(node) is Group and isinstance(node.conditions, list | tuple):
        return ("(", node.operator, tuple(_node(c) for c in node.conditions))
    raise _Unnamed


def _select(select: Any) -> Hashable:
    if select is None or isinstance(select, str):
        return select
    if isinstance(select, list | tuple):
        return (type(select), tuple(_select_item(i) for i in select))
    if type(select) is Select:
        return ("S", select.mode, tuple(_select_item(i) for i in select.items))
    raise _Unnamed


def _select_item(item: Any) -> Hashable:
    if isinstance(item, str):
        return item
    if type(item) is SelectItem and isinstance(item.name, str):
        return ("I", item.name, _select(item.select))
    raise _Unnamed


def _scope(scope: Scope) -> Hashable:
    """A scope is named by its key (None: not nameable, so the query is not cached)."""
    if scope.key is None:
        raise _Unnamed
    return ("scope", scope.key)


def rule_key(rule: Any) -> Hashable | None:
    """A row rule's conditions, named as ``query_key`` names a query's (None: not nameable)."""
    try:
        return tuple(_node(c) for c in rule)
    except (_Unnamed, TypeError):
        return None


def query_key(query: Query) -> Hashable | None:
    """Everything the compiler reads from ``query``, hashable; None if a value is not nameable."""
    try:
        sort: list[Hashable] = []
        node = query.sort
        while node is not None:
            if type(node) is not Sort or len(sort) > 64:
                raise _Unnamed
            sort.append((_path(node.attribute), bool(node.descending)))
            node = node.next
        return (
            tuple(_node(c) for c in query.conditions),
            tuple(sort),
            _select(query.select),
            _value(query.limit),
            _value(query.offset),
            bool(query.explain),
            bool(query.enforce_execution_order),
            query.operator,
            None if query.scope is None else _scope(query.scope),
        )
    except (_Unnamed, TypeError):  # TypeError: conditions that are not a list, and the like
        return None


def copy_query(query: Query) -> Query:
    """A copy sharing nothing mutable with ``query`` (of what the URL parser builds), so that
    a cached query handed to application code comes back unchanged."""
    sort: Sort | None = None
    if query.sort is not None:
        chain = [Sort(s.attribute, s.descending) for s in query.sort.chain()]
        for node, after in itertools.pairwise(chain):
            node.next = after
        sort = chain[0]
    return Query(
        [_copy_node(c) for c in query.conditions],
        sort,
        _copy_select(query.select),
        query.limit,
        query.offset,
        query.explain,
        query.enforce_execution_order,
        query.operator,
        query.scope,
    )


def _copy_node(node: Condition | Group) -> Condition | Group:
    if isinstance(node, Group):
        return Group(node.operator, [_copy_node(c) for c in node.conditions])
    value = list(node.value) if isinstance(node.value, list) else node.value
    attribute = list(node.attribute) if isinstance(node.attribute, list) else node.attribute
    return Condition(attribute, node.comparator, value)


def _copy_select(select: Any) -> Any:
    if isinstance(select, Select):
        return Select([_copy_item(i) for i in select.items], select.mode)
    if isinstance(select, list):
        return [_copy_item(i) for i in select]
    return select  # None, a string or a tuple of strings


def _copy_item(item: Any) -> Any:
    if isinstance(item, SelectItem):
        return SelectItem(item.name, _copy_select(item.select))
    return item


class LRU(Generic[K, V]):
    """At most ``size`` entries; the least recently used goes first. Used from one thread."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
