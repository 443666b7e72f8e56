"""``select()``: which attributes each result holds, and nested related records.

The SQL side (``related_column``) adds one JSON column per result row holding, for each
selected relationship, the related records as ``[document, version, {nested...}]`` envelopes
(an array of them for to-many), built by correlated ``json_group_array`` subqueries: one
statement however many results and relationships. The Python side (``Projector``) shapes each
result from its document and that column, asking ``allow`` (the tables' ``allow_read`` hooks)
about every related record; a denied to-one record reads as null, a denied to-many one is left
out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import InvalidQuery
from ..limits import MAX_SELECT_DEPTH
from ..schema import TableSchema
from .model import Select
from .resolve import ID, UPDATED, Catalog

if TYPE_CHECKING:
    from .sql import Compiler

__all__ = ["Projector", "related_column"]

Allow = Callable[[str, dict[str, Any], int], Awaitable[bool]]
_decode = msgspec.json.decode


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
        sql = _relationship(c, alias, rel, target, item.select, depth)
        pairs.append((name, c.d.json_value(sql)))
    return c.d.json_object(pairs) if pairs else None


def _relationship(
    c: Compiler, alias: str, rel: Any, target: TableSchema, nested: Any, depth: int
) -> str:
    d = c.d
    inner = c.alias()
    deeper = related_column(c, target, inner, nested, depth + 1) if nested is not None else None
    envelope = d.json_array(
        [d.json_value(d.document(inner)), f"{inner}.version", deeper or d.json_object([])]
    )
    table = f"{d.table(target.name)} AS {inner}"
    if rel.to is not None:
        condition = f"{d.attribute(inner, [rel.to])} = {d.key(alias)}"
        rows = (
            f"SELECT {envelope} AS x FROM {table} WHERE {condition} "
            f"ORDER BY {d.order_term(d.key(inner), False)}"
        )
        return f"(SELECT {d.json_aggregate('x')} FROM ({rows}) AS r)"
    fk = d.attribute(alias, [rel.from_])
    if not rel.many:
        return f"(SELECT {envelope} FROM {table} WHERE {d.key(inner)} = {fk})"
    k = c.alias()
    rows = (
        f"SELECT {envelope} AS x FROM {d.elements(fk, k)} JOIN {table} "
        f"ON {d.key(inner)} = {k}.value ORDER BY {d.order_term(k + '.key', False)}"
    )
    return f"(SELECT {d.json_aggregate('x')} FROM ({rows}) AS r)"


_DENIED = object()


class Projector:
    """Shapes results as ``select`` says; see the module docstring."""

    def __init__(self, catalog: Catalog, schema: TableSchema, select: Select, allow: Allow | None):
        self.catalog = catalog
        self.schema = schema
        self.select = select
        self.allow = allow

    async def __call__(self, doc: dict[str, Any], version: int, related: str | None) -> Any:
        rel = _decode(related) if related else {}
        return await self._project(self.schema, self.select, doc, version, rel)

    async def _project(
        self, schema: TableSchema, select: Select, doc: dict[str, Any], version: int, rel: Any
    ) -> Any:
        values: list[Any] = []
        for item in select.items:
            spec = schema.relationships.get(item.name)
            if spec is not None:
                target = self.catalog[spec.target]
                raw = (rel or {}).get(item.name)
                if spec.many:
                    found = [await self._record(target, item.select, e) for e in raw or []]
                    values.append([v for v in found if v is not _DENIED])
                else:
                    one = await self._record(target, item.select, raw) if raw else None
                    values.append(None if one is _DENIED else one)
            elif item.name == ID:
                values.append(doc.get(schema.primary_key))
            elif item.name == UPDATED:
                values.append(version)
            else:
                values.append(doc.get(item.name))
        if select.mode == "value":
            return values[0]
        if select.mode == "array":
            return values
        return {item.name: value for item, value in zip(select.items, values, strict=True)}

    async def _record(self, schema: TableSchema, select: Select | None, envelope: Any) -> Any:
        doc, version, nested = envelope
        if self.allow is not None and not await self.allow(schema.name, doc, version):
            return _DENIED
        if select is None:
            if schema.hidden:
                return {k: v for k, v in doc.items() if k not in schema.hidden}
            return doc
        return await self._project(schema, select, doc, version, nested)
