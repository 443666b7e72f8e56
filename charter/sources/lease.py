"""``Leases``: one worker at a time loads a given record from the origin.

Why in the database's reach and not in ``app.shared``: the workers of a deployment always
share the database, while ``app.shared`` is per worker unless Redis is configured; and both
locks below die with their holder (the operating system releases a dead process's file lock,
PostgreSQL a closed session's advisory lock), so a crashed worker never wedges an id.

- SQLite: an exclusive POSIX record lock on one byte of a file beside the database
  (``<db>-charter-sources.lock``), the byte chosen by a hash of (table, id): ids do not wait on
  each other. ``lockf`` locks are per process, which is right here: within a process the
  ``Flights`` let one task per id through, and ids whose bytes collide (2^-40) still load
  correctly, only perhaps twice.
- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) keyed by a hash of (database,
  schema, table, id) on one connection of its own per worker.
- An in-memory SQLite database is one process: no lock is needed.

Waiting is polled (a few ms, growing), so a waiter can be cancelled and holds no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from ..errors import UpstreamTimeout
from ..storage import Storage

__all__ = ["Leases", "leases_for"]

_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.02
_SLOTS = 1 << 40  # bytes of the lock file a (table, id) may lock
_CLOSE_WAIT = 5.0  # seconds closing waits for a lock statement under way


def _digest(*parts: str) -> bytes:
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()


class Leases:
    """Per-record locks across workers (this base: one process, nothing to lock)."""

    async def try_take(self, table: str, key: Any) -> bool:
        return True

    async def give_back(self, table: str, key: Any) -> None:
        return None

    def open(self) -> None:
        """Usable again after ``close`` (an app started again)."""

    async def close(self) -> None:
        return None

    @contextlib.asynccontextmanager
    async def held(self, table: str, key: Any, wait: float) -> AsyncIterator[None]:
        """Hold the lock of ``table``/``key``, waited for at most ``wait`` seconds (then 504:
        the worker holding it is taking longer than its own origin timeout)."""
        deadline = time.monotonic() + wait
        pause = _FIRST_PAUSE
        while not await self.try_take(table, key):
            if time.monotonic() > deadline:
                raise UpstreamTimeout(f"{table} {key!r}: another worker's load did not finish")
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)
        try:
            yield
        finally:
            await self.give_back(table, key)


class FileLeases(Leases):
    """One-byte ``lockf`` record locks in a file beside the SQLite database."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    def _slot(self, table: str, key: Any) -> int:
        return int.from_bytes(_digest(table, repr(key)), "big") % _SLOTS

    async def try_take(self, table: str, key: Any) -> bool:
        try:
            fcntl.lockf(self._file(), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, self._slot(table, key))
        except OSError:
            return False
        return True

    async def give_back(self, table: str, key: Any) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self._slot(table, key))

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # (releases whatever this process still held)


class _Session:
    """A lock connection and the lock that lets one statement at a time use it."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.using = asyncio.Lock()


class AdvisoryLeases(Leases):
    """PostgreSQL session advisory locks on one connection of this worker's own (one per event
    loop: a connection belongs to the loop that opened it, and a script may call the Table API
    from another loop than the server's)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._loops: dict[asyncio.AbstractEventLoop, _Session] = {}
        self._calls: set[asyncio.Future[Any]] = set()  # statements under way (see close)
        self._giving_back: set[asyncio.Future[None]] = set()
        self._closed = False

    def _number(self, table: str, key: Any) -> int:
        return int.from_bytes(_digest(self.dsn, table, repr(key)), "big", signed=True)

    async def _call(self, sql: str, number: int) -> Any:
        if self._closed:  # shut down: no new connection (nothing would close it)
            return False
        session = self._loops.setdefault(asyncio.get_running_loop(), _Session())
        async with session.using:  # one statement at a time on the connection
            if session.conn is None or session.conn.is_closed():
                import asyncpg

                session.conn = await asyncpg.connect(self.dsn)
            return await session.conn.fetchval(sql, number)

    async def try_take(self, table: str, key: Any) -> bool:
        call = asyncio.ensure_future(
            self._call("SELECT pg_try_advisory_lock($1)", self._number(table, key))
        )
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)
        try:
            return bool(await asyncio.shield(call))
        except asyncio.CancelledError:
            # The server may grant the lock after the waiter is gone: once the call ends, a
            # lock it took is given back, or the id would stay locked while this worker lives.
            call.add_done_callback(lambda done: self._give_back_if_taken(done, table, key))
            raise

    def _give_back_if_taken(self, call: asyncio.Future[Any], table: str, key: Any) -> None:
        if not call.cancelled() and call.exception() is None and call.result():
            task = asyncio.ensure_future(self.give_back(table, key))
            self._giving_back.add(task)
            task.add_done_callback(self._giving_back.discard)

    def open(self) -> None:
        self._closed = False

    async def give_back(self, table: str, key: Any) -> None:
        with contextlib.suppress(Exception):  # a lost connection has released it already
            await self._call("SELECT pg_advisory_unlock($1)", self._number(table, key))

    async def close(self) -> None:
        """Close the lock connections, once the statements under way (a cancelled waiter's
        among them) and the give-backs they lead to have ended."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CLOSE_WAIT
        while loop.time() < deadline:  # (a call's end may start a give-back: look again)
            mine = {f for f in self._calls | self._giving_back if f.get_loop() is loop}
            if not mine:
                break
            await asyncio.wait(mine, timeout=deadline - loop.time())
        self._closed = True
        loops, self._loops = self._loops, {}
        for session in loops.values():
            if session.conn is not None and not session.conn.is_closed():
                with contextlib.suppress(Exception):
                    await session.conn.close(timeout=5)


def leases_for(storage: Storage) -> Leases:
    """The per-record locks that fit the app's database (see the module docstring)."""
    path = getattr(storage, "path", None)
    if isinstance(path, str):  # SQLite
        if path.startswith("file:"):
            return Leases()  # in memory: one process
        return FileLeases(os.path.abspath(path) + "-charter-sources.lock")
    dsn = getattr(storage, "dsn", None)  # PostgreSQL
    if isinstance(dsn, str):
        return AdvisoryLeases(dsn)
    return Leases()
