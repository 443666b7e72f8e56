"""A large SQLite result streamed: rows read in batches on one reader connection.

Why this shape: the rows are drained into a ``Spill`` at SQLite's pace, so the connection and
its snapshot (which holds back WAL checkpoints) are let go as soon as the cursor is exhausted,
however slowly the rows are read. ``sqlite.SQLiteStorage`` hands over its reader pool and the
call that runs on a reader thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from .base import Row
from .spill import Spill, batch_size, spilled
from .sqlite_errors import retrying

__all__ = ["stream"]

T = TypeVar("T")
_FIRST_BATCH = 256
_BATCH_ROWS = 1000


class OnReader(Protocol):
    """Runs ``fn(*args)`` on a reader thread (``SQLiteStorage._on_reader``)."""

    def __call__(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]: ...


def stream(
    acquire: Callable[[], sqlite3.Connection],
    release: Callable[[sqlite3.Connection], None],
    on_reader: OnReader,
    sql: str,
    params: Sequence[Any],
    count: tuple[str, Sequence[Any]] | None = None,
) -> AsyncGenerator[Any, None]:
    """Rows read in batches on one connection (first the count, when ``count`` is given,
    from the same snapshot). Closing the iterator stops the reading."""

    def finish(conn: sqlite3.Connection, cursor: sqlite3.Cursor | None) -> None:
        if cursor is not None:
            cursor.close()
        if conn.in_transaction:
            conn.execute("COMMIT")
        release(conn)

    def first() -> tuple[sqlite3.Connection | None, sqlite3.Cursor | None, int, list[Any]]:
        conn = acquire()
        cursor = None
        try:
            total = 0
            if count is not None:
                conn.execute("BEGIN")  # one snapshot for the count and the rows
                total = int(conn.execute(count[0], count[1]).fetchone()[0])
            cursor = conn.execute(sql, params)
            rows = cursor.fetchmany(_FIRST_BATCH)
        except BaseException:
            finish(conn, cursor)
            raise
        if len(rows) < _FIRST_BATCH:
            finish(conn, cursor)
            return None, None, total, rows
        return conn, cursor, total, rows

    async def produce(spill: Spill) -> None:
        conn, cursor, total, rows = await on_reader(retrying, first)
        try:
            if count is not None:
                spill.put_total(total)
            await spill.put([Row(*row) for row in rows])
            size = _BATCH_ROWS
            while cursor is not None:
                # Read on demand while the client keeps up (a reader thread running ahead
                # would contend with the event loop for the GIL); drain once it does not.
                await spill.wanted()
                rows = await on_reader(cursor.fetchmany, size)
                batch = [Row(*row) for row in rows]
                await spill.put(batch)
                if len(rows) < size:
                    return
                size = batch_size(batch, _BATCH_ROWS)
        finally:
            if conn is not None:
                finish(conn, cursor)

    return spilled(produce, counted=count is not None)
