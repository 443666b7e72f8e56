"""Waking the hubs of the other workers when this one commits events (issue 12, point 3).

A commit in this process wakes its own hub directly (``Storage.on_commit``). The other workers'
hubs learn of it here:

- PostgreSQL: a connection per worker LISTENs on ``charter_events`` (the commit's append
  statement sends the NOTIFY, delivered only if it commits). It reconnects with backoff when it
  drops, and wakes the hub after reconnecting: a NOTIFY sent meanwhile is lost.
- SQLite file, several workers on one machine: a datagram (``wakeup_local``).
- Redis pub/sub when ``App(shared="redis://...")`` is set, in addition to the above (one
  PUBLISH per commit; for setups where LISTEN cannot be used, e.g. behind a transaction pooler).

The log stays the truth: a wake-up only says "read the log now". A lost one is caught by the
safety net, a slow periodic read that runs only while this worker has subscribers or
``app.events`` listeners, so an idle server does no periodic work for it at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..redaction import mask_url
from .wakeup_local import bind_local_wakeups

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["CHANNEL", "SAFETY_NET", "start_wakeups"]

log = logging.getLogger("charter.realtime")

CHANNEL = "charter_events"  # the PostgreSQL NOTIFY channel and the Redis pub/sub channel
SAFETY_NET = 3.0  # seconds between reads of the log while anybody listens
_BACKOFF = (0.1, 5.0)  # the first and the longest wait before connecting again
_PROBE = 30.0  # seconds of silence after which the LISTEN connection is checked
_CONNECT_TIMEOUT = 5.0
_CLOSE_TIMEOUT = 2.0
_REDIS = ("redis://", "rediss://", "unix://")


async def start_wakeups(hub: Hub) -> None:
    """Start what wakes ``hub`` on commits of other workers (kept as the hub's tasks)."""
    dsn = getattr(hub.storage, "dsn", None)  # PostgresStorage
    if isinstance(dsn, str):
        _task(hub, _listen_postgres(hub, dsn), "charter-wake-postgres")
    else:
        stop = bind_local_wakeups(hub)
        if stop is not None:
            _task(hub, _hold(stop), "charter-wake-local")
    shared = hub.config.shared
    private = getattr(hub.storage, "path", "").startswith("file:")  # in-memory SQLite
    if shared is not None and shared.startswith(_REDIS) and not private:
        _RedisWakeups(hub, shared).start()
    _task(hub, _safety_net(hub), "charter-wake-safety-net")


def _task(
    hub: Hub, coro: Coroutine[Any, Any, None], name: str, stop: Callable[[], None] | None = None
) -> None:
    hub.add_task(asyncio.create_task(coro, name=name), stop)


async def _hold(stop: Callable[[], None]) -> None:
    """Call ``stop()`` when the hub stops (it cancels its tasks)."""
    try:
        await asyncio.Event().wait()
    finally:
        stop()


def _listening(hub: Hub) -> bool:
    return hub.count > 0 or hub.bus.has_listeners


async def _safety_net(hub: Hub) -> None:
    """Read the log every ``SAFETY_NET`` seconds while anybody listens (a lost wake-up then
    delays an event by that much at most); sleep without a timer while nobody does."""
    while True:
        if not _listening(hub):
            hub.joined.clear()
            if not _listening(hub):
                await hub.joined.wait()
            continue
        await asyncio.sleep(SAFETY_NET)
        if _listening(hub):
            hub.wake()


def _backoff(previous: float | None) -> float:
    low, high = _BACKOFF
    delay = low if previous is None else min(high, previous * 2)
    return delay * random.uniform(0.5, 1.0)


# -- PostgreSQL LISTEN --------------------------------------------------------------------------


async def _listen_postgres(hub: Hub, dsn: str) -> None:
    """Keep a LISTEN connection open; wake the hub on each NOTIFY and after each (re)connect."""
    import asyncpg

    delay: float | None = None
    while True:
        conn: Any = None
        try:
            conn = await asyncpg.connect(
                dsn,
                timeout=_CONNECT_TIMEOUT,
                server_settings={"application_name": "charter-wake"},
            )
            await _hear_notifications(hub, conn, again=delay is not None)
            delay = None  # it was closed after working: connect again at once
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.log(
                logging.WARNING if delay is None else logging.DEBUG,  # once while it is down
                "the LISTEN connection for events of other workers failed (%s: %s); "
                "connecting again in %.1f s",
                type(exc).__name__,
                exc,
                delay := _backoff(delay),
            )
        finally:
            if conn is not None:
                conn.terminate()
        await asyncio.sleep(delay or _BACKOFF[0])


async def _hear_notifications(hub: Hub, conn: Any, *, again: bool) -> None:
    """LISTEN on ``conn`` until it is closed (raises when a check finds it dead)."""
    lost = asyncio.Event()
    conn.add_termination_listener(lambda _conn: lost.set())

    def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            newest = int(payload)
        except ValueError:
            newest = None
        if newest is None or newest > hub.position:  # else: read already
            hub.wake()

    await conn.add_listener(CHANNEL, notified)
    if again:
        log.info("listening for events of other workers again")
    hub.wake()  # a NOTIFY sent while this connection was not listening is lost
    while not lost.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lost.wait(), _PROBE)
            break
        if _listening(hub):  # a half-open connection hears nothing: check it
            await conn.fetchval("SELECT 1", timeout=_CONNECT_TIMEOUT)
    log.warning("the LISTEN connection for events of other workers was closed")


