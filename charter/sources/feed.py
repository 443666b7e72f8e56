"""A source's change stream (``Source.subscribe``), applied to the cache as it comes.

Run by the one worker that leads (``caches``): a change is applied once, to the database every
worker reads, and its event reaches subscribers on every worker through the event log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import Cache

__all__ = ["follow"]

log = logging.getLogger("charter.sources")
RETRY = 1.0
"""Seconds before a failed or finished change stream is subscribed to again."""


async def apply(cache: Cache, item: Any) -> None:
    """One change: an id (the copy is marked stale, as ``invalidate`` does) or
    ``(id, record)`` (store it; None drops it)."""
    if isinstance(item, tuple) and len(item) == 2:
        key, record = item
        if record is None:
            await cache.drop(cache.runtime.check_key(key), event=True)
        else:
            await cache.store(cache.runtime.check_key(key), record)
        return
    await cache.invalidate(item)


async def follow(cache: Cache) -> None:
    """Apply the source's changes until cancelled, subscribing again when its stream ends or
    fails (a change that cannot be applied is logged and skipped)."""
    while True:
        stream = cache.source.subscribe()
        if stream is None:
            return
        try:
            async for item in stream:
                try:
                    await apply(cache, item)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%s: a change from the source failed: %r", cache.name, item)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: the source's change stream failed", cache.name)
        await asyncio.sleep(RETRY)
