"""``Caches``: the app's caching tables, and their background work while the app runs.

Each caching table gets a ``Cache`` (``runtime.cache``: what the read and write paths ask).
Eviction sweeps and source change streams run on one worker at a time: the one holding the
lease of a name no record has (``LEADER``), taken with the same locks as a load's (a lock
beside the SQLite file, an advisory lock on PostgreSQL), which die with their holder: another
worker takes over within ``RETRY`` seconds. ``stop`` ends them at shutdown, and the loads in
flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..model.source import Source
from ..storage import Storage
from .cache import Cache
from .feed import follow
from .lease import leases_for
from .policy import CachePolicy
from .sweep import sweep_forever

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime

__all__ = ["Caches"]

log = logging.getLogger("charter.sources")


LEADER = ("_charter_sources", "leader")
"""The lease whose holder runs the sweeps and change streams (a table name no table has)."""
RETRY = 2.0
"""Seconds between a follower's tries to lead."""


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

    def _work(self) -> list[Cache]:
        return [
            c
            for c in self.caches
            if c.policy.eviction is not None or type(c.source).subscribe is not Source.subscribe
        ]

    async def start(self) -> None:
        """Start the sweeps and change streams (on the worker that leads)."""
        self.leases.open()  # (closed by an earlier stop: the app is started again)
        if self._work() and self._task is None:
            self._task = asyncio.create_task(self._lead())

    async def _lead(self) -> None:
        while not await self._try_lead():
            await asyncio.sleep(RETRY)
        try:
            jobs = []
            for cache in self._work():
                if cache.policy.eviction is not None:
                    jobs.append(sweep_forever(cache))
                if type(cache.source).subscribe is not Source.subscribe:
                    jobs.append(follow(cache))
            await asyncio.gather(*jobs)
        finally:
            await self.leases.give_back(*LEADER)

    async def _try_lead(self) -> bool:
        try:
            return await self.leases.try_take(*LEADER)
        except Exception as exc:  # (the database is away: try again later)
            log.warning("caching tables: the leader lock failed (%s); trying again", exc)
            return False

    async def stop(self) -> None:
        """End the background work and the loads in flight; release the locks."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for cache in self.caches:
            await cache.close()
        await self.leases.close()
