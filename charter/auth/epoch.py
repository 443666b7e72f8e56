"""The identity epoch: a value every worker can read in memory, changed whenever a session ends
or a user changes, so a worker may trust what it read of sessions and users while it holds.

Checking a token's session on every request is a database read; most of them find what the
previous request found. Every process that serves one SQLite database runs on the machine that
holds its file, so they share a tiny file next to it (``<database>-charter-epoch``), mapped
into memory: a logout, a reused refresh token, a password change or a user's removal writes a
new random value there right after its commit, and a worker that cached a session (or a Basic
credential's user) with the old value reads the database again. Reading the epoch costs well
under a microsecond. A cached entry is also trusted for at most ``TRUST`` seconds, which bounds
the one gap left: a process that dies between its commit and its write of the epoch.

PostgreSQL can be shared by several machines, which no file reaches: there the epoch is
disabled and every request reads its session. An in-memory SQLite database lives in one
process, whose epoch is a plain value.
"""

from __future__ import annotations

import mmap
import os
import secrets
import struct

__all__ = ["TRUST", "Epoch"]

TRUST = 1.0
"""Seconds a worker trusts a cached session or user, even with an unchanged epoch."""

_SIZE = 8
_WORD = struct.Struct("<Q")


class Epoch:
    """The shared value (module docstring). ``enabled`` False: never trust a cache."""

    def __init__(self, path: str | None, *, local: bool = False) -> None:
        """``path``: the file to share (None: not shared); ``local``: the database lives in
        this process only, so an in-process value is enough."""
        self.path = path
        self.local = local
        self._map: mmap.mmap | None = None
        self._value = 1

    @property
    def enabled(self) -> bool:
        return self.local or self._map is not None

    def open(self) -> None:
        """Map the file (created when missing); an unwritable place disables the epoch."""
        if self.path is None or self._map is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return  # a read-only directory: no cache, every request reads its session
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None

    def read(self) -> int:
        """The current value (0 when disabled: no cache entry can match it)."""
        if self._map is not None:
            return int(_WORD.unpack_from(self._map, 0)[0]) or 1
        return self._value if self.local else 0

    def bump(self) -> None:
        """Change the value: every cached session and user must be read again."""
        value = secrets.randbits(64) | 1  # random, so racing writers never restore an old one
        if self._map is None:
            self.open()  # a process that only changes users (``charter users``) maps it now
        if self._map is not None:
            _WORD.pack_into(self._map, 0, value)
        self._value = value
