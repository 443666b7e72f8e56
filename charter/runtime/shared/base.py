"""``SharedStore``: the contract of ``app.shared``, one key-value store with expiry per app.

Both stores (in-process and Redis) check keys, values and TTLs here and hold values in one
encoding, so a value reads back the same from either: an ``int`` is kept as its decimal digits
(so that ``incr`` and Redis ``INCRBY`` work on it), every other value as a tagged byte string.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import msgspec

from ...errors import CharterError

__all__ = ["MAX_KEY_LENGTH", "SharedStore", "decode", "encode"]

MAX_KEY_LENGTH = 1024
_INT64 = (-(2**63), 2**63 - 1)
_STR, _BYTES, _FLOAT, _JSON = b"s:", b"b:", b"f:", b"j:"


def encode(value: Any) -> bytes:
    """The stored form of a value (see the module docstring); ``CharterError`` if it has none."""
    if isinstance(value, bool) or value is None:
        if value is None:
            raise CharterError("app.shared cannot hold None (get answers None for a missing key)")
        return _JSON + (b"true" if value else b"false")
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise CharterError("app.shared holds integers of 64 bits (as Redis does)")
        return b"%d" % value
    if isinstance(value, str):
        return _STR + value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return _BYTES + bytes(value)
    if isinstance(value, float):
        return _FLOAT + repr(value).encode()
    try:
        return _JSON + msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise CharterError(
            f"app.shared holds str, bytes, int, float or JSON-able values, "
            f"not {type(value).__name__}"
        ) from exc


def decode(stored: bytes) -> Any:
    """The value of a stored form (``encode`` reversed); other bytes come back as they are."""
    tag = stored[:2]
    if tag == _STR:
        return stored[2:].decode()
    if tag == _BYTES:
        return stored[2:]
    if tag == _FLOAT:
        return float(stored[2:])
    if tag == _JSON:
        return msgspec.json.decode(stored[2:])
    try:
        return int(stored)
    except ValueError:  # written by another Redis client: handed over as it is
        return stored


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise CharterError(f"app.shared keys are non-empty strings, not {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise CharterError(f"app.shared keys are at most {MAX_KEY_LENGTH} characters")
    return key


def check_ttl(ttl: Any) -> float | None:
    """Seconds to live: None (forever) or a finite number above 0."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf:
        raise CharterError(f"app.shared ttl is a number of seconds above 0, or None; not {ttl!r}")
    return float(ttl)


def check_amount(amount: Any) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise CharterError(f"app.shared.incr adds an int, not {amount!r}")
    return amount


class SharedStore(ABC):
    """``app.shared``: ``get``, ``set``, ``incr`` and ``delete``, with expiry (see docs).

    Subclasses store encoded values (``encode``/``decode``) through the ``_``-prefixed methods;
    the public methods check their arguments first, so every store refuses the same inputs.
    """

    kind: str = ""  # "in-process" or "redis", as the banner says

    def describe(self) -> str:
        """What ``charter serve`` prints: the store, never a password."""
        return self.kind

    @abstractmethod
    async def open(self) -> None:
        """Connect (at app start-up); a store that cannot connect yet still opens."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections (at app shutdown)."""

    async def get(self, key: str) -> Any:
        """The value at ``key``, or None when there is none (or it expired)."""
        stored = await self._get(check_key(key))
        return None if stored is None else decode(stored)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` at ``key``, for ``ttl`` seconds (None: until deleted or replaced)."""
        await self._set(check_key(key), encode(value), check_ttl(ttl))

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` to the integer at ``key`` (0 when missing) atomically; the new value.

        ``ttl`` applies only when this call creates the key: a counter that lives ``ttl``
        seconds from its first increment (a fixed window).
        """
        count, _ = await self._incr(check_key(key), check_amount(amount), check_ttl(ttl))
        return count

    async def incr_window(self, key: str, ttl: float, amount: int = 1) -> tuple[int, float]:
        """``incr`` with a ``ttl``, answering also the seconds the counter has left to live."""
        checked = check_ttl(ttl)
        if checked is None:
            raise CharterError("app.shared.incr_window needs a ttl")
        count, left = await self._incr(check_key(key), check_amount(amount), checked)
        return count, checked if left is None else left

    async def raise_to(self, key: str, value: int, ttl: float | None = None) -> bool:
        """Set the integer at ``key`` to ``value`` only if ``value`` is greater than it (a
        missing key counts as 0), atomically across every user of the store; whether it did.

        Why: a high-water mark that concurrent workers advance (the encrypted channel's message
        counters), where a read then a write would let two of them accept the same value.
        ``ttl`` applies as in ``set`` when the value is written.
        """
        return await self._raise_to(check_key(key), check_amount(value), check_ttl(ttl))

    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""
        return await self._delete(check_key(key))

    @abstractmethod
    async def _get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def _set(self, key: str, value: bytes, ttl: float | None) -> None: ...

    @abstractmethod
    async def _incr(self, key: str, amount: int, ttl: float | None) -> tuple[int, float | None]:
        """The new count and, when the key expires, its seconds left."""

    @abstractmethod
    async def _raise_to(self, key: str, value: int, ttl: float | None) -> bool: ...

    @abstractmethod
    async def _delete(self, key: str) -> bool: ...
