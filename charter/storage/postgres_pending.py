"""Read-your-writes on PostgreSQL: a query answered over a transaction's pending changes.

Why this shape: on a pooled connection, BEGIN, the changes applied with the commit's code (rows
locked in the commit's order, so no deadlock with a commit), the query, ROLLBACK. The rows it
changes stay locked only while the query runs. ``postgres.PostgresStorage.search_with``
compiles the query, orders the changes and runs this on a connection of its pool.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .base import Change, MissingRecord, Row
from .postgres_schema import Connection

__all__ = ["PendingRead"]

Apply = Callable[[Connection, Change, int], Awaitable[int | None]]
Statement = tuple[str, Sequence[Any]]


class PendingRead:
    """Called with a connection: the count (0 unless ``counting``) and the rows ([] unless
    ``select``) the query finds with ``pending`` (``as_pending``'s, in lock order) applied."""

    __slots__ = ("_apply", "_counting", "_pending", "_row", "_select", "_table")

    def __init__(
        self,
        apply: Apply,
        row: Callable[..., Row],
        table: str,
        pending: Sequence[Change],
        select: Statement | None,
        counting: Statement | None,
    ) -> None:
        self._apply = apply
        self._row = row
        self._table = table
        self._pending = pending
        self._select = select
        self._counting = counting

    async def __call__(self, conn: Connection) -> tuple[int, list[Row]]:
        transaction = conn.transaction()
        await transaction.start()
        try:
            now = int(time.time() * 1000)
            for change in self._pending:
                with contextlib.suppress(MissingRecord):
                    await self._apply(conn, change, now)
            total = 0
            if self._counting is not None:
                total = int(await conn.fetchval(self._counting[0], *self._counting[1]))
            found: list[Row] = []
            if self._select is not None:
                records = await conn.fetch(self._select[0], *self._select[1])
                found = [self._row(self._table, *record) for record in records]
            return total, found
        finally:
            await transaction.rollback()
