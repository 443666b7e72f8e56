"""HTTP Basic credentials verified recently, so Basic does not pay Argon2 on every request.

An entry is keyed by a MAC (keyed BLAKE2b) of the credential under a key derived from the
app's secret: neither the password nor anything an attacker could test guesses against
offline is kept (without the key the digest is useless), and its user holds no password
hash. An entry lives ``ttl`` seconds. While it lives, the caller checks that the user did not
change: when the identity epoch (``epoch.py``) is the one the entry saw and it was checked
less than ``epoch.TRUST`` seconds ago, nothing can have changed; otherwise the user's row is
read again (one point read) and the entry holds only while the user's ``generation`` is
unchanged. So a password change, a role change or the user's removal invalidates it on every
worker at once.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import msgspec

from ..model.roles import Role, User
from .directory import StoredUser

__all__ = ["BASIC_CACHE_TTL", "BasicCache", "Cached"]

BASIC_CACHE_TTL = 60.0


@dataclass(slots=True)
class Cached:
    """A verified credential: whose (without the hash), until when, last checked when."""

    user: StoredUser
    expires: float
    epoch: int
    checked: float
    identity: tuple[Role, User, Role] | None = None  # (base role, user, acting role), reused


class BasicCache:
    """A bounded map from credential digest to the user it verified (module docstring)."""

    def __init__(self, key: bytes, *, ttl: float = BASIC_CACHE_TTL, size: int = 10_000) -> None:
        self._key = key
        self.ttl = ttl
        self.size = size
        self._entries: dict[bytes, Cached] = {}

    def digest(self, credential: str) -> bytes:
        """The key an entry for ``credential`` (the header's base64 text) is stored under."""
        # BLAKE2b in keyed mode is a MAC, and costs a fraction of an HMAC-SHA256 per request
        return hashlib.blake2b(credential.encode("latin-1"), key=self._key, digest_size=32).digest()

    def get(self, digest: bytes) -> Cached | None:
        """The entry for ``digest`` while it is fresh."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.expires <= time.monotonic():
            self._entries.pop(digest, None)
            return None
        return entry

    def put(self, digest: bytes, user: StoredUser, epoch: int) -> None:
        now = time.monotonic()
        if len(self._entries) >= self.size:
            self._entries = {k: v for k, v in self._entries.items() if v.expires > now}
            while len(self._entries) >= self.size:  # the oldest go first
                self._entries.pop(next(iter(self._entries)))
        kept = msgspec.structs.replace(user, password_hash="")
        self._entries[digest] = Cached(kept, now + self.ttl, epoch, now)

    def drop(self, digest: bytes) -> None:
        self._entries.pop(digest, None)
