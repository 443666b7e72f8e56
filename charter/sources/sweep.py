"""Eviction: records older than a caching table's ``eviction`` are removed, every
``scan_interval`` (HarperDB's scan), by the one worker that leads (``caches``).

A record is removed only if it is still the version the sweep saw (a record refreshed in the
meantime stays), and without an event: eviction forgets a copy, the origin still has it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from ..query.model import Query
from ..storage.base import DELETE, Change, ConflictError

if TYPE_CHECKING:
    from .cache import Cache

__all__ = ["evict", "sweep_forever"]

log = logging.getLogger("charter.sources")
_decode = msgspec.json.decode


async def evict(cache: Cache) -> int:
    """Remove the records of ``cache``'s table older than its eviction; how many."""
    eviction = cache.policy.eviction
    if eviction is None:
        return 0
    cutoff = int(time.time() * 1000) - int(eviction * 1000)
    runtime = cache.runtime
    old: list[tuple[Any, int]] = []
    async for row in cache.storage.search(runtime.schema, Query()):
        if row.version < cutoff:
            old.append((_decode(row.data).get(runtime.key), row.version))
    removed = 0
    for key, version in old:
        try:
            await cache.storage.commit([Change(DELETE, cache.name, key, None, version)])
        except ConflictError:
            continue  # written since: it stays
        removed += 1
    return removed


async def sweep_forever(cache: Cache) -> None:
    """``evict`` every ``scan_interval`` seconds until cancelled."""
    interval = cache.policy.scan_interval
    assert interval is not None
    while True:
        await asyncio.sleep(interval)
        try:
            removed = await evict(cache)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: the eviction sweep failed", cache.name)
            continue
        if removed:
            log.debug("%s: evicted %d records", cache.name, removed)
