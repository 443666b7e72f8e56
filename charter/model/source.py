"""``Source``: where a caching table's records come from (an HTTP API, another database).

An app subclasses it and implements ``get``; ``put`` and ``delete`` are optional (a table
whose source implements them writes through to it), and so are ``subscribe`` (the origin's
changes in real time) and ``allow_stale_while_revalidate``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

__all__ = ["CacheEntry", "Source"]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A cached record past its expiration, or invalidated, as ``allow_stale_while_revalidate``
    sees it.

    Attributes:
        id: the record's primary key.
        value: the cached record (a dict of its attributes).
        loaded: when it was stored, in ms since the epoch.
        expires: when it expired, in ms since the epoch (an invalidated record: its expiration
            if that came first, else the time of this read).
        invalidated: whether ``invalidate(id)`` marked it stale (the origin is known to have
            changed it), rather than its age.
    """

    id: Any
    value: dict[str, Any]
    loaded: int
    expires: int
    invalidated: bool = False


class Source:
    """The origin of a caching table: ``class Weather(Table, source=WeatherApi)``.

    Charter makes one instance per table (a ``Source`` instance may be given instead of the
    class) and calls it on a miss, an expired record and a write. Every call is bounded by the
    table's ``source_timeout``; what it raises is reported as 502 ``UPSTREAM_FAILED`` (an
    ``HttpError`` it raises is reported as it is).
    """

    async def get(self, id: Any) -> dict[str, Any] | None:
        """The record ``id`` from the origin, or None when it has none (404, not cached)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get(id)")

    async def put(self, id: Any, record: dict[str, Any]) -> None:
        """Write ``record`` to the origin (optional: implement it for write-through)."""
        raise NotImplementedError

    async def delete(self, id: Any) -> None:
        """Delete ``id`` at the origin (optional: implement it for write-through)."""
        raise NotImplementedError

    def allow_stale_while_revalidate(self, entry: CacheEntry, id: Any) -> bool:
        """Whether an expired or invalidated ``entry`` may be served while it is refreshed in
        the background (default: no, a read of such a record waits for the origin)."""
        return False

    def subscribe(self) -> AsyncIterator[Any] | None:
        """The origin's changes, for a source that can tell them (default: None, it cannot).

        Implement it as an async generator; it is run by one worker while the app runs. Each
        item is an id (the cached copy is dropped: the next read loads it again), or a pair
        ``(id, record)``: the record is stored (an event for subscribers), a None record drops
        the cached copy.
        """
        return None

    # -- what a subclass implements ------------------------------------------------------------

    def writes(self) -> bool:
        """Whether ``put`` is implemented (writes pass through to the origin)."""
        return type(self).put is not Source.put

    def deletes(self) -> bool:
        """Whether ``delete`` is implemented."""
        return type(self).delete is not Source.delete

    def judges_staleness(self) -> bool:
        """Whether ``allow_stale_while_revalidate`` is implemented (else an expired record is
        never served, and is not even decoded to ask)."""
        return type(self).allow_stale_while_revalidate is not Source.allow_stale_while_revalidate
