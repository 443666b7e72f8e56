"""Read-your-writes on SQLite: a query answered over a transaction's pending changes.

Why this shape: only the writer connection may write, so the read is a job on the writer
thread (``sqlite.SQLiteStorage.search_with`` queues it). Under a savepoint of its own the
changes are applied with the commit's code, the query is run, and the savepoint is rolled back.
It holds the writer while the query runs (the price of a read of one's own pending writes; such
reads are rare and their results are read whole anyway). It sees what the jobs before it in the
same group commit wrote.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..query.sql import compile_count, compile_select
from .base import Change, MissingRecord, Row, as_pending

if TYPE_CHECKING:
    from ..query.model import Query
    from ..schema import TableSchema

__all__ = ["PendingRead"]

Write = Callable[[sqlite3.Connection, Change, int], int | None]


class PendingRead:
    """The writer job of one read: called with the writer connection, it leaves ``result``
    (the count, 0 unless counted, and the rows, [] unless asked for). The query is compiled
    here, before the job is queued."""

    __slots__ = ("_counting", "_pending", "_select", "_write", "result")

    def __init__(
        self,
        write: Write,
        changes: Sequence[Change],
        schema: TableSchema,
        query: Query,
        catalog: dict[str, TableSchema],
        *,
        rows: bool,
        counted: bool,
    ) -> None:
        self._write = write
        self._select = compile_select(schema, query, catalog=catalog) if rows else None
        self._counting = compile_count(schema, query, catalog=catalog) if counted else None
        self._pending = as_pending(changes)
        self.result: tuple[int, list[Row]] = (0, [])

    def __call__(self, conn: sqlite3.Connection) -> None:
        conn.execute("SAVEPOINT pending")
        try:
            now = int(time.time() * 1000)
            for change in self._pending:
                with contextlib.suppress(MissingRecord):
                    self._write(conn, change, now)
            total = 0
            if self._counting is not None:
                counting = self._counting
                total = int(conn.execute(counting.sql, counting.params).fetchone()[0])
            found: list[Row] = []
            if self._select is not None:
                select = self._select
                found = [Row(*row) for row in conn.execute(select.sql, select.params)]
            self.result = (total, found)  # a job may run again (see _commit_batch): the last
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO pending")
                conn.execute("RELEASE pending")
