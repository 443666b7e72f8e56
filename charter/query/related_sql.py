"""SQL for selected relationships: each related record (or list of them) as a JSON value in
the same statement as the rows that select it, beside the compiler that calls it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidQuery
from ..limits import MAX_SELECT_DEPTH
from ..schema import TableSchema
from .model import Select

if TYPE_CHECKING:
    from .sql import Compiler

__all__ = ["related_column"]


def related_column(
    c: Compiler, schema: TableSchema, alias: str, select: Select, depth: int = 0
) -> str | None:
    """SQL for the JSON object of the selected relationships (None when none is selected).

    ``InvalidQuery`` for an attribute selected twice at one level, or for selects nested
    deeper than ``MAX_SELECT_DEPTH``.
    """
    if depth > MAX_SELECT_DEPTH:
        raise InvalidQuery(f"select(): selects nest at most {MAX_SELECT_DEPTH} levels deep")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in select.items:
        name = item.name
        if name in seen:
            raise InvalidQuery(f"select(): {name} is selected twice")
        seen.add(name)
        rel = schema.relationships.get(name)
        if rel is not None and not c.shows(schema, name):
            rel = None  # hidden from the reader: as if it did not exist
        if rel is None:
            if item.select is not None:
                raise InvalidQuery(f"select(): {name} is not a relationship of {schema.name}")
            c.resolve(schema, [name], "select()")
            continue
        target = c.catalog.get(rel.target)
        if target is None:
            raise InvalidQuery(f"select(): {name} names an unknown table")
        if item.select is not None and item.select.mode != "object":
            raise InvalidQuery(f"select(): a nested select of {name} lists attributes")
        sql = _relationship(c, alias, schema, rel, target, item.select, depth)
        pairs.append((name, c.d.json_value(sql)))
    return c.d.json_object(pairs) if pairs else None


def _relationship(
    c: Compiler,
    alias: str,
    source: TableSchema,
    rel: Any,
    target: TableSchema,
    nested: Any,
    depth: int,
) -> str:
    d = c.d
    inner = c.alias()
    deeper = related_column(c, target, inner, nested, depth + 1) if nested is not None else None
    envelope = d.json_array(
        [d.json_value(d.document(inner)), f"{inner}.version", deeper or d.json_object([])]
    )
    table = f"{d.table(target.name)} AS {inner}"
    # Related records the reader may not see are left out, as if absent.
    if rel.to is not None:
        condition = c.ruled(
            target.name, inner, f"{d.field(inner, target, rel.to)} = {d.key(alias)}"
        )
        rows = (
            f"SELECT {envelope} AS x FROM {table} WHERE {condition} "
            f"ORDER BY {d.order_term(d.key(inner), False)}"
        )
        return f"(SELECT {d.json_aggregate('x')} FROM ({rows}) AS r)"
    fk = d.field(alias, source, rel.from_)
    if not rel.many:
        where = c.ruled(target.name, inner, f"{d.key(inner)} = {fk}")
        return f"(SELECT {envelope} FROM {table} WHERE {where})"
    k = c.alias()
    where = c.ruled(target.name, inner, "")
    rows = (
        f"SELECT {envelope} AS x FROM {d.elements(fk, k)} JOIN {table} "
        f"ON {d.key(inner)} = {k}.value{' WHERE ' + where if where else ''} "
        f"ORDER BY {d.order_term(k + '.key', False)}"
    )
    return f"(SELECT {d.json_aggregate('x')} FROM ({rows}) AS r)"
