"""Each worker's hub: it follows the event log and hands every new event to the subscribers of
its table on this worker, and to the listeners of ``app.events``.

Why a log and not in-memory fan-out: an event is written with its change, in one database
transaction (``storage.Change.event``), so every acknowledged write has its event and a
subscriber that reconnects resumes from its position. The hub reads the log when woken: by a
commit in this process (``Storage.on_commit``), or by a wake-up from another worker
(``realtime.wakeup``: PostgreSQL NOTIFY, a datagram between SQLite workers, Redis). It reads
events in position order, so each record's events arrive in commit order on every worker.

Retention: one worker at a time prunes what is older than ``event_retention`` seconds and all
but the newest ``event_retention_count`` events (every few minutes, and at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..runtime.events import EventBus
from ..storage import LoggedEvent, Storage
from .events import Event, HubEvent, wire_dict
from .stream import Options, open_stream
from .subscription import Closed, Subscription
from .wakeup import start_wakeups

if TYPE_CHECKING:
    from ..runtime.context import RequestContext
    from ..runtime.tables import TableRuntime

__all__ = ["Hub"]

log = logging.getLogger("charter.realtime")
_BATCH = 1000  # events read from the log at once
_PRUNE_EVERY = 300.0  # seconds between prunes of the log
_RETRY = 0.5  # seconds before reading again after the log could not be read
_STOP_WAIT = 5.0  # seconds the hub's tasks get to end at shutdown


class Hub:
    """Follows the event log for one worker (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        tables: Mapping[str, TableRuntime],
        bus: EventBus,
        config: Config,
    ) -> None:
        self.storage = storage
        self.tables = tables
        self.bus = bus
        self.config = config
        self.position = 0  # the newest event handed out
        self.floor = 0  # events at or below it are pruned (as of the last look)
        self.started = False
        self._subscribers: dict[str, set[Subscription]] = {}
        self._held: list[Subscription] = []  # subscribers with events to write (``flush``)
        self._woken = asyncio.Event()
        self.joined = asyncio.Event()  # a subscriber joined (starts the wake-ups' safety net)
        self._reading = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._stops: list[Callable[[], None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.started:
            return
        self._woken = asyncio.Event()
        self.joined = asyncio.Event()
        self._reading = asyncio.Lock()
        self.floor, self.position = await self.storage.event_bounds()
        self._stops.append(self.storage.on_commit(self.wake))
        self._stops.append(self.bus.on_first_listener(self._listened))
        self._tasks = [
            asyncio.create_task(self._follow(), name="charter-hub"),
            asyncio.create_task(self._prune_now_and_then(), name="charter-prune"),
        ]
        await start_wakeups(self)
        self.started = True

    async def stop(self) -> None:
        """Hand out what is committed, then end every subscription."""
        if not self.started:
            return
        self.started = False
        with contextlib.suppress(Exception):
            await self._catch_up()
        for stop in self._stops:
            stop()
        self._stops.clear()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # A task whose library swallowed the cancellation must not hold the shutdown.
            _, stuck = await asyncio.wait(self._tasks, timeout=_STOP_WAIT)
            for task in stuck:
                log.warning("the hub's task %s did not stop in time", task.get_name())
        self._tasks.clear()
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription.close(Closed("the server is shutting down", position=self.position))
        self._subscribers.clear()

    def wake(self) -> None:
        """New events may be in the log: read them soon (unless nobody listens here: then a
        subscriber or listener that comes starts from the log's head)."""
        if not self.idle:
            self._woken.set()

    def add_task(self, task: asyncio.Task[None], stop: Callable[[], None] | None = None) -> None:
        """Keep a helper task (a wake-up listener) for the hub's lifetime."""
        self._tasks.append(task)
        if stop is not None:
            self._stops.append(stop)

    # -- subscribers -----------------------------------------------------------------------

    async def join(self, subscription: Subscription) -> int:
        """Start handing ``subscription`` every new event of its table; returns the position
        it starts after: the log's head (what was committed before is history, not news)."""
        idle = self.idle
        if not subscription.viewer.filtered:
            subscription.on_hold = self._hold
        self._subscribers.setdefault(subscription.table, set()).add(subscription)
        self.joined.set()
        try:
            _, head = await self.storage.event_bounds()
        except BaseException:
            self.leave(subscription)
            raise
        if idle and self.idle_since_join(subscription):
            # Nobody listened, so the hub did not read the log: it starts from the head.
            self.position = max(self.position, head)
        return max(self.position, head)

    @property
    def idle(self) -> bool:
        """Nobody on this worker listens: commits need not be read from the log."""
        return not self._subscribers_count() and not self.bus.has_listeners

    def _listened(self) -> None:
        """``app.events`` got its first listener: if nobody listened before, the hub has not
        read the log, so it starts from the log's head (the bus replays nothing: a listener
        hears what commits once it listens)."""
        self.joined.set()
        if not self._subscribers_count():
            self._tasks.append(asyncio.create_task(self._to_head(), name="charter-hub-head"))

    async def _to_head(self) -> None:
        async with self._reading:
            _, head = await self.storage.event_bounds()
            self.position = max(self.position, head)

    def idle_since_join(self, subscription: Subscription) -> bool:
        return self._subscribers_count() == 1 and not self.bus.has_listeners

    def _subscribers_count(self) -> int:
        return sum(len(group) for group in self._subscribers.values())

    def leave(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.table)
        if subscribers is not None:
            subscribers.discard(subscription)

    def subscribers(self) -> list[Subscription]:
        return [s for group in self._subscribers.values() for s in group]

    @property
    def count(self) -> int:
        return self._subscribers_count()

    async def subscribe(
        self, runtime: TableRuntime, key: Any, context: RequestContext | None, **options: Any
    ) -> AsyncIterator[Event]:
        """``Table.subscribe``: the subscription's events, as ``open_stream`` orders them."""
        if not runtime.lifecycle.started:
            await runtime.lifecycle.startup()
        chosen = Options(key=key, **options)
        _, events = await open_stream(self, runtime, chosen, context)
        try:
            async for batch in events:
                if batch is not None:
                    for event in batch:
                        yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    # -- following the log -----------------------------------------------------------------

    async def _follow(self) -> None:
        while True:
            await self._woken.wait()
            self._woken.clear()
            if self.idle:
                continue  # a subscriber that joins starts from the log's head
            try:
                await self._catch_up()
            except Exception:
                log.exception("the event log could not be read; trying again")
                await asyncio.sleep(_RETRY)
                self._woken.set()

    async def _catch_up(self) -> None:
        async with self._reading:  # one reader at a time: each event is handed out once
            await self._read_new()

    async def _read_new(self) -> None:
        while True:
            events = await self.storage.read_events(self.position, _BATCH)
            try:
                for logged in events:
                    self.position = logged.position
                    self._hand_out(logged)
            finally:
                self._flush()
            if len(events) < _BATCH:
                return

    def _hold(self, subscription: Subscription) -> None:
        self._held.append(subscription)

    def _flush(self) -> None:
        """Write what idle subscribers were handed, one write each (``Subscription.flush``)."""
        held, self._held = self._held, []
        for subscription in held:
            subscription.flush()

    def _hand_out(self, logged: LoggedEvent) -> None:
        subscribers = self._subscribers.get(logged.table)
        if not subscribers and not self.bus.has_listeners:
            return
        item = HubEvent(logged)
        if subscribers:
            for subscription in list(subscribers):
                subscription.offer(item)
        if self.bus.has_listeners:
            runtime = self.tables.get(logged.table)
            value = item.document
            if isinstance(value, dict) and runtime is not None and logged.type != "publish":
                value = runtime.public(value)
            self.bus.deliver(f"{logged.table}/{logged.key}", wire_dict(logged, value))

    # -- retention -------------------------------------------------------------------------

    async def prune(self) -> int:
        """Apply the retention settings now; how many events were deleted."""
        older = int((time.time() - self.config.event_retention) * 1000)
        deleted = await self.storage.prune_events(
            older_than=older, keep=self.config.event_retention_count
        )
        self.floor, _ = await self.storage.event_bounds()
        return deleted

    async def _prune_now_and_then(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("the event log could not be pruned")
            await asyncio.sleep(_PRUNE_EVERY)

    def __repr__(self) -> str:
        return f"<Hub position={self.position} subscribers={self.count}>"
