"""The Redis store: ``app.shared`` shared by every worker and every host of an app.

``redis.asyncio`` (the ``redis`` extra). The client is made at start-up on the serving loop;
a Redis that cannot be reached does not stop the app from starting: each operation on it
raises ``Unavailable`` (503 ``UNAVAILABLE`` with ``Retry-After``), so what depends on it, a
rate limit included, fails closed, and it recovers by itself when Redis is back. Operations
time out after 2 s (the URL may say otherwise: ``?socket_timeout=``); each worker holds up to
50 connections (``?max_connections=``), and a call waits for a free one within the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterator
from typing import Any

from ...errors import CharterError, Unavailable
from ...redaction import mask_url
from .base import SharedStore

__all__ = ["RETRY_AFTER", "RedisStore"]

log = logging.getLogger("charter.shared")

RETRY_AFTER = 5  # seconds a client is asked to wait while Redis is unreachable
_TIMEOUT = 2.0
_POOL_SIZE = 50  # connections per worker process (the URL may say ?max_connections=)


class RedisStore(SharedStore):
    """``app.shared`` on Redis; ``url`` is ``redis://``, ``rediss://`` or ``unix://``."""

    kind = "redis"

    def __init__(self, url: str) -> None:
        try:
            import redis.asyncio as aioredis
            from redis import exceptions
        except ImportError:
            raise CharterError(
                f"the shared store {mask_url(url)} needs the redis package: "
                "pip install 'charter[redis]'"
            ) from None
        self.url = url
        self._redis: Any = aioredis
        self._unreachable: tuple[type[BaseException], ...] = (
            exceptions.ConnectionError,
            exceptions.TimeoutError,
            OSError,
        )
        self._failed: type[BaseException] = exceptions.RedisError
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._down = False

    def describe(self) -> str:
        return f"redis {mask_url(self.url)}"

    def _connection(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is not loop:
            raise CharterError(
                "app.shared (Redis) was opened on the app's event loop and is used from another "
                "one: call it from the app's handlers, middleware and hooks, with an async "
                "TestClient, or through TestClient.run(...) with a sync one"
            )
        if self._client is None:
            self._loop = loop
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff

            # A blocking pool: past its size, a call waits for a connection (up to the
            # timeout) instead of failing at once, so a burst of requests is served.
            pool = self._redis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=_POOL_SIZE,
                timeout=_TIMEOUT,
                socket_timeout=_TIMEOUT,
                socket_connect_timeout=_TIMEOUT,
                # One quick retry (a connection Redis dropped while idle), not redis-py's ten.
                retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
            )
            self._client = self._redis.Redis.from_pool(pool)
        return self._client

    async def open(self) -> None:
        try:
            with self._guard():
                await self._connection().ping()
        except Unavailable:
            pass  # logged by _guard; the app serves what does not need Redis

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Redis errors as Charter's: unreachable is 503, a refused command a CharterError."""
        try:
            yield
        except self._unreachable as exc:
            if not self._down:
                self._down = True
                log.warning(
                    "the shared store %s is unreachable (%s): what needs it answers 503 "
                    "until it is back",
                    mask_url(self.url),
                    type(exc).__name__,
                )
            raise Unavailable(
                "the shared store is unreachable", headers={"retry-after": str(RETRY_AFTER)}
            ) from None
        except self._failed as exc:
            raise CharterError(f"app.shared: Redis refused the command: {exc}") from None
        if self._down:
            self._down = False
            log.warning("the shared store %s is reachable again", mask_url(self.url))

    async def _get(self, key: str) -> bytes | None:
        with self._guard():
            value: bytes | None = await self._connection().get(key)
        return value

    async def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._guard():
            await self._connection().set(key, value, px=None if ttl is None else _ms(ttl))

    async def _incr(self, key: str, amount: int, ttl: float | None) -> tuple[int, float | None]:
        with self._guard():
            if ttl is None:
                return int(await self._connection().incrby(key, amount)), None
            # One MULTI/EXEC: the key is created with its TTL, counted and its TTL read
            # atomically, so concurrent workers count exactly and no counter lives forever.
            async with self._connection().pipeline(transaction=True) as pipe:
                pipe.set(key, 0, nx=True, px=_ms(ttl))
                pipe.incrby(key, amount)
                pipe.pttl(key)
                _, count, left = await pipe.execute()
        return int(count), left / 1000 if left >= 0 else None

    async def _raise_to(self, key: str, value: int, ttl: float | None) -> bool:
        with self._guard():
            raised = await self._connection().eval(
                _RAISE_TO, 1, key, value, 0 if ttl is None else _ms(ttl)
            )
        return bool(raised)

    async def _delete(self, key: str) -> bool:
        with self._guard():
            return bool(await self._connection().delete(key))


# One script, so the compare and the write are one atomic step for every worker and host (a
# value that is not an integer makes tonumber() nil and the script fail: a refused command).
_RAISE_TO = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""


def _ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))
