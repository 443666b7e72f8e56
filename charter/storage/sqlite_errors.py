"""SQLite errors mapped to Charter's, by result code, through one table.

Never by message text: every ``sqlite3.Error`` carries ``sqlite_errorcode`` (Python 3.11+), the
extended result code, whose low byte is the primary code. The table is looked up by the extended
code first (the kinds of ``SQLITE_CONSTRAINT`` differ), then by the primary one (every
``SQLITE_IOERR_*`` is an I/O error). What it does not name (``SQLITE_ERROR``: a statement
Charter got wrong; ``CORRUPT``, ``NOTADB``, ``MISUSE``...) is left as it is: a 500 whose body
reveals nothing, logged in full. Messages name the kind of failure, never SQLite's text (which
names tables and columns).

``BUSY`` and ``LOCKED`` are transient: another connection holds the lock (another process
writing the file, or, in a shared-cache memory database, the writer mid-batch). SQLite's busy
handler waits out ``BUSY`` for the busy timeout; ``LOCKED`` it does not wait for. Either is then
retried by ``retrying`` on ``RETRY_DELAYS`` before it becomes a 503 with ``Retry-After``.
"""

from __future__ import annotations

import enum
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import Conflict, HttpError, PayloadTooLarge, Unavailable, ValidationError
from .base import StorageFull

__all__ = [
    "CODES",
    "RETRY_DELAYS",
    "Outcome",
    "charter_error",
    "is_duplicate",
    "outcome",
    "pause",
    "retrying",
    "translate",
    "translated",
]

T = TypeVar("T")


class Outcome(enum.Enum):
    """What Charter does with a SQLite error."""

    CONFLICT = "conflict"  # 409: the write conflicts with what is stored
    INVALID = "invalid"  # 422: a value the database refuses
    TOO_BIG = "too_big"  # 413: a value over SQLite's length limit
    RETRY = "retry"  # retried on RETRY_DELAYS, then 503 UNAVAILABLE with Retry-After
    UNAVAILABLE = "unavailable"  # 503 UNAVAILABLE with Retry-After
    FULL = "full"  # 503 STORAGE_FULL with Retry-After


_SQLITE_CONSTRAINT_DATATYPE = 3091  # (a STRICT table's column; not in Python 3.11's constants)

# Result code (extended, or primary) -> what Charter does, and what the message says.
CODES: dict[int, tuple[Outcome, str]] = {
    sqlite3.SQLITE_BUSY: (Outcome.RETRY, "the database is locked by another connection"),
    sqlite3.SQLITE_LOCKED: (Outcome.RETRY, "a table is locked by another connection"),
    sqlite3.SQLITE_NOMEM: (Outcome.UNAVAILABLE, "the database is out of memory"),
    sqlite3.SQLITE_READONLY: (Outcome.UNAVAILABLE, "the database cannot be written"),
    sqlite3.SQLITE_IOERR: (Outcome.UNAVAILABLE, "the database had an I/O error"),
    sqlite3.SQLITE_CANTOPEN: (Outcome.UNAVAILABLE, "the database file cannot be opened"),
    sqlite3.SQLITE_PROTOCOL: (Outcome.UNAVAILABLE, "the database's locking failed"),
    sqlite3.SQLITE_FULL: (Outcome.FULL, "the database is full"),
    sqlite3.SQLITE_TOOBIG: (Outcome.TOO_BIG, "a value is too big for the database"),
    sqlite3.SQLITE_MISMATCH: (Outcome.INVALID, "a value has the wrong type for its column"),
    sqlite3.SQLITE_CONSTRAINT: (Outcome.CONFLICT, "the write breaks a constraint"),
    sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY: (Outcome.CONFLICT, "the key exists already"),
    sqlite3.SQLITE_CONSTRAINT_UNIQUE: (Outcome.CONFLICT, "a unique value exists already"),
    sqlite3.SQLITE_CONSTRAINT_ROWID: (Outcome.CONFLICT, "the row id exists already"),
    sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY: (Outcome.CONFLICT, "a foreign key does not match"),
    sqlite3.SQLITE_CONSTRAINT_TRIGGER: (Outcome.CONFLICT, "a trigger refused the write"),
    sqlite3.SQLITE_CONSTRAINT_COMMITHOOK: (Outcome.CONFLICT, "a commit hook refused the write"),
    sqlite3.SQLITE_CONSTRAINT_NOTNULL: (Outcome.INVALID, "a value is missing (NOT NULL)"),
    sqlite3.SQLITE_CONSTRAINT_CHECK: (Outcome.INVALID, "a value breaks a CHECK constraint"),
    sqlite3.SQLITE_CONSTRAINT_FUNCTION: (Outcome.INVALID, "a function refused a value"),
    sqlite3.SQLITE_CONSTRAINT_VTAB: (Outcome.INVALID, "a virtual table refused a value"),
    _SQLITE_CONSTRAINT_DATATYPE: (Outcome.INVALID, "a value has the wrong type for its column"),
}

