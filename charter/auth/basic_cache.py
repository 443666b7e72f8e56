"""HTTP Basic credentials verified recently, so Basic does not pay Argon2 on every request.

An entry is keyed by an HMAC of the credential under a key derived from the app's secret:
neither the password nor anything an attacker could test guesses against offline is kept
(without the key the digest is useless). It remembers whose credential it was and that user's
``generation`` at the time; the caller reads the user again (one point read) and trusts the
entry only while the generation is unchanged, so a password change, a role change or the
user's removal invalidates it on every worker at once. Entries live ``ttl`` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import NamedTuple

__all__ = ["BASIC_CACHE_TTL", "BasicCache", "Cached"]

BASIC_CACHE_TTL = 60.0


class Cached(NamedTuple):
    username: str
    generation: int
    expires: float


class BasicCache:
    """A bounded map from credential digest to the user it verified (module docstring)."""

    def __init__(self, key: bytes, *, ttl: float = BASIC_CACHE_TTL, size: int = 10_000) -> None:
        self._key = key
        self.ttl = ttl
        self.size = size
        self._entries: dict[bytes, Cached] = {}

    def digest(self, credential: str) -> bytes:
        """The key an entry for ``credential`` (the header's base64 text) is stored under."""
        return hmac.new(self._key, credential.encode("latin-1"), hashlib.sha256).digest()

    def get(self, digest: bytes) -> Cached | None:
        """The entry for ``digest`` while it is fresh."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.expires <= time.monotonic():
            self._entries.pop(digest, None)
            return None
        return entry

    def put(self, digest: bytes, username: str, generation: int) -> None:
        if len(self._entries) >= self.size:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v.expires > now}
            while len(self._entries) >= self.size:  # the oldest go first
                self._entries.pop(next(iter(self._entries)))
        self._entries[digest] = Cached(username, generation, time.monotonic() + self.ttl)

    def drop(self, digest: bytes) -> None:
        self._entries.pop(digest, None)
