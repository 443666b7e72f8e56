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
_pool = ""  # hex digits of kernel randomness, 32 per key
_offset = 0
# The variant's digit keeps two random bits and sets the top two to 10 (RFC 9562): 8, 9, a, b.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _forget_pool() -> None:
    """In a forked child: the parent's unused randomness would give both the same keys (and
    its lock may have been held by a thread the child does not have)."""
    global _pool, _offset, _lock
    _pool, _offset, _lock = "", 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def new_uuid() -> str:
    """A random UUID (version 4) as a canonical string: 122 random bits, the version digit
    4 and the variant digit written over the digits drawn for them."""
    global _pool, _offset
    with _lock:
        if _offset >= len(_pool):
            _pool = os.urandom(_CHUNK).hex()
            _offset = 0
        h = _pool[_offset : _offset + 32]
        _offset += 32
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
