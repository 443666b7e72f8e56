"""One subscriber: which events it wants, the bounded queue between the hub and it, and the order
in which it receives history, the current state and live events without a gap.

The hub never waits for a subscriber: it appends to the subscriber's queue and moves on. A
subscriber that falls ``buffer`` events behind is closed (``Overflow``) with the position of
the last event it received, so that it can resume from the log and lose nothing, while a slow
consumer neither delays the others nor grows memory without bound.

Starting without a gap: the subscription joins the hub first (from then on every new event
reaches its queue), and notes the hub's position P at that moment. History (a resume position,
``startTime``, ``previousCount``) is read from the log up to P, the current record(s) are read
after joining; then the queue, which holds exactly the events after P. A record may be sent
twice (current, then its event) but never missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import CharterError
from .events import Event, HubEvent
from .viewer import Viewer

__all__ = ["Closed", "Overflow", "Subscription", "news"]

log = logging.getLogger("charter.realtime")

_EXPIRED: Any = object()  # a wait's result when its timeout passed first


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_EXPIRED)


class Closed(CharterError):
    """The subscription was ended by the server (shutdown, sign-out, a revoked right)."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class Overflow(Closed):
    """The subscriber fell too far behind: resume from ``position`` (nothing is lost)."""


class Subscription:
    """A subscriber's place at the hub: a topic filter and a bounded queue.

    Args:
        key: one record's key, or None for the whole table.
        prefix: with ``key`` None, only keys that start with it (``/Table/abc/``).
    """

    __slots__ = (
        "_waiter",
        "after",
        "buffer",
        "closed",
        "delivered",
        "held",
        "key",
        "lane",
        "on_hold",
        "prefix",
        "queue",
        "sent",
        "table",
        "viewer",
    )

    def __init__(
        self,
        table: str,
        viewer: Viewer,
        *,
        key: Any = None,
        prefix: str | None = None,
        buffer: int = 1000,
    ) -> None:
        self.table = table
        self.viewer = viewer
        self.key = key
        self.prefix = prefix
        self.buffer = buffer
        self.queue: deque[HubEvent] | None = None  # made on the first event (memory when idle)
        self.closed: Closed | None = None
        self.delivered: int | None = None  # the position of the last event handed out
        self.after = 0  # live events at or before this position are not news (``live``)
        # The current records it was sent, by id, with their versions: an event no newer is
        # not news (see ``news``).
        self.sent: dict[Any, int] = {}
        # The transport's way to write events at once while its writer waits (``flush``),
        # for a subscriber whose verdicts need no waiting (not ``viewer.filtered``).
        self.lane: Callable[[list[Event]], bool] | None = None
        self.held: list[HubEvent] | None = None  # handed out, to be written by ``flush``
        self.on_hold: Callable[[Subscription], None] | None = None  # the hub's flush list
        self._waiter: asyncio.Future[Any] | None = None

    def wants(self, key: Any) -> bool:
        if self.key is not None:
            return bool(key == self.key)
        if self.prefix is not None:
            return isinstance(key, str) and key.startswith(self.prefix)
        return True

    def offer(self, item: HubEvent) -> None:
        """Called by the hub for every event of the table (never blocks)."""
        if self.closed is not None or not self.wants(item.logged.key):
            return
        held = self.held
        if held is not None:  # the hub writes it with the others it holds (``flush``)
            held.append(item)
            return
        queue = self.queue
        if queue is None:
            if self.lane is not None and self.on_hold is not None and self._waiting():
                self.held = [item]
                self.on_hold(self)
                return
            queue = self.queue = deque()
        elif len(queue) >= self.buffer:
            queue.clear()
            self.close(Overflow("the subscriber fell behind", position=self.delivered))
            return
        queue.append(item)
        self._wake()

    def _waiting(self) -> bool:
        """Whether the writer waits for an event, with nothing of its own being written."""
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def flush(self) -> None:
        """Write what the hub handed out while the writer waited, at once and in one piece
        (``lane``), without waking the writer; if the socket cannot take it now, the writer
        sends it. Called by the hub after each read of the log."""
        held, self.held = self.held, None
        if not held:
            return
        events: list[Event] = []
        for item in held:
            if item.position > self.after:
                event = self._fresh(self.viewer.view_now(item))
                if event is not None:
                    events.append(event)
        try:
            written = not events or (self.lane is not None and self.lane(events))
        except Exception:
            log.exception("events could not be written at once; the writer sends them")
            written = False
        if written:
            self.delivered = held[-1].position
            return
        self.queue = deque(held)  # empty before: nothing is queued while events are held
        self._wake()

    def _fresh(self, event: Event | None) -> Event | None:
        """The event unless the subscriber already has it from the current records."""
        if event is None or not self.sent or news(self.sent, event):
            return event
        return None

    def close(self, reason: Closed) -> None:
        if self.closed is None:
            self.closed = reason
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_batch(self, timeout: float | None = None) -> deque[HubEvent] | None:
        """Every queued event, oldest first (one write for all of them: a subscriber that
        fell a few events behind catches up in one send); None when ``timeout`` passes
        first. Raises ``Closed``."""
        while True:
            if self.closed is not None:
                raise self.closed
            queue = self.queue
            self.queue = None  # handed over whole; an idle subscriber holds no queue
            if queue:
                return queue
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
            if waiter.result() is _EXPIRED:
                return None

    async def live(self, after: int, keepalive: float | None) -> AsyncIterator[list[Event] | None]:
        """Live events past ``after`` as this subscriber sees them, in batches (what queued
        while the last batch was written); None at each ``keepalive`` interval without one
        (a transport sends a comment or a ping)."""
        view = self.viewer.view
        self.after = after
        while True:
            items = await self.next_batch(keepalive)
            if items is None:
                yield None
                continue
            out: list[Event] = []
            for item in items:
                if item.position <= after:
                    continue
                self.delivered = item.position
                event = self._fresh(await view(item))
                if event is not None:
                    out.append(event)
            if out:
                yield out

    def __repr__(self) -> str:
        return f"<Subscription {self.table} key={self.key!r} prefix={self.prefix!r}>"


def news(sent: dict[Any, int], event: Event) -> bool:
    """Whether a live event is news to a subscriber sent the current records (``sent``: their
    versions by id); the first that is ends the check for its record."""
    if event.id not in sent or event.type == "publish":
        return True
    versioned = event.type != "delete" or event.leaving  # a delete's time is not a version
    if versioned and event.timestamp <= sent[event.id]:
        return False  # older than, or the same as, what it was sent
    del sent[event.id]
    return True
