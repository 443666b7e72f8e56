"""Embedded SQLite storage: WAL, reads on a thread pool, writes group-committed by one thread.

Why this shape: SQLite allows one writer at a time. Requests never hold that lock while they
await other work; they read committed data (each read its own snapshot), collect writes, and
hand them to the writer thread, which applies many transactions inside one short
``BEGIN IMMEDIATE`` (one savepoint each, so a failing one leaves the others) and resolves each
request's future. A write is acknowledged only after its COMMIT, and WAL with
``synchronous=NORMAL`` keeps every committed transaction across a crash of the process.

SQLite errors are translated where they surface (reads, commits, the storage proxy's calls)
through the table of ``sqlite_errors``; BUSY and LOCKED are retried first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from ..query.cache import LRU, query_key
from ..query.sql import SQLITE, compile_count, compile_select, plan_select
from . import sqlite_events as event_log
from .base import (
    DELETE,
    INCREMENT,
    INSERT,
    MERGE,
    PUBLISH,
    PUT,
    Change,
    ConflictError,
    DuplicateKey,
    LoggedEvent,
    Row,
    Storage,
)
from .batcher import ReadBatcher, drain
from .sqlite_changes import increment, merge
from .sqlite_checkpoint import BACKSTOP_PAGES, Checkpointer
from .sqlite_connect import BUSY_TIMEOUT, journals_in_memory, path_from_url
from .sqlite_connect import connect as _connect  # a module global: tests trace it
from .sqlite_errors import (
    RETRY_DELAYS,
    Outcome,
    charter_error,
    is_duplicate,
    outcome,
    pause,
    retrying,
    translated,
)
from .sqlite_inline import MISSED, InlineReader
from .sqlite_pending import PendingRead
from .sqlite_plans import Plan, choose
from .sqlite_schema import Statistics, migrate, quote
from .sqlite_stream import stream

if TYPE_CHECKING:
    from ..query.model import Query
    from ..schema import TableSchema

__all__ = ["SQLiteStorage"]

log = logging.getLogger("charter.storage")
T = TypeVar("T")
_BATCH = 256
_SMALL_RESULT = 1000  # a query limited to this many rows is read in one go
_READERS = 4
_PLANS = 2048  # planned queries remembered (see sqlite_plans.Plan)
_THREADED_USES = 100  # uses of a plan sent to a thread after it ran past the inline budget
_UNKNOWN_WRITES = 1 << 40  # what a raw write counts for: it may have changed any row
_json_decode = msgspec.json.decode
_json_encode = msgspec.json.encode


class _Job:
    __slots__ = ("changes", "future", "loop")

    def __init__(
        self, changes: Sequence[Change | _Callable], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.changes = changes
        self.loop = loop
        self.future: asyncio.Future[list[int | None]] = loop.create_future()

    def resolve(self, result: list[int | None] | None, error: BaseException | None) -> None:
        if error is not None:
            error = charter_error(error)

        def done() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result or [])

        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self.loop.call_soon_threadsafe(done)


class SQLiteStorage(Storage):
    """SQLite in WAL mode; see the module docstring for the concurrency design.

    ``pool_timeout`` is the busy timeout: how long a statement waits for a lock another
    process holds before the request is answered 503 (default 30 s). ``pool_size`` is taken
    for the factory's sake: SQLite has one writer and a fixed set of readers.
    """

    def __init__(
        self, url: str, *, pool_size: int | None = None, pool_timeout: float | None = None
    ) -> None:
        self.url = url
        self.busy_timeout = BUSY_TIMEOUT if pool_timeout is None else pool_timeout
        self.path = path_from_url(url)
        if self.path == ":memory:":
            # Every connection must see the same database: use a named shared-cache memory db.
            self.path = f"file:charter-{id(self)}?mode=memory&cache=shared"
        self._idle: list[sqlite3.Connection] = []
        self._log_idle: list[sqlite3.Connection] = []  # the event log's readers (the hub's)
        self._all: list[sqlite3.Connection] = []
        self._executor: ThreadPoolExecutor | None = None
        self._batcher: ReadBatcher | None = None
        self._inline = InlineReader(lambda: _connect(self.path, readonly=True, timeout=0))
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._write_conn: sqlite3.Connection | None = None
        self._stats: Statistics | None = None
        self._select: dict[str, str] = {}
        self._fetch: dict[str, str] = {}  # ``_select``, with the stale mark of a caching table
        self._sql: dict[str, dict[int, str]] = {}
        self._plans: LRU[Hashable, Plan] = LRU(_PLANS)
        self._written: dict[str, int] = {}  # writes applied per table, ever (see Plan)
        self._loop: asyncio.AbstractEventLoop | None = None  # where commit listeners run
        self._checkpointer: Checkpointer | None = None  # (a file database's WAL)
        self.catalog: dict[str, TableSchema] = {}  # every table, for queries that join

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self, schemas: Sequence[TableSchema]) -> None:
        if self._writer is not None:
            return
        if not self.path.startswith("file:"):
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
        conn = _connect(self.path, timeout=self.busy_timeout)
        if not self.path.startswith("file:"):
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            self._checkpointer = Checkpointer(
                lambda: _connect(self.path, timeout=self.busy_timeout)
            )
        names = [schema.name for schema in schemas]
        try:
            await asyncio.to_thread(migrate, conn, schemas)
            await asyncio.to_thread(event_log.create_event_log, conn)
            self._stats = await asyncio.to_thread(Statistics, conn, names)
            journals_in_memory(conn, True)  # (after the migration: see sqlite_connect)
        except BaseException:  # a refused migration leaves nothing open
            conn.close()
            self._checkpointer = None
            raise
        self._write_conn = conn
        self._loop = asyncio.get_running_loop()
        self.catalog = {schema.name: schema for schema in schemas}
        self._written = dict.fromkeys(self.catalog, 0)
        for schema in schemas:
            table = quote(schema.name)
            self._select[schema.name] = f"SELECT data, version FROM {table} WHERE id = ?"
            self._fetch[schema.name] = (
                f"SELECT data, version, stale = version FROM {table} WHERE id = ?"
                if schema.cached
                else self._select[schema.name]
            )
            self._sql[schema.name] = {
                PUT: f"INSERT INTO {table} (id, data, version) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data, "
                "version = max(excluded.version, version + 1) RETURNING version",
                INSERT: f"INSERT INTO {table} (id, data, version) VALUES (?, ?, ?) "
                "RETURNING version",
                DELETE: f"DELETE FROM {table} WHERE id = ?",
            }
        self._executor = ThreadPoolExecutor(_READERS, thread_name_prefix="charter-sqlite-read")
        self._batcher = ReadBatcher(self._reader, call=retrying)
        self._writer = threading.Thread(target=self._write_loop, name="charter-sqlite-write")
        self._writer.daemon = True
        self._writer.start()
        if self._checkpointer is not None:
            self._checkpointer.start()

    async def close(self) -> None:
        if self._writer is None:
            return
        self._queue.put(None)
        await asyncio.to_thread(self._writer.join)
        self._writer = None
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.close)
            self._checkpointer = None
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None
        self._inline.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._idle.clear()
        self._log_idle.clear()
        if self._write_conn is not None:
            with contextlib.suppress(sqlite3.Error):  # SQLite's advice for a closing connection
                self._write_conn.execute("PRAGMA optimize")
            self._write_conn.close()
            self._write_conn = None

    # -- reads -----------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        return _connect(self.path, readonly=True, timeout=self.busy_timeout)

    def _acquire(self, idle: list[sqlite3.Connection] | None = None) -> sqlite3.Connection:
        try:
            return (self._idle if idle is None else idle).pop()
        except IndexError:
            conn = self._reader()
            self._all.append(conn)
            return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        self._idle.append(conn)

    async def _read(
        self, fn: Callable[[sqlite3.Connection], T], idle: list[sqlite3.Connection] | None = None
    ) -> T:
        def run() -> T:
            conn = self._acquire(idle)
            try:
                return fn(conn)
            finally:
                (self._idle if idle is None else idle).append(conn)

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, retrying, run)

    async def fetch(self, table: str, key: Any) -> Row | None:
        sql = self._fetch[table]

        def run(conn: sqlite3.Connection) -> Row | None:
            row = conn.execute(sql, (key,)).fetchone()
            if row is None:
                return None
            return Row(row[0], row[1]) if len(row) == 2 else Row(row[0], row[1], None, row[2] == 1)

        found = self._inline.run(run)
        if found is not MISSED:
            return found  # type: ignore[return-value]
        assert self._batcher is not None
        return await self._batcher.submit(run)  # type: ignore[no-any-return]

    def search(self, schema: TableSchema, query: Query) -> AsyncIterator[Row]:
        """Rows as they are read: a small result in one hop, a large one in batches.

        The query is compiled here, before the first row is asked for, so a query that cannot
        compile fails before a response has started. A query planned before (the same
        ``query_key``) is not planned again: the schema does not change while the app runs.
        """
        key = query_key(query)
        plan = self._plans.get((schema.name, key)) if key is not None else None
        if plan is None:
            plan = Plan(*plan_select(schema, query, catalog=self.catalog))
            if key is not None:
                self._plans.put((schema.name, key), plan)
        return self._search(schema.name, query, plan)

    async def _search(self, table: str, query: Query, plan: Plan) -> AsyncIterator[Row]:
        compiled = plan.default
        if query.limit is not None and query.limit <= _SMALL_RESULT:
            written = self._written

            def run(conn: sqlite3.Connection) -> list[Any]:
                chosen = choose(conn, plan, written.get(table, 0))
                return conn.execute(chosen.sql, chosen.params).fetchall()

            rows: Any = MISSED
            if plan.threaded:
                plan.threaded -= 1
            else:
                rows = self._inline.run(run)
                if rows is MISSED:
                    plan.threaded = _THREADED_USES
            if rows is MISSED:
                assert self._batcher is not None
                rows = await self._batcher.submit(run)
            for row in rows:
                yield Row(*row)
            return
        rows = stream(self._acquire, self._release, self._on_reader, compiled.sql, compiled.params)
        async with contextlib.aclosing(rows) as streamed:
            async for row in streamed:
                yield row

    async def _on_reader(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a reader thread, SQLite errors translated (not retried: the next
        rows of a cursor cannot be read again). Cancelled meanwhile, it still waits for the
        thread to be done, so that a connection is never used by two threads at once."""
        submit = self._executor.submit  # type: ignore[union-attr]
        job = asyncio.wrap_future(submit(translated, fn, *args))
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await job
            raise

    async def search_counted(
        self, schema: TableSchema, query: Query
    ) -> tuple[int, AsyncIterator[Row]]:
        compiled = compile_select(schema, query, catalog=self.catalog)
        counting = compile_count(schema, query, catalog=self.catalog)
        count = (counting.sql, counting.params)
        rows = stream(
            self._acquire, self._release, self._on_reader, compiled.sql, compiled.params, count
        )
        total = await rows.__anext__()
        return int(total), rows

    async def count(self, schema: TableSchema, query: Query) -> int:
        compiled = compile_count(schema, query, catalog=self.catalog)
        return await self._read(
            lambda c: int(c.execute(compiled.sql, compiled.params).fetchone()[0])
        )

    async def explain(self, schema: TableSchema, query: Query) -> dict[str, Any]:
        """The compiler's plan, the SQL and SQLite's own ``EXPLAIN QUERY PLAN``."""
        plan = Plan(*plan_select(schema, query, catalog=self.catalog, describe=True))

        def run(conn: sqlite3.Connection) -> tuple[Any, list[str]]:
            chosen = choose(conn, plan, 0)  # a new plan: probed now, as the table is
            text = SQLITE.explain(chosen.sql)
            return chosen, [r[3] for r in conn.execute(text, chosen.params)]

        compiled, lines = await self._read(run)
        return {
            "table": schema.name,
            "conditions": compiled.plan,
            "sql": compiled.sql,
            "params": compiled.params,
            "sqlite": lines,
        }

    async def execute_read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run a read-only statement on a reader connection (used by the storage proxy)."""
        return await self._read(lambda c: c.execute(sql, params).fetchall())

    # -- the event log ---------------------------------------------------------------------

    async def read_events(self, after: int, limit: int) -> list[LoggedEvent]:
        return await self._read(lambda c: event_log.read_since(c, after, limit), self._log_idle)

    async def read_events_back(
        self, table: str, key: Any, before: int, limit: int
    ) -> list[LoggedEvent]:
        return await self._read(
            lambda c: event_log.read_back(c, table, key, before, limit), self._log_idle
        )

    async def event_bounds(self) -> tuple[int, int]:
        return await self._read(event_log.read_bounds, self._log_idle)

    async def first_event_since(self, timestamp: int) -> int | None:
        return await self._read(lambda c: event_log.first_since(c, timestamp), self._log_idle)

    async def prune_events(self, *, older_than: int | None, keep: int | None) -> int:
        return await self.run_write(lambda c: event_log.prune(c, older_than, keep))

    # -- writes ----------------------------------------------------------------------------

    async def commit(self, changes: Sequence[Change]) -> list[int | None]:
        if not changes:
            return []
        if self._writer is None:
            raise RuntimeError("storage is not open")
        job = _Job(changes, asyncio.get_running_loop())
        self._queue.put(job)
        return await job.future

    async def search_with(
        self,
        changes: Sequence[Change],
        schema: TableSchema,
        query: Query,
        *,
        rows: bool = True,
        counted: bool = False,
    ) -> tuple[int, list[Row]]:
        """A job on the writer that applies the changes, queries and rolls them back
        (``sqlite_pending``)."""
        if self._writer is None:
            raise RuntimeError("storage is not open")
        read = PendingRead(
            self._write, changes, schema, query, self.catalog, rows=rows, counted=counted
        )
        job = _Job([_Callable(read, writes=False)], asyncio.get_running_loop())
        self._queue.put(job)
        await job.future
        return read.result

    async def mark_stale(self, table: str, key: Any) -> None:
        """(``Storage.mark_stale``) One statement on the writer connection; it changes no
        document, so the query plans stay as they are."""
        if self._writer is None:
            raise RuntimeError("storage is not open")
        sql = f"UPDATE {quote(table)} SET stale = version WHERE id = ?"
        mark = _Callable(lambda conn: conn.execute(sql, (key,)), writes=False)
        job = _Job([mark], asyncio.get_running_loop())
        self._queue.put(job)
        await job.future

    async def run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer connection, committed like any transaction (storage proxy)."""
        if self._writer is None:
            raise RuntimeError("storage is not open")
        result: list[T] = []

        def call(conn: sqlite3.Connection) -> None:
            result[:] = [fn(conn)]  # a job may run again (see _commit_batch): keep the last

        job = _Job([_Callable(call)], asyncio.get_running_loop())
        self._queue.put(job)
        await job.future
        return result[0]

    def _write_loop(self) -> None:
        conn = self._write_conn
        assert conn is not None
        stop = False
        while not stop:
            job = self._queue.get()
            if job is None:
                break
            batch, stop = drain(self._queue, job, _BATCH)
            # A statement of the app's own may rewrite a whole table: its journals on disk.
            raw = any(isinstance(c, _Callable) and c.writes for j in batch for c in j.changes)
            if raw:
                journals_in_memory(conn, False)
            try:
                self._commit_batch(conn, batch)
            except Exception as exc:  # the writer itself failed (a ROLLBACK TO, say)
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                for failed in batch:  # (a job answered already keeps its answer)
                    failed.resolve(None, exc)
            if raw:
                journals_in_memory(conn, True)
            if self._stats is not None:
                self._stats.refresh(conn)

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        outcomes: list[tuple[_Job, list[int | None] | None, BaseException | None]] = []
        try:
            retrying(conn.execute, "BEGIN IMMEDIATE")
        except Exception as exc:
            for job in batch:
                job.resolve(None, exc)
            return
        for index, job in enumerate(batch):
            conn.execute("SAVEPOINT job")
            try:
                versions = self._apply_retrying(conn, job.changes)
            except BaseException as exc:  # reported to the waiting request
                if not conn.in_transaction:
                    # The error ended the whole transaction (SQLITE_INTERRUPT, FULL, IOERR or
                    # NOMEM in a write): the jobs before this one are undone too. Fail this
                    # job; run the others again in a new transaction.
                    job.resolve(None, exc)
                    rest = [done for done, _, _ in outcomes] + batch[index + 1 :]
                    if rest:
                        self._commit_batch(conn, rest)
                    return
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((job, None, exc))
            else:
                conn.execute("RELEASE job")
                outcomes.append((job, versions, None))
        try:
            retrying(conn.execute, "COMMIT")  # a COMMIT that meets BUSY can be run again
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job, _, _ in outcomes:
                job.resolve(None, exc)
            return
        for job, result, error in outcomes:
            job.resolve(result, error)
        if self._checkpointer is not None:
            self._checkpointer.wrote()
        if self._loop is not None and any(
            error is None and _logs_events(job) for job, _, error in outcomes
        ):
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens any more
                self._loop.call_soon_threadsafe(self.committed_events)

    def _apply_retrying(
        self, conn: sqlite3.Connection, changes: Sequence[Change | _Callable]
    ) -> list[int | None]:
        """``_apply`` under the savepoint ``job``, run again after each of ``RETRY_DELAYS``
        while it meets BUSY or LOCKED (a shared-cache reader holding a table)."""
        for delay in RETRY_DELAYS:
            try:
                return self._apply(conn, changes)
            except sqlite3.Error as exc:
                if outcome(exc) is not Outcome.RETRY or not conn.in_transaction:
                    raise
            conn.execute("ROLLBACK TO job")
            pause(delay)
        return self._apply(conn, changes)

    def _apply(
        self, conn: sqlite3.Connection, changes: Sequence[Change | _Callable]
    ) -> list[int | None]:
        now = int(time.time() * 1000)
        versions: list[int | None] = []
        for change in changes:
            if isinstance(change, _Callable):
                if change.writes:
                    for table in self._written:
                        self._written[table] += _UNKNOWN_WRITES
                change.fn(conn)
                versions.append(None)
                continue
            assert isinstance(change, Change)
            if change.kind == PUBLISH:
                versions.append(None)
                event_log.log_event(conn, change, None, now)
                continue
            if change.table in self._written:
                self._written[change.table] += 1
            if self._stats is not None:
                self._stats.wrote(change.table)
            if change.expect is not None:
                row = conn.execute(self._select[change.table], (change.key,)).fetchone()
                current = row[1] if row is not None else 0
                if current != change.expect:
                    raise ConflictError.for_key(change.table, change.key)
            versions.append(self._write(conn, change, now))
            if change.event is not None:
                event_log.log_event(conn, change, versions[-1], now)
        return versions

    def _write(self, conn: sqlite3.Connection, change: Change, now: int) -> int | None:
        """Apply one write (its version check done): the record's new version (None when
        deleted)."""
        sql = self._sql[change.table]
        if change.kind == PUT:
            return int(conn.execute(sql[PUT], (change.key, change.data, now)).fetchone()[0])
        if change.kind == INSERT:
            try:
                row = conn.execute(sql[INSERT], (change.key, change.data, now)).fetchone()
            except sqlite3.IntegrityError as exc:
                if is_duplicate(exc):
                    raise DuplicateKey.for_key(change.table, change.key) from None
                raise
            return int(row[0])
        if change.kind == DELETE:
            conn.execute(sql[DELETE], (change.key,))
            return None
        if change.kind == INCREMENT:
            return increment(conn, change, now)
        if change.kind == MERGE:
            return merge(conn, change, now, self._select[change.table])
        raise ValueError(f"unknown change kind {change.kind}")


def _logs_events(job: _Job) -> bool:
    return any(isinstance(c, Change) and c.event is not None for c in job.changes)


class _Callable:
    """A raw write run by the writer thread (the storage proxy's statements); ``writes``
    False: it leaves nothing written (a read of pending changes), so plans stay as they are."""

    __slots__ = ("fn", "writes")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], *, writes: bool = True) -> None:
        self.fn = fn
        self.writes = writes
