"""``app.shared``: a key-value store with expiry shared by a request's code, middleware and
rate limits; in-process by default, Redis with ``App(shared="redis://...")``."""

from __future__ import annotations

from ...errors import CharterError
from ...redaction import mask_url
from .base import SharedStore
from .memory import MemoryStore
from .redis_store import RedisStore

__all__ = ["MemoryStore", "RedisStore", "SharedStore", "open_shared"]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_shared(url: str | None) -> SharedStore:
    """The store a ``shared=`` setting names: None for in-process, else a Redis URL."""
    if url is None:
        return MemoryStore()
    if url.startswith(_REDIS_SCHEMES):
        return RedisStore(url)
    raise CharterError(
        f"shared={mask_url(url)!r}: the shared store is a Redis URL "
        "(redis://, rediss:// or unix://), or unset for the in-process store"
    )
