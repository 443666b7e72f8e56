"""``Flights``: concurrent loads of one id in a worker share one task.

The task runs on its own, shielded from the callers: a caller that goes away (a client that
disconnects) does not cancel the load the others wait for. Its result, or its error, is every
waiter's.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["Flights"]

T = TypeVar("T")


class Flights(Generic[T]):
    """One running task per key; later callers join it."""

    def __init__(self) -> None:
        self._running: dict[Any, asyncio.Task[T]] = {}

    def start(self, key: Any, load: Callable[[], Coroutine[Any, Any, T]]) -> asyncio.Task[T]:
        """The running load of ``key``, or a new one of ``load()``."""
        task = self._running.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            # An empty context: a load shared by many requests carries none of theirs.
            task = asyncio.create_task(load(), context=contextvars.Context())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return task

    def _finished(self, key: Any, task: asyncio.Task[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # (retrieved: a load nobody waited for logs nothing twice)

    async def join(self, key: Any, load: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """The result of the one load of ``key`` in flight (started if none is)."""
        return await asyncio.shield(self.start(key, load))

    def running(self, key: Any) -> bool:
        return key in self._running

    async def cancel_all(self) -> None:
        """Stop every load (at shutdown)."""
        loop = asyncio.get_running_loop()  # (a task of another loop is that loop's to end)
        tasks = [task for task in self._running.values() if task.get_loop() is loop]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
