"""One worker of a deployment at a time: a lock that the MQTT bridge holds while it publishes.

Why: every worker runs the same app, but the broker must get each change once and each client
message must reach ``publish()`` once. The lock lives where the workers already meet: a
PostgreSQL session advisory lock (on a connection of its own), or an exclusive ``flock`` on a
file next to the SQLite database. Both are released by the operating system or the database
when their holder dies, so another worker takes over at its next try. An in-memory SQLite
database is one process: its bridge always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from typing import Any

from ..storage import Storage

__all__ = ["Leadership", "leadership_for"]

log = logging.getLogger("charter.realtime")
RETRY = 2.0
"""Seconds between tries to take the lock (a dead holder's bridge resumes within about this)."""


class Leadership:
    """A lock that a worker tries to take and keeps until ``release`` (or its death)."""

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this worker holds it."""
        return True

    async def held(self) -> bool:
        """Whether this worker still holds it (a lost database connection loses it)."""
        return True

    async def release(self) -> None:
        return None

    async def acquire(self) -> None:
        """Wait until this worker holds the lock."""
        while not await self.try_acquire():
            await asyncio.sleep(RETRY)


class FileLeadership(Leadership):
    """An exclusive ``flock`` on ``path`` (one open file: released when the process dies)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class AdvisoryLeadership(Leadership):
    """A PostgreSQL session advisory lock held on a connection of its own."""

    def __init__(self, dsn: str, key: int) -> None:
        self.dsn = dsn
        self.key = key  # one per bridge name: apps in other schemas of the database differ
        self._conn: Any = None

    async def try_acquire(self) -> bool:
        if self._conn is not None and await self.held():
            return True
        import asyncpg

        await self.release()
        try:
            conn = await asyncpg.connect(self.dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("MQTT bridge: the lock connection failed (%s); trying again", exc)
            return False
        try:
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key)
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def held(self) -> bool:
        if self._conn is None or self._conn.is_closed():
            return False
        try:
            await self._conn.fetchval("SELECT 1")
        except Exception:
            return False
        return True

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)


def leadership_for(storage: Storage, name: str) -> Leadership:
    """The lock of the bridge ``name`` that fits the app's database (see the module
    docstring)."""
    path = getattr(storage, "path", None)
    if isinstance(path, str):  # SQLite
        if path.startswith("file:"):
            return Leadership()  # in memory: one process
        return FileLeadership(os.path.abspath(path) + "-charter-mqtt.lock")
    dsn = getattr(storage, "_dsn", None)  # PostgreSQL (asyncpg's DSN, pool options removed)
    if isinstance(dsn, str):
        digest = hashlib.sha256(name.encode()).digest()
        return AdvisoryLeadership(dsn, int.from_bytes(digest[:8], "big", signed=True))
    return Leadership()
