"""PostgreSQL storage on asyncpg: the same semantics as SQLite, for several workers and machines.

Why this shape: PostgreSQL has row locks, so transactions need no single writer. A request's
change set is applied on one pooled connection: a lone change as one statement (atomic by
itself: one round trip), several inside ``BEGIN``/``COMMIT``, ordered by key so two change sets
lock rows in the same order. The optimistic checks are conditional statements
(``UPDATE ... WHERE version = $expected``): under READ COMMITTED PostgreSQL re-checks the
condition against the newest committed row, so a concurrent write makes the statement match
nothing, which is a ``ConflictError``. Increments are one ``UPDATE`` each and need no check.
Versions are ``GREATEST(now_ms, version + 1)``: strictly increasing per record whatever the
clocks of the machines. Every statement's text is fixed per table, so asyncpg prepares it once
per connection. Driver errors are translated by SQLSTATE through ``postgres_errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import functools
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import asyncpg
import msgspec

from ..query.sql import CompiledQuery, compile_count, compile_select
from . import postgres_events as event_log
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
    MissingRecord,
    Row,
    Storage,
    as_pending,
)
from .postgres_dialect import POSTGRES, adapt
from .postgres_errors import Outcome, no_connection, nul_in_query, outcome, translate
from .postgres_floats import LONG_NUMBER, floats_of, render_floats
from .postgres_pending import PendingRead
from .postgres_pool import init_connection, pool_options
from .postgres_schema import Connection, migrate
from .postgres_statements import Statements
from .spill import Spill, batch_size, spilled

if TYPE_CHECKING:
    from ..query.model import Query
    from ..schema import TableSchema

__all__ = ["PostgresStorage"]

log = logging.getLogger("charter.storage")
T = TypeVar("T")

_RETRIES = 4  # a change set failing with a serialization failure or deadlock is re-run
_SMALL_RESULT = 1000  # a query limited to this many rows is read in one go
_BATCH_ROWS = 1000  # most rows a streaming read takes from its cursor at once
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)
_decode_json = msgspec.json.decode


def _raise(exc: BaseException) -> NoReturn:
    mapped = translate(exc)
    if mapped is None:
        raise exc
    if mapped.status_code == 503:
        log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    raise mapped from exc


class PostgresStorage(Storage):
    """PostgreSQL through an asyncpg pool; see the module docstring for the design.

    Args:
        url: ``postgresql://user:password@host:port/database`` (asyncpg's DSN; extra query
            parameters such as ``search_path`` become server settings).
        pool_size: connections per process (``CHARTER_POOL_SIZE``; default 10).
        pool_timeout: seconds a request waits for a free connection before it is answered
            503 (``CHARTER_POOL_TIMEOUT``; default 10).
    """

    def __init__(
        self, url: str, pool_size: int | None = None, pool_timeout: float | None = None
    ) -> None:
        self.url = url
        self._dsn, self.pool_size, self.pool_timeout = pool_options(url, pool_size, pool_timeout)
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tables: dict[str, Statements] = {}
        self._floats: dict[str, dict[str, bool]] = {}
        self._waiting: dict[str, dict[Any, list[asyncio.Future[Row | None]]]] = {}
        self._flushing: set[asyncio.Future[None]] = set()
        self.catalog: dict[str, TableSchema] = {}  # every table, for queries that join
        self.dialect = POSTGRES

    @property
    def dsn(self) -> str:
        """The DSN for asyncpg (pool options taken out): for a connection of one's own, such
        as the LISTEN connection of ``realtime.wakeup``."""
        return self._dsn

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self, schemas: Sequence[TableSchema]) -> None:
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=min(2, self.pool_size),
                max_size=self.pool_size,
                init=init_connection,
                max_inactive_connection_lifetime=300,
            )
        except _DRIVER_ERRORS as exc:
            _raise(exc)
        try:
            async with pool.acquire() as conn:
                await migrate(conn, schemas)
                await event_log.create_event_log(conn)
                collation = await conn.fetchval(
                    "SELECT datcollate FROM pg_database WHERE datname = current_database()"
                )
        except BaseException:
            await pool.close()
            raise
        if collation not in ("C", "POSIX", "C.UTF-8", "C.utf8", "ucs_basic"):
            log.warning(
                "database collation is %s: strings sort and compare by it, not by code point "
                "as on SQLite (create the database with LC_COLLATE 'C.UTF-8' for the same order)",
                collation,
            )
        self.catalog = {schema.name: schema for schema in schemas}
        self._tables = {schema.name: Statements(schema) for schema in schemas}
        self._floats = {schema.name: floats for schema in schemas if (floats := floats_of(schema))}
        self._pool = pool
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        self._loop = None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10)
            except (TimeoutError, *_DRIVER_ERRORS):
                pool.terminate()

    # -- plumbing --------------------------------------------------------------------------

    def _require(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("storage is not open")
        return self._pool

    def _foreign(self) -> bool:
        """Whether the caller runs on another event loop than the pool's (a pool is bound to
        the loop that opened it; e.g. a test calling ``Table.search`` beside a TestClient)."""
        return self._loop is not None and asyncio.get_running_loop() is not self._loop

    async def _hop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the pool's loop and wait for it from this one."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(future)

    async def _collect(self, schema: TableSchema, query: Query) -> list[Row]:
        return [row async for row in self.search(schema, query)]

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A pooled connection, waited for at most ``pool_timeout`` (then 503)."""
        pool = self._require()
        try:
            conn = await pool.acquire(timeout=self.pool_timeout)
        except TimeoutError:
            raise no_connection(self.pool_timeout) from None
        except _DRIVER_ERRORS as exc:
            _raise(exc)
        try:
            yield conn
        finally:
            await pool.release(conn)

    async def _run(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """``fn(connection)`` on a pooled connection, driver errors translated."""
        try:
            async with self._connection() as conn:
                return await fn(conn)
        except _DRIVER_ERRORS as exc:
            _raise(exc)

    def _compile(self, compiled: CompiledQuery) -> tuple[str, list[Any]]:
        if _holds_nul(compiled.params):  # PostgreSQL text cannot hold one: refuse it here
            raise nul_in_query()
        return _adapt(compiled.sql), compiled.params

    def _row(
        self, table: str, data: str, version: int, related: str | None = None, stale: bool = False
    ) -> Row:
        """A stored row as Charter returns it: float attributes rendered as floats again."""
        floats = self._floats.get(table)
        if floats is not None and LONG_NUMBER.search(data) is not None:
            data = render_floats(data, floats)
        return Row(data, version, related, stale)

    # -- reads -----------------------------------------------------------------------------

    async def fetch(self, table: str, key: Any) -> Row | None:
        """The record, read together with the other point reads of this loop iteration.

        Requests that arrive together each want one record; one ``id = ANY(...)`` statement
        answers them all, where a statement each would cost a pool round trip each.
        """
        if self._foreign():
            return await self._hop(self.fetch(table, key))
        spec = self._tables[table]
        self._require()
        key = spec.key(key)
        if _holds_nul(key):  # no stored key can hold one (and it would fail the whole batch)
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Row | None] = loop.create_future()
        waiting = self._waiting.get(table)
        if waiting is None:
            waiting = self._waiting[table] = {}
            loop.call_soon(self._flush_soon, table)
        waiting.setdefault(key, []).append(future)
        return await future

    async def mark_stale(self, table: str, key: Any) -> None:
        if self._foreign():
            return await self._hop(self.mark_stale(table, key))
        spec = self._tables[table]
        key = spec.key(key)
        if _holds_nul(key):  # no stored key can hold one
            return None

        async def mark(conn: Connection) -> None:
            await conn.execute(spec.mark_stale, key)

        await self._run(mark)
        return None

    def _flush_soon(self, table: str) -> None:
        waiting = self._waiting.pop(table, None)
        if waiting:
            task = asyncio.ensure_future(self._flush(table, waiting))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _flush(
        self, table: str, waiting: dict[Any, list[asyncio.Future[Row | None]]]
    ) -> None:
        spec = self._tables[table]
        found: dict[Any, Row] = {}
        try:
            try:
                async with self._connection() as conn:
                    if len(waiting) == 1:
                        (key,) = waiting
                        record = await conn.fetchrow(spec.select, key)
                        if record is not None:
                            stale = len(record) > 2 and record[2] is True
                            found[key] = self._row(table, record[0], record[1], None, stale)
                    else:
                        for record in await conn.fetch(spec.select_many, list(waiting)):
                            key = spec.key(_decode_json(record[0]))
                            stale = len(record) > 3 and record[3] is True
                            found[key] = self._row(table, record[1], record[2], None, stale)
            except _DRIVER_ERRORS as exc:
                _raise(exc)
        except BaseException as exc:  # every waiting request gets the error
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for key, futures in waiting.items():
            answer = found.get(key)
            for future in futures:
                if not future.done():
                    future.set_result(answer)

    def search(self, schema: TableSchema, query: Query) -> AsyncIterator[Row]:
        """Rows as they are read: a small result in one hop, a large one through a cursor.

        The query is compiled (and a value PostgreSQL cannot compare refused) here, before the
        first row is asked for, so such an error is raised before a response has started.
        """
        if self._foreign():
            return self._hop_rows(schema, query)
        sql, params = self._compile(compile_select(schema, query, POSTGRES, self.catalog))
        return self._search(schema.name, query, sql, params)

    async def _hop_rows(self, schema: TableSchema, query: Query) -> AsyncIterator[Row]:
        for found in await self._hop(self._collect(schema, query)):
            yield found

    async def _search(
        self, table: str, query: Query, sql: str, params: Sequence[Any]
    ) -> AsyncIterator[Row]:
        if query.limit is not None and query.limit <= _SMALL_RESULT:
            records = await self._run(lambda c: c.fetch(sql, *params))
            for record in records:
                yield self._row(table, *record)
            return
        async with contextlib.aclosing(self._stream(table, sql, params)) as rows:
            async for row in rows:
                yield row

    def _stream(
        self,
        table: str,
        sql: str,
        params: Sequence[Any],
        count: tuple[str, Sequence[Any]] | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Rows through a server-side cursor in one read-only snapshot (first the count, when
        ``count`` is given), drained into a ``Spill`` at the database's pace: the connection
        goes back to the pool when the cursor is exhausted, however slowly the rows are read,
        and a request that reads a record while it iterates never waits on itself."""

        async def produce(spill: Spill) -> None:
            try:
                async with self._connection() as conn:
                    snapshot = count is not None
                    async with conn.transaction(
                        isolation="repeatable_read" if snapshot else "read_committed",
                        readonly=True,
                    ):
                        if count is not None:
                            spill.put_total(int(await conn.fetchval(count[0], *count[1])))
                        cursor = await conn.cursor(sql, *params)
                        size = _BATCH_ROWS
                        while True:
                            records = await cursor.fetch(size)
                            rows = [self._row(table, *record) for record in records]
                            await spill.put(rows)
                            if len(records) < size:
                                return
                            size = batch_size(rows, _BATCH_ROWS)
            except _DRIVER_ERRORS as exc:
                _raise(exc)

        return spilled(produce, counted=count is not None)

    async def search_counted(
        self, schema: TableSchema, query: Query
    ) -> tuple[int, AsyncIterator[Row]]:
        if self._foreign():
            total = await self._hop(self.count(schema, query))
            return total, _iterate(await self._hop(self._collect(schema, query)))
        sql, params = self._compile(compile_select(schema, query, POSTGRES, self.catalog))
        counting = self._compile(compile_count(schema, query, POSTGRES, self.catalog))
        rows = self._stream(schema.name, sql, params, counting)
        total = await rows.__anext__()
        return int(total), rows

    async def count(self, schema: TableSchema, query: Query) -> int:
        if self._foreign():
            return await self._hop(self.count(schema, query))
        sql, params = self._compile(compile_count(schema, query, POSTGRES, self.catalog))
        return int(await self._run(lambda c: c.fetchval(sql, *params)))

    async def explain(self, schema: TableSchema, query: Query) -> dict[str, Any]:
        """The compiler's plan, the SQL, and PostgreSQL's own ``EXPLAIN`` of it."""
        if self._foreign():
            return await self._hop(self.explain(schema, query))
        compiled = compile_select(schema, query, POSTGRES, self.catalog, describe=True)
        sql, params = self._compile(compiled)
        text = _adapt(POSTGRES.explain(compiled.sql))
        rows = await self._run(lambda c: c.fetch(text, *params))
        return {
            "table": schema.name,
            "conditions": compiled.plan,
            "sql": sql,
            "params": params,
            "postgresql": [row[0] for row in rows],
        }

    async def search_with(
        self,
        changes: Sequence[Change],
        schema: TableSchema,
        query: Query,
        *,
        rows: bool = True,
        counted: bool = False,
    ) -> tuple[int, list[Row]]:
        """The changes applied and rolled back around the query (``postgres_pending``)."""
        if self._foreign():
            return await self._hop(
                self.search_with(changes, schema, query, rows=rows, counted=counted)
            )
        select = (
            self._compile(compile_select(schema, query, POSTGRES, self.catalog)) if rows else None
        )
        counting = (
            self._compile(compile_count(schema, query, POSTGRES, self.catalog)) if counted else None
        )
        pending = sorted(as_pending(changes), key=_lock_order)  # stable: the commit's order
        return await self._run(
            PendingRead(self._apply, self._row, schema.name, pending, select, counting)
        )

    # -- writes ----------------------------------------------------------------------------

    async def commit(self, changes: Sequence[Change]) -> list[int | None]:
        if not changes:
            return []
        if self._foreign():
            return await self._hop(self.commit(changes))
        logs = any(change.event is not None for change in changes)
        for attempt in range(_RETRIES):
            try:
                async with self._connection() as conn:
                    if len(changes) == 1 and not logs:  # one statement: atomic by itself
                        return [await self._apply(conn, changes[0], _now())]
                    lone = changes[0]
                    if len(changes) == 1 and event_log.lone(lone) and not _holds_nul(lone.key):
                        spec = self._tables[lone.table]  # the write and its event: one statement
                        version = await event_log.apply_lone(conn, spec, lone, _now())
                        self.committed_events()
                        return [version]
                    async with conn.transaction():
                        versions = await self._apply_all(conn, changes)
                        if logs:
                            await event_log.append(
                                conn, changes, versions, _now(), self._render, self._tables
                            )
                if logs:
                    self.committed_events()
                return versions
            except _DRIVER_ERRORS as exc:
                if outcome(exc) is Outcome.RETRY and attempt < _RETRIES - 1:
                    await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
                    continue
                _raise(exc)
        raise AssertionError("unreachable")

    async def _apply_all(self, conn: Connection, changes: Sequence[Change]) -> list[int | None]:
        now = _now()
        # Rows are locked in one order (by table and key) in every change set: no deadlock
        # between two of them. The sort is stable, so one record's changes keep their order.
        order = sorted(range(len(changes)), key=lambda i: _lock_order(changes[i]))
        versions: list[int | None] = [None] * len(changes)
        for i in order:
            versions[i] = await self._apply(conn, changes[i], now)
        return versions

    def _render(self, table: str, data: str) -> str:
        return self._row(table, data, 0).data

    # -- the event log ---------------------------------------------------------------------

    async def _on_loop(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """``_run(fn)`` on the pool's loop, from whichever loop asks."""
        if self._foreign():
            return await self._hop(self._on_loop(fn))
        return await self._run(fn)

    async def read_events(self, after: int, limit: int) -> list[LoggedEvent]:
        return await self._on_loop(lambda c: event_log.read_since(c, after, limit))

    async def read_events_back(
        self, table: str, key: Any, before: int, limit: int
    ) -> list[LoggedEvent]:
        return await self._on_loop(lambda c: event_log.read_back(c, table, key, before, limit))

    async def event_bounds(self) -> tuple[int, int]:
        return await self._on_loop(event_log.read_bounds)

    async def first_event_since(self, timestamp: int) -> int | None:
        return await self._on_loop(lambda c: event_log.first_since(c, timestamp))

    async def prune_events(self, *, older_than: int | None, keep: int | None) -> int:
        return await self._on_loop(lambda c: event_log.prune(c, older_than, keep))

    async def _apply(self, conn: Connection, change: Change, now: int) -> int | None:
        if change.kind == PUBLISH:
            return None
        spec = self._tables[change.table]
        key = spec.key(change.key)
        expect = change.expect
        kind = change.kind
        if _holds_nul(key) and kind != PUT and kind != INSERT:
            # No stored key holds a NUL: there is nothing to change (and PostgreSQL would
            # refuse the statement). A write of one is refused as a value it cannot store.
            if kind == DELETE and not expect:
                return None
            if kind == DELETE:
                raise _conflict(change)
            raise MissingRecord.for_key(change.table, change.key)
        if kind == MERGE:
            if expect is None:
                version = await conn.fetchval(spec.merge, key, change.data, now)
            elif expect == 0:  # it was seen to be absent: still absent, or a conflict
                if await conn.fetchval(spec.exists, key) is not None:
                    raise _conflict(change)
                version = None
            else:
                version = await conn.fetchval(spec.merge_if, key, change.data, now, expect)
                if version is None and await conn.fetchval(spec.exists, key) is not None:
                    raise _conflict(change)
            if version is None:
                raise MissingRecord.for_key(change.table, change.key)
            return int(version)
        if kind == INCREMENT:
            assert change.data is not None
            amount: Any = change.amount
            if isinstance(amount, float):
                amount = decimal.Decimal(repr(amount))
            version = await conn.fetchval(spec.increment, key, change.data, amount, now)
            if version is None:
                raise MissingRecord.for_key(change.table, change.key)
            return int(version)
        if kind == DELETE:
            if expect is None:
                await conn.execute(spec.delete, key)
            elif expect == 0:
                if await conn.fetchval(spec.exists, key) is not None:
                    raise _conflict(change)
            elif await conn.fetchval(spec.delete_if, key, expect) is None:
                raise _conflict(change)
            return None
        if kind == INSERT:
            if expect:  # it was seen to exist: a conflict, or a duplicate if still so
                current = await conn.fetchval(spec.version, key)
                if current != expect:
                    raise _conflict(change)
                raise DuplicateKey.for_key(change.table, change.key)
            version = await conn.fetchval(spec.insert, key, change.data, now)
            if version is None:
                if expect == 0:
                    raise _conflict(change)
                raise DuplicateKey.for_key(change.table, change.key)
            return int(version)
        if kind != PUT:
            raise ValueError(f"unknown change kind {kind}")
        if expect is None:
            version = await conn.fetchval(spec.upsert, key, change.data, now)
        elif expect == 0:
            version = await conn.fetchval(spec.insert, key, change.data, now)
        else:
            version = await conn.fetchval(spec.update_if, key, change.data, now, expect)
        if version is None:
            raise _conflict(change)
        return int(version)


def _conflict(change: Change) -> ConflictError:
    return ConflictError.for_key(change.table, change.key)


def _lock_order(change: Change) -> tuple[str, str, str]:
    return change.table, type(change.key).__name__, str(change.key)


async def _iterate(rows: list[Row]) -> AsyncIterator[Row]:
    for row in rows:
        yield row


def _now() -> int:
    return int(time.time() * 1000)


@functools.lru_cache(maxsize=4096)
def _adapt(sql: str) -> str:
    return adapt(sql)


def _holds_nul(value: Any) -> bool:
    """Whether ``value`` (a key or query parameter) has a string with a NUL character in it:
    PostgreSQL's text and JSONB cannot hold one, so no stored value can equal it."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    return False
