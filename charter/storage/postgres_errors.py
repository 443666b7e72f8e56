"""PostgreSQL errors mapped to Charter's, by SQLSTATE, through one table.

Never by message text: the driver's exception carries the SQLSTATE, and a failure to reach the
server at all (refused, reset, timed out, a closed connection) has no SQLSTATE and is matched by
its class. What the table does not name is left as it is (a 500 whose body reveals nothing).
"""

from __future__ import annotations

import enum

import asyncpg

from ..errors import Conflict, HttpError, InvalidQuery, Unavailable, ValidationError
from .base import ConflictError, StorageFull

__all__ = ["Outcome", "no_connection", "nul_in_query", "outcome", "translate"]


class Outcome(enum.Enum):
    """What Charter does with a database error."""

    CONFLICT = "conflict"  # 409
    RETRY = "retry"  # the whole change set is re-run; 409 if it keeps failing
    UNAVAILABLE = "unavailable"  # 503 with Retry-After; the pool reconnects by itself
    INVALID = "invalid"  # 422: a value PostgreSQL cannot store
    FULL = "full"  # 503 STORAGE_FULL with Retry-After: the disk is full


# SQLSTATE (or its two-character class) -> outcome.
SQLSTATES: dict[str, Outcome] = {
    "23505": Outcome.CONFLICT,  # unique_violation
    "40001": Outcome.RETRY,  # serialization_failure
    "40P01": Outcome.RETRY,  # deadlock_detected
    "55P03": Outcome.RETRY,  # lock_not_available
    "08": Outcome.UNAVAILABLE,  # connection_exception (08000, 08003, 08006, 08001, 08004...)
    "57P01": Outcome.UNAVAILABLE,  # admin_shutdown
    "57P02": Outcome.UNAVAILABLE,  # crash_shutdown
    "57P03": Outcome.UNAVAILABLE,  # cannot_connect_now (starting up, shutting down)
    "53300": Outcome.UNAVAILABLE,  # too_many_connections
    "53100": Outcome.FULL,  # disk_full
    "53": Outcome.UNAVAILABLE,  # insufficient_resources (disk full, out of memory)
    "25006": Outcome.UNAVAILABLE,  # read_only_sql_transaction (a standby, mid-failover)
    "22P05": Outcome.INVALID,  # untranslatable_character (\u0000 in a string)
    "22021": Outcome.INVALID,  # character_not_in_repertoire
}

# Failures with no SQLSTATE: the server could not be reached or the connection is gone.
# (asyncio.TimeoutError and ConnectionRefusedError are OSErrors; InternalClientError is a
# connection left mid-protocol by a server that went away under it.)
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)

RETRY_AFTER = "1"  # seconds: a restart or failover usually takes about that
RETRY_AFTER_FULL = "30"  # seconds: someone has to free space first


def outcome(exc: BaseException) -> Outcome | None:
    """The table's verdict on ``exc`` (None: not a database error Charter maps)."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(exc, asyncpg.PostgresError) and isinstance(state, str):
        return SQLSTATES.get(state) or SQLSTATES.get(state[:2])
    if isinstance(exc, UNREACHABLE) and not isinstance(exc, ValueError):
        # (asyncpg's client-side DataError, a value it cannot encode, is an InterfaceError
        # and a ValueError: a bug or bad input, not an outage.)
        return Outcome.UNAVAILABLE
    return None


def translate(exc: BaseException) -> HttpError | None:
    """The Charter error to raise in place of ``exc`` (None: re-raise ``exc`` itself).

    ``RETRY`` outcomes become a 409 here; the storage re-runs the change set before it gets
    to that.
    """
    verdict = outcome(exc)
    if verdict is None:
        return None
    if verdict is Outcome.UNAVAILABLE:
        return Unavailable("the database is unavailable", headers={"retry-after": RETRY_AFTER})
    if verdict is Outcome.FULL:
        return StorageFull("the database's disk is full", headers={"retry-after": RETRY_AFTER_FULL})
    if verdict is Outcome.INVALID:
        return ValidationError("a value cannot be stored (it holds a NUL or invalid character)")
    if verdict is Outcome.RETRY:
        return ConflictError("the transaction conflicted with another one; try again")
    return Conflict("the write conflicts with a record that already exists")


def no_connection(timeout: float) -> Unavailable:
    """No pooled connection became free in time: a 503 the client may retry, never a hang."""
    return Unavailable(
        f"no database connection was free within {timeout:g} s",
        headers={"retry-after": RETRY_AFTER},
    )


def nul_in_query() -> InvalidQuery:
    """A query value with a NUL character: PostgreSQL cannot compare one (``22P05``), so it
    is refused before it reaches the driver, the same way in every query."""
    return InvalidQuery("a query value cannot hold a NUL character (\\u0000)")
