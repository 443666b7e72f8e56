"""Hot records: a transaction re-run after a conflict goes first on the records it lost on.

Optimistic transactions that keep colliding on one record retry at random; with a few of them
at once, one can lose every round and answer 409 although nothing was wrong. So a re-run takes a
lock on the records whose versions it checks (in one global order: no deadlock between re-runs),
and a transaction that holds no such lock waits briefly before it reads a locked record. The
re-run then reads and commits ahead of newcomers. Only records that conflicted are tracked, so
the uncontended path pays one dictionary lookup per read. Other processes still race
optimistically; this is fairness within a process, not a lock the database knows about.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import Any

__all__ = ["HotRecords", "hot_records"]

_WAIT = 1.0  # seconds a reader waits for a re-run at most; then it reads anyway
_HOLD_WAIT = 5.0  # seconds a re-run waits for another re-run's record; then goes on without

Key = tuple[str, Any]


class HotRecords:
    """The records of one storage (on one event loop) that re-run transactions hold."""

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks: dict[Key, asyncio.Lock] = {}

    def __bool__(self) -> bool:
        return bool(self._locks)

    async def wait(self, key: Key) -> None:
        """Let a re-run that holds ``key`` finish first (at most ``_WAIT`` seconds)."""
        lock = self._locks.get(key)
        if lock is None or not lock.locked():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_pass(lock), _WAIT)

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[Key]) -> AsyncIterator[None]:
        """Hold ``keys`` (in one global order) while a re-run reads and commits."""
        ordered = sorted(set(keys), key=lambda k: (k[0], type(k[1]).__name__, str(k[1])))
        held: list[tuple[Key, asyncio.Lock]] = []
        try:
            for key in ordered:
                lock = self._locks.setdefault(key, asyncio.Lock())
                try:
                    await asyncio.wait_for(lock.acquire(), _HOLD_WAIT)
                except TimeoutError:  # a re-run stuck in user code: go on without this one
                    continue
                held.append((key, lock))
            yield
        finally:
            for key, lock in reversed(held):
                lock.release()
                if not lock.locked() and self._locks.get(key) is lock and not _waiters(lock):
                    del self._locks[key]


async def _pass(lock: asyncio.Lock) -> None:
    async with lock:
        pass


def _waiters(lock: asyncio.Lock) -> bool:
    return bool(getattr(lock, "_waiters", None))


_registry: weakref.WeakKeyDictionary[Any, dict[asyncio.AbstractEventLoop, HotRecords]] = (
    weakref.WeakKeyDictionary()
)


def hot_records(storage: Any, *, create: bool = False) -> HotRecords | None:
    """The hot records of ``storage`` on the running loop (made when ``create``)."""
    by_loop = _registry.get(storage)
    if by_loop is None:
        if not create:
            return None
        by_loop = _registry[storage] = {}
    loop = asyncio.get_running_loop()
    hot = by_loop.get(loop)
    if hot is None and create:
        for stale in [other for other in by_loop if other.is_closed()]:
            del by_loop[stale]
        hot = by_loop[loop] = HotRecords()
    return hot
