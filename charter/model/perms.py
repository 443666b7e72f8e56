"""Permission bits (Kontract): R = read/returned (4), W = write (2), X = execute (1).

A grant satisfies a requirement when ``granted & required == required``.

The short names (``perms.R``, ``perms.RW``, ``perms.X``...) work everywhere. Kontract's
spellings (``R__``, ``_W_``, ``RW_``, ``R_X``, ``_WX``, ``RWX``) are kept too, but ``__X`` cannot
be written inside a class body (Python mangles ``perms.__X`` there into
``perms._ClassName__X``): write ``perms.X`` instead.
"""

from __future__ import annotations

from enum import IntFlag

__all__ = [
    "NONE",
    "RW",
    "RWX",
    "RW_",
    "RX",
    "R_X",
    "R__",
    "WX",
    "_WX",
    "_W_",
    "__X",
    "Perm",
    "R",
    "W",
    "X",
    "allows",
    "label",
]


class Perm(IntFlag):
    """The three permission bits; combine them with ``|`` (``Perm.R | Perm.W``)."""

    R = 4
    W = 2
    X = 1


NONE = Perm(0)
R = Perm.R
W = Perm.W
X = Perm.X
RW = Perm.R | Perm.W
RX = Perm.R | Perm.X
WX = Perm.W | Perm.X
RWX = Perm.R | Perm.W | Perm.X

# Kontract's spellings: the same values.
R__ = R
_W_ = W
__X = X
RW_ = RW
R_X = RX
_WX = WX


def allows(granted: int, required: int) -> bool:
    """True when every required bit is granted."""
    return granted & required == required


def label(bits: int) -> str:
    """Kontract's three-letter spelling of ``bits``: ``label(6) == "RW_"``."""
    return "".join(c if bits & v else "_" for c, v in (("R", 4), ("W", 2), ("X", 1)))
