"""``Caches``: the app's caching tables, and their background work while the app runs.

Each caching table gets a ``Cache`` (``runtime.cache``: what the read and write paths ask).
Eviction sweeps and source change streams run on one worker at a time, the one holding the
sources' leadership lock (``realtime.leader``'s kinds of lock: a file lock beside SQLite, an
advisory lock on PostgreSQL); another worker takes over when that one dies. ``stop`` ends them
at shutdown, and the loads in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..realtime.leader import AdvisoryLeadership, FileLeadership, Leadership
from ..storage import Storage
from .cache import Cache
from .feed import follow
from .lease import leases_for
from .policy import CachePolicy
from .source import Source
from .sweep import sweep_forever

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime

__all__ = ["Caches"]

log = logging.getLogger("charter.sources")


def _leadership(storage: Storage) -> Leadership:
    path = getattr(storage, "path", None)
    if isinstance(path, str):
        if path.startswith("file:"):
            return Leadership()
        return FileLeadership(os.path.abspath(path) + "-charter-sources-lead.lock")
    dsn = getattr(storage, "dsn", None)
    if isinstance(dsn, str):
        digest = hashlib.sha256(b"charter-sources:" + dsn.encode()).digest()
        return AdvisoryLeadership(dsn, int.from_bytes(digest[:8], "big", signed=True))
    return Leadership()


class Caches:
    """Every caching table of one app."""

    def __init__(self, storage: Storage, runtimes: Iterable[TableRuntime]) -> None:
        self.storage = storage
        self.leases = leases_for(storage)
        self.caches: list[Cache] = []
        for runtime in runtimes:
            options = runtime.schema.options
            if options.source is None:
                continue
            source = options.source() if isinstance(options.source, type) else options.source
            cache = Cache(runtime, source, CachePolicy.of(options), self.leases)
            runtime.cache = cache
            self.caches.append(cache)
        self._task: asyncio.Task[None] | None = None
        self._leadership: Leadership | None = None

    def _work(self) -> list[Cache]:
        return [
            c
            for c in self.caches
            if c.policy.eviction is not None or type(c.source).subscribe is not Source.subscribe
        ]

    async def start(self) -> None:
        """Start the sweeps and change streams (on the worker that leads)."""
        if self._work() and self._task is None:
            self._leadership = _leadership(self.storage)
            self._task = asyncio.create_task(self._lead(self._leadership))

    async def _lead(self, leadership: Leadership) -> None:
        await leadership.acquire()
        jobs = []
        for cache in self._work():
            if cache.policy.eviction is not None:
                jobs.append(sweep_forever(cache))
            if type(cache.source).subscribe is not Source.subscribe:
                jobs.append(follow(cache))
        await asyncio.gather(*jobs)

    async def stop(self) -> None:
        """End the background work and the loads in flight; release the locks."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._leadership is not None:
            await self._leadership.release()
            self._leadership = None
        for cache in self.caches:
            await cache.close()
        await self.leases.close()
