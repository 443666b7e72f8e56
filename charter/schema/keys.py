"""Generated primary keys: random (version 4) UUID strings.

``uuid.uuid4()`` makes one ``getrandom`` system call per key, which costs more than the rest of
a create on some machines; this draws the same kernel randomness 4 KiB at a time.
"""

from __future__ import annotations

import os
import threading

__all__ = ["new_uuid"]

_CHUNK = 4096
_lock = threading.Lock()
_pool = b""
_offset = _CHUNK


def new_uuid() -> str:
    """A random UUID (version 4) as a canonical string."""
    global _pool, _offset
    with _lock:
        if _offset >= len(_pool):
            _pool = os.urandom(_CHUNK)
            _offset = 0
        raw = bytearray(_pool[_offset : _offset + 16])
        _offset += 16
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
