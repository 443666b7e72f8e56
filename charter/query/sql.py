"""Compile a ``Query`` against a table schema into parameterised SQL.

The dialect is the seam between backends: it names how a document attribute is read and how
parameters are written. Conditions on declared indexes use the index's exact expression.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import msgspec

from ..errors import InvalidQuery
from ..schema import TableSchema
from ..schema.table_schema import _strip_optional
from .model import Condition, Group, Query
from .operators import OPERATORS

__all__ = ["SQLITE", "CompiledQuery", "Dialect", "compile_count", "compile_select", "typed_value"]


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one backend spells document access."""

    name: str

    def column(self, schema: TableSchema, attribute: str) -> str:
        if attribute == schema.primary_key:
            return "id"
        return f"json_extract(data, '$.{attribute}')"

    def table(self, schema: TableSchema) -> str:
        return '"' + schema.name.replace('"', '""') + '"'


SQLITE = Dialect("sqlite")


@dataclass(slots=True)
class CompiledQuery:
    sql: str
    params: list[Any]


def _list_item_type(tp: Any) -> Any | None:
    inner, _ = _strip_optional(tp)
    if get_origin(inner) in (list, set, frozenset, tuple):
        args = get_args(inner)
        return args[0] if args else Any
    return None


def typed_value(schema: TableSchema, attribute: str, value: Any, *, element: bool = False) -> Any:
    """A condition value typed by the attribute's declared type, then made storable."""
    spec = schema.fields[attribute]
    tp = spec.type
    if element:
        tp = _list_item_type(tp) or tp
    if value is None or (isinstance(value, str) and value == "null" and spec.optional):
        return None
    if isinstance(value, str) and type(value) is not str:  # a raw URL value: coerce it
        inner, _ = _strip_optional(tp)
        try:
            value = msgspec.convert(str(value), inner, strict=False)
        except (msgspec.ValidationError, TypeError):
            raise InvalidQuery(f"{value!r} is not a valid value for {attribute}") from None
    return _storable(value)


def _storable(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time | uuid.UUID | decimal.Decimal):
        return msgspec.to_builtins(value)
    if isinstance(value, enum.Enum):
        return value.value
    return msgspec.json.encode(value).decode()


def _where(
    schema: TableSchema, dialect: Dialect, node: Condition | Group, params: list[Any]
) -> str:
    if isinstance(node, Group):
        joiner = " AND " if node.operator == "and" else " OR "
        parts = [_where(schema, dialect, child, params) for child in node.conditions]
        return "(" + joiner.join(parts) + ")" if parts else "1"
    path = node.path
    if len(path) != 1 or path[0] not in schema.fields:
        raise InvalidQuery(f"{'.'.join(path)} is not an attribute of {schema.name}")
    attribute = path[0]
    operator = OPERATORS.get(node.comparator)
    if operator is None:
        raise InvalidQuery(f"unknown comparator {node.comparator!r}")
    unindexed = attribute not in schema.indexes and attribute != schema.primary_key
    if schema.options.strict_queries and unindexed:
        raise InvalidQuery(f"{attribute} is not indexed and {schema.name} has strict_queries")
    is_list = _list_item_type(schema.fields[attribute].type) is not None
    if node.comparator == "between":
        if not isinstance(node.value, list | tuple) or len(node.value) != 2:
            raise InvalidQuery("between takes two values")
        value: Any = [typed_value(schema, attribute, v) for v in node.value]
    else:
        value = typed_value(schema, attribute, node.value, element=is_list)
    sql, values = operator.render(dialect.column(schema, attribute), value, is_list)
    params.extend(values)
    return sql


def _conditions(schema: TableSchema, dialect: Dialect, query: Query, params: list[Any]) -> str:
    if not query.conditions:
        return ""
    return " WHERE " + _where(schema, dialect, Group(query.operator, query.conditions), params)


def compile_select(schema: TableSchema, query: Query, dialect: Dialect = SQLITE) -> CompiledQuery:
    """``SELECT data, version`` for the records matching ``query``."""
    params: list[Any] = []
    sql = f"SELECT data, version FROM {dialect.table(schema)}"
    sql += _conditions(schema, dialect, query, params)
    order: list[str] = []
    if query.sort is not None:
        for sort in query.sort.chain():
            attr = sort.attribute if isinstance(sort.attribute, str) else ".".join(sort.attribute)
            if attr not in schema.fields:
                raise InvalidQuery(f"cannot sort by {attr}: not an attribute of {schema.name}")
            order.append(dialect.column(schema, attr) + (" DESC" if sort.descending else ""))
    if order:
        sql += " ORDER BY " + ", ".join(order)
    if query.limit is not None or query.offset:
        sql += " LIMIT ? OFFSET ?"
        params.extend([query.limit if query.limit is not None else -1, query.offset or 0])
    return CompiledQuery(sql, params)


def compile_count(schema: TableSchema, query: Query, dialect: Dialect = SQLITE) -> CompiledQuery:
    """``SELECT count(*)`` of the records matching ``query``'s conditions."""
    params: list[Any] = []
    sql = f"SELECT count(*) FROM {dialect.table(schema)}"
    sql += _conditions(schema, dialect, query, params)
    return CompiledQuery(sql, params)