# -- Redis pub/sub ------------------------------------------------------------------------------


class _RedisWakeups:
    """PUBLISH after each local commit that logged events; SUBSCRIBE and wake the hub on the
    messages of other workers (each message names its sender, so a worker ignores its own)."""

    def __init__(self, hub: Hub, url: str) -> None:
        self.hub = hub
        self.url = url
        self.me = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._client: Any = None
        self._publishing: asyncio.Task[None] | None = None
        self._again = False
        self._failing = False
        self._stopped = False  # set before the hub cancels the tasks: a swallowed cancel ends too

    def start(self) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.from_url(
            self.url, socket_timeout=_CONNECT_TIMEOUT, socket_connect_timeout=_CONNECT_TIMEOUT
        )
        stop_commits = self.hub.storage.on_commit(self.committed)

        def stop() -> None:
            self._stopped = True
            stop_commits()

        _task(self.hub, self._listen(), "charter-wake-redis", stop)

    def committed(self) -> None:
        """One PUBLISH at a time; commits meanwhile are told by one more after it."""
        if self._publishing is not None and not self._publishing.done():
            self._again = True
            return
        self._publishing = asyncio.create_task(self._publish(), name="charter-wake-publish")

    async def _publish(self) -> None:
        while True:
            self._again = False
            try:
                await self._client.publish(CHANNEL, self.me)
            except Exception as exc:  # the other workers catch up by their safety net
                if not self._failing:  # once while it is down
                    log.warning("wake-ups cannot be published to Redis: %s", type(exc).__name__)
                self._failing = True
                return
            self._failing = False
            if not self._again:
                return

    async def _listen(self) -> None:
        # The subscription runs as a task of its own, given a bounded time to end when the
        # hub stops: a redis-py call interrupted by a cancel may not end at once, and the hub's
        # stop must not wait for it.
        subscribing = asyncio.create_task(self._subscribe(), name="charter-wake-redis-sub")
        try:
            await asyncio.shield(subscribing)
        finally:
            subscribing.cancel()
            if self._publishing is not None:
                self._publishing.cancel()
            await asyncio.wait([subscribing], timeout=_CLOSE_TIMEOUT)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.aclose(), _CLOSE_TIMEOUT)

    async def _subscribe(self) -> None:
        delay: float | None = None
        while not self._stopped:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                if delay is not None:
                    log.info("listening to Redis for events of other workers again")
                delay = None
                self.hub.wake()  # a message sent while not subscribed is lost
                pinged = False
                while not self._stopped:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=_PROBE
                    )
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        # redis-py's timeout may swallow a cancellation: stop all the same
                        raise asyncio.CancelledError
                    if message is None:
                        if pinged:
                            raise ConnectionError("no answer to a ping")
                        if _listening(self.hub):  # a half-open connection hears nothing
                            await pubsub.ping()
                            pinged = True
                        continue
                    pinged = False
                    if message.get("type") != "message":  # the answer to a ping
                        continue
                    sender = message.get("data")
                    if isinstance(sender, bytes):
                        sender = sender.decode(errors="replace")
                    if sender != self.me:
                        self.hub.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopped:  # the hub stops: the connection was closed under it
                    return
                log.log(
                    logging.WARNING if delay is None else logging.DEBUG,  # once while it is down
                    "the Redis subscription for events of other workers (%s) failed (%s); "
                    "subscribing again in %.1f s",
                    mask_url(self.url),
                    type(exc).__name__,
                    delay := _backoff(delay),
                )
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), _CLOSE_TIMEOUT)
            if not self._stopped:
                await asyncio.sleep(delay or _BACKOFF[0])
