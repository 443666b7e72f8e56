"""The in-process store: ``app.shared`` when no Redis is configured.

One dictionary per process, so with ``--workers N`` each worker has its own (a rate limit is
then enforced per worker). Expired keys are dropped when read, and swept in deadline order
on every write, so keys nobody reads again (a rate limit's windows) do not pile up.
"""

from __future__ import annotations

import heapq
import threading
import time

from ...errors import CharterError
from .base import SharedStore

__all__ = ["MemoryStore"]

_INT64_MAX = 2**63 - 1


class MemoryStore(SharedStore):
    """A dict of encoded values with deadlines (``time.monotonic`` seconds)."""

    kind = "in-process"

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._deadlines: list[tuple[float, str]] = []  # a heap; stale entries are skipped
        # The test client calls from its own thread while the app runs on a loop thread.
        self._lock = threading.Lock()

    def describe(self) -> str:
        return "in-process (one per worker process)"

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Values stay (a test client restarted on one app sees them); nothing to release."""

    def _live(self, key: str, now: float) -> tuple[bytes, float | None] | None:
        entry = self._data.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= now:
            del self._data[key]
            return None
        return entry

    def _sweep(self, now: float) -> None:
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            deadline, key = heapq.heappop(heap)
            entry = self._data.get(key)
            if entry is not None and entry[1] == deadline:
                del self._data[key]

    def _put(self, key: str, value: bytes, deadline: float | None) -> None:
        self._data[key] = (value, deadline)
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, key))

    async def _get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._live(key, time.monotonic())
        return None if entry is None else entry[0]

    async def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            self._put(key, value, None if ttl is None else now + ttl)

    async def _incr(self, key: str, amount: int, ttl: float | None) -> tuple[int, float | None]:
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            entry = self._live(key, now)
            if entry is None:
                current, deadline = 0, None if ttl is None else now + ttl
            else:
                try:
                    current = int(entry[0])
                except ValueError:
                    raise CharterError(
                        f"app.shared.incr: {key!r} holds a value that is not an integer"
                    ) from None
                deadline = entry[1]
            count = current + amount
            if not -_INT64_MAX - 1 <= count <= _INT64_MAX:
                raise CharterError(f"app.shared.incr: {key!r} would overflow 64 bits")
            if entry is None:
                self._put(key, b"%d" % count, deadline)
            else:
                self._data[key] = (b"%d" % count, deadline)
        return count, None if deadline is None else deadline - now

    async def _raise_to(self, key: str, value: int, ttl: float | None) -> bool:
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            entry = self._live(key, now)
            if entry is not None:
                try:
                    current = int(entry[0])
                except ValueError:
                    raise CharterError(
                        f"app.shared.raise_to: {key!r} holds a value that is not an integer"
                    ) from None
                if current >= value:
                    return False
            self._put(key, b"%d" % value, None if ttl is None else now + ttl)
        return True

    async def _delete(self, key: str) -> bool:
        with self._lock:
            return self._live(key, time.monotonic()) is not None and bool(self._data.pop(key))
