"""Searches that see the current transaction's pending writes (read your own writes).

Inside a transaction that has staged writes to a table a query reads (the searched table, or
one it reaches through a relationship: a condition, a sort, a nested select, a row rule), a
search, a count or a counted search answers what it would answer if those writes were
committed: deleted records vanish, new ones appear, changed ones match on their new values.
Otherwise it is the committed read it always was, at the cost of a context variable look-up:
the hot path (a GET, a list) is not slowed.

Why in the database rather than in memory: the backend applies the pending changes inside a
transaction that it rolls back once the query has run (``Storage.search_with``), so the query
runs as the very SQL a committed read runs: joins, counts, row rules (a reader's scope is part
of the query), collations, sorting, paging and nested selects need no second implementation
that could disagree with the first. An in-memory overlay (``query.match`` over the staged
documents, merged into the committed results) would have to redo joins both ways, re-sort
and re-page, and count what SQL counted; it would be fast but wrong in the corners. The price
is paid only by a read that meets pending writes: a round trip that applies them (on SQLite,
a job on the writer), and results read whole.

A record the transaction wrote comes back with version 0, as ``Transaction.read`` gives it:
the version a commit will give it is not known yet (and a 0 is never recorded as read).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec

from ..query.model import Group
from ..storage import Change, Row, Storage
from .transaction import Transaction, _current

if TYPE_CHECKING:
    from ..query.model import Condition, Query
    from ..query.resolve import Catalog
    from ..schema import TableSchema

__all__ = ["PendingReads", "reachable", "tables_read"]

_decode = msgspec.json.decode


class PendingReads:
    """``search``, ``count``, ``search_counted`` and ``explain`` of a storage, as the current
    transaction sees them (the signatures of ``Storage``'s)."""

    __slots__ = ("_reach", "storage")

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._reach: dict[str, frozenset[str]] = {}

    def _staged(self, schema: TableSchema, query: Query) -> tuple[Transaction, list[Change]] | None:
        """The current transaction and its writes to the tables ``query`` reads, if any (the
        first test is all a read pays without pending writes)."""
        txn = _current.get()
        if txn is None or not txn.wrote or txn.storage is not self.storage:
            return None
        changes = txn.pending(self.tables(schema, query))
        return None if changes is None else (txn, changes)

    def tables(self, schema: TableSchema, query: Query) -> frozenset[str]:
        """The tables ``query`` may read (``tables_read``), the reachable ones remembered."""
        reach = self._reach.get(schema.name)
        if reach is None:
            catalog: Catalog = getattr(self.storage, "catalog", None) or {schema.name: schema}
            reach = self._reach[schema.name] = reachable(catalog, schema.name)
        return tables_read(schema, query, reach)

    def search(self, schema: TableSchema, query: Query) -> AsyncIterator[Row]:
        staged = self._staged(schema, query)
        if staged is None:
            return self.storage.search(schema, query)
        return self._rows(schema, query, *staged)

    async def _rows(
        self, schema: TableSchema, query: Query, txn: Transaction, changes: list[Change]
    ) -> AsyncIterator[Row]:
        _, rows = await self.storage.search_with(changes, schema, query)
        for row in _marked(txn, schema, rows):
            yield row

    async def count(self, schema: TableSchema, query: Query) -> int:
        staged = self._staged(schema, query)
        if staged is None:
            return await self.storage.count(schema, query)
        total, _ = await self.storage.search_with(
            staged[1], schema, query, rows=False, counted=True
        )
        return total

    async def search_counted(
        self, schema: TableSchema, query: Query
    ) -> tuple[int, AsyncIterator[Row]]:
        staged = self._staged(schema, query)
        if staged is None:
            return await self.storage.search_counted(schema, query)
        txn, changes = staged
        total, rows = await self.storage.search_with(changes, schema, query, counted=True)
        return total, _iterate(_marked(txn, schema, rows))

    async def explain(self, schema: TableSchema, query: Query) -> dict[str, Any]:
        """The plan: the same whether writes are pending or not."""
        return await self.storage.explain(schema, query)


def _marked(txn: Transaction, schema: TableSchema, rows: list[Row]) -> list[Row]:
    """``rows`` with version 0 for the records ``txn`` wrote (see the module docstring)."""
    key = schema.primary_key
    out = []
    for row in rows:
        if txn.touches(schema.name, _decode(row.data).get(key)):
            row = Row(row.data, 0, row.related)
        out.append(row)
    return out


async def _iterate(rows: list[Row]) -> AsyncIterator[Row]:
    for row in rows:
        yield row


def reachable(catalog: Catalog, table: str) -> frozenset[str]:
    """``table`` and every table its relationships reach, directly or not."""
    seen = {table}
    todo = [table]
    while todo:
        schema = catalog.get(todo.pop())
        if schema is None:
            continue
        for relationship in schema.relationships.values():
            if relationship.target not in seen:
                seen.add(relationship.target)
                todo.append(relationship.target)
    return frozenset(seen)


def tables_read(schema: TableSchema, query: Query, reach: frozenset[str]) -> frozenset[str]:
    """The tables ``query`` of ``schema`` reads: the table alone when nothing in the query
    follows a relationship (no dotted condition or sort, no select, no row rule), else every
    table it could reach (``reach``): more than it may read, never less."""
    if (
        query.select is not None
        or (query.scope is not None and query.scope.rules)
        or any(len(s.path) > 1 for s in (query.sort.chain() if query.sort else ()))
        or not _flat(query.conditions)
    ):
        return reach
    return frozenset((schema.name,))


def _flat(conditions: list[Condition | Group]) -> bool:
    """Whether no condition names a path through a relationship."""
    for node in conditions:
        if isinstance(node, Group):
            if not _flat(node.conditions):
                return False
        elif len(node.path) > 1:
            return False
    return True
