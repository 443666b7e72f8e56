"""Password hashing with Argon2id (argon2-cffi, its current recommended parameters).

Hashing and verifying cost tens of milliseconds of CPU by design, so the async helpers run
them on a worker thread: a sign-in never stalls the event loop. ``verify_unknown`` spends the
same time for a user that does not exist, so the answer does not tell whether a name exists.
"""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["hash_password", "needs_rehash", "verify_password", "verify_unknown"]

_hasher = PasswordHasher()  # Argon2id, RFC 9106 parameters as the library recommends

MAX_PASSWORD_BYTES = 1024
"""Longer passwords are refused: hashing megabytes would be a denial of service."""


def _check(password: str) -> None:
    if not isinstance(password, str) or not password:
        raise ValueError("a password is a non-empty string")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"a password is at most {MAX_PASSWORD_BYTES} bytes")


async def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (salted; parameters encoded in the string)."""
    _check(password)
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash (never raises for a mismatch)."""
    if not isinstance(password, str) or len(password.encode()) > MAX_PASSWORD_BYTES:
        return await verify_unknown(password if isinstance(password, str) else "")
    return await asyncio.to_thread(_verify, stored, password)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("charter: no such user")


async def verify_unknown(password: str) -> bool:
    """Spend what a real verification spends, and fail: for unknown users."""
    dummy = await asyncio.to_thread(_dummy_hash)
    await asyncio.to_thread(_verify, dummy, password[:MAX_PASSWORD_BYTES] or "x")
    return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with other parameters than today's (rehash at sign-in)."""
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True
