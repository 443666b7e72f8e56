"""Failed sign-ins, counted per user and per address, answer 429 past a limit.

Guessing passwords costs an attacker one request per guess; the throttle caps the guesses per
username (whoever sends them) and per client address (whatever names it tries) in fixed
windows. A throttled attempt is refused before its password is checked, so it costs no Argon2
time either. Unknown and known usernames are counted alike: the 429 says nothing about whether
a name exists. Successful sign-ins are not counted.

Counts live in a ``Counter``: anything with an atomic ``incr(key, amount, ttl=)`` returning the
new value, such as ``app.shared`` (shared by every worker); ``MemoryCounter`` is the in-process
fallback (each worker counts alone).
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Protocol

from ..errors import RateLimited

__all__ = ["Counter", "MemoryCounter", "SignInThrottle"]


class Counter(Protocol):
    """An atomic counter with expiry; ``app.shared`` is one."""

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` to ``key`` (created at 0 with ``ttl`` seconds to live); the total."""
        ...


class MemoryCounter:
    """``Counter`` in this process's memory, with expiry and a bound on its size."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._values: dict[str, tuple[int, float]] = {}
        self._max_keys = max_keys

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        now = time.monotonic()
        current = self._values.get(key)
        if current is None or current[1] <= now:
            if len(self._values) >= self._max_keys:
                self._evict(now)
            expires = now + ttl if ttl is not None else math.inf
            current = (0, expires)
        value = current[0] + amount
        self._values[key] = (value, current[1])
        return value

    def _evict(self, now: float) -> None:
        live = {k: v for k, v in self._values.items() if v[1] > now}
        if len(live) >= self._max_keys:  # still full: the oldest half goes
            live = dict(list(live.items())[len(live) // 2 :])
        self._values = live


def _key(kind: str, value: str, window: int) -> str:
    digest = hashlib.sha256(value.encode(errors="surrogatepass")).hexdigest()[:32]
    return f"charter:signin:{kind}:{digest}:{window}"


class SignInThrottle:
    """Refuses sign-ins for a user or an address that failed too often in the current window.

    Args:
        counter: where counts live (``MemoryCounter`` or ``app.shared``).
        per_user: failed sign-ins allowed per username per window.
        per_address: failed sign-ins allowed per client address per window.
        window: the window, in seconds.
    """

    def __init__(self, counter: Counter, *, per_user: int, per_address: int, window: float) -> None:
        if per_user < 1 or per_address < 1 or window <= 0:
            raise ValueError("sign-in limits and their window are positive")
        self.counter = counter
        self.per_user = per_user
        self.per_address = per_address
        self.window = float(window)

    def _now(self) -> tuple[int, float]:
        now = time.time()
        index = int(now // self.window)
        return index, (index + 1) * self.window - now

    async def check(self, username: str, address: str | None) -> None:
        """Raise ``RateLimited`` (with ``Retry-After``) when either count is at its limit."""
        index, left = self._now()
        over = await self.counter.incr(_key("u", username, index), 0, ttl=self.window)
        over = over >= self.per_user
        if not over and address is not None:
            count = await self.counter.incr(_key("a", address, index), 0, ttl=self.window)
            over = count >= self.per_address
        if over:
            raise RateLimited(
                "too many failed sign-ins; try again later",
                headers={"retry-after": str(max(1, math.ceil(left)))},
            )

    async def failed(self, username: str, address: str | None) -> None:
        """Count one failed sign-in for ``username`` and ``address``."""
        index, _ = self._now()
        await self.counter.incr(_key("u", username, index), 1, ttl=self.window)
        if address is not None:
            await self.counter.incr(_key("a", address, index), 1, ttl=self.window)
