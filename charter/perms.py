"""Permission bits (Kontract): R = read/returned, W = write, X = execute.

A grant satisfies a requirement when ``granted & required == required``.
"""

from __future__ import annotations

__all__ = ["NONE", "RWX", "RW_", "R_X", "R__", "_WX", "_W_", "__X", "allows"]

NONE = 0
R__ = 4
_W_ = 2
__X = 1
RW_ = 6
R_X = 5
_WX = 3
RWX = 7


def allows(granted: int, required: int) -> bool:
    """True when every required bit is granted."""
    return granted & required == required