# Seconds between the attempts at a statement that met BUSY or LOCKED (about 0.4 s in all).
RETRY_DELAYS = (0.005, 0.02, 0.05, 0.1, 0.25)
RETRY_AFTER = "1"  # seconds: a lock is usually held for less
RETRY_AFTER_FULL = "30"  # seconds: someone has to free space first
_DUPLICATES = frozenset({sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE})


def _entry(exc: BaseException) -> tuple[Outcome, str] | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or not isinstance(code, int):
        return None
    return CODES.get(code) or CODES.get(code & 0xFF)


def outcome(exc: BaseException) -> Outcome | None:
    """The table's verdict on ``exc`` (None: not a SQLite error Charter maps)."""
    entry = _entry(exc)
    return entry[0] if entry is not None else None


def is_duplicate(exc: BaseException) -> bool:
    """Whether ``exc`` is a UNIQUE or PRIMARY KEY constraint failing (a create of a key that
    exists: the storage answers ``DuplicateKey``, which names the record)."""
    return isinstance(exc, sqlite3.Error) and exc.sqlite_errorcode in _DUPLICATES


def translate(exc: BaseException) -> HttpError | None:
    """The Charter error to raise in place of ``exc`` (None: re-raise ``exc`` itself)."""
    entry = _entry(exc)
    if entry is None:
        return None
    verdict, message = entry
    if verdict is Outcome.CONFLICT:
        return Conflict(message)
    if verdict is Outcome.INVALID:
        return ValidationError(message)
    if verdict is Outcome.TOO_BIG:
        return PayloadTooLarge(message)
    if verdict is Outcome.FULL:
        return StorageFull(message, headers={"retry-after": RETRY_AFTER_FULL})
    return Unavailable(message, headers={"retry-after": RETRY_AFTER})


def charter_error(exc: BaseException) -> BaseException:
    """``exc`` translated when the table names it, else ``exc`` itself."""
    error = translate(exc)
    if error is None:
        return exc
    error.__cause__ = exc
    return error


def pause(seconds: float) -> None:
    """The wait between two attempts (one place, so that a test can stand in for it)."""
    time.sleep(seconds)


def translated(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, a SQLite error the table names raised as its Charter error."""
    try:
        return fn(*args)
    except sqlite3.Error as exc:
        error = translate(exc)
        if error is None:
            raise
        raise error from exc


def retrying(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, run again after each delay of ``RETRY_DELAYS`` while it meets BUSY or
    LOCKED; then, or on any other error the table names, raised as its Charter error.

    Only for a call that can run again from the start (a whole statement on a connection, not
    the next rows of a cursor, which an error has reset).
    """
    for delay in RETRY_DELAYS:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            if outcome(exc) is not Outcome.RETRY:
                error = translate(exc)
                if error is None:
                    raise
                raise error from exc
        pause(delay)
    return translated(fn, *args)
