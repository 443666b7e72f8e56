"""The event log on PostgreSQL, written in the transaction of the change it records.

Positions must only grow in commit order, so that a reader that has seen position P has seen
everything below it. A sequence alone does not give that (a transaction may take a number and
commit after one that took a later number), so a transaction appends its events under a
transaction-level advisory lock, as its last statement: the lock is held until its COMMIT ends,
so numbers are taken in commit order. What it costs: commits that log events are serialized
for the length of their COMMIT (docs/realtime.md). The same statement sends the NOTIFY that
wakes the other workers' hubs (delivered at commit, and only if it commits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from .base import (
    DELETE,
    INCREMENT,
    INSERT,
    MERGE,
    PUBLISH,
    PUT,
    Change,
    ConflictError,
    DuplicateKey,
    LoggedEvent,
)
from .postgres_schema import Connection, quote

__all__ = [
    "CHANNEL",
    "append",
    "create_event_log",
    "first_since",
    "prune",
    "read_back",
    "read_bounds",
    "read_since",
]

CHANNEL = "charter_events"
_LOG_LOCK = 0x43455654  # "CEVT": the lock that orders positions by commit
_COLUMNS = "position, tbl, id, type, data, ts, usr"
_APPEND = (
    "WITH lock AS (SELECT pg_advisory_xact_lock($1)), "
    "added AS (INSERT INTO _charter_events (tbl, id, type, data, ts, usr) "
    "SELECT e.tbl, e.id, e.type, e.data, e.ts, e.usr FROM lock, "
    "unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[]) "
    "WITH ORDINALITY AS e(tbl, id, type, data, ts, usr, n) ORDER BY e.n RETURNING position) "
    f"SELECT pg_notify('{CHANNEL}', max(position)::text) FROM added"
)
_key_json = msgspec.json.encode
_key_of = msgspec.json.decode


async def create_event_log(conn: Connection) -> None:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS _charter_events (position BIGSERIAL PRIMARY KEY, "
        "tbl TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, data TEXT, "
        "ts BIGINT NOT NULL, usr TEXT)"
    )
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS _charter_event_floor "
        "(one INTEGER PRIMARY KEY CHECK (one = 1), position BIGINT NOT NULL)"
    )


async def append(
    conn: Connection,
    changes: Sequence[Change],
    versions: Sequence[int | None],
    now: int,
    render: Callable[[str, str], str],
    tables: Mapping[str, Any],
) -> None:
    """Append the events of ``changes`` (those that ask for one), inside the open transaction.
    ``render(table, json)`` renders stored floats; ``tables`` are the tables' ``Statements``."""
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
    for change, version in zip(changes, versions, strict=True):
        if change.event is None:
            continue
        data = change.data
        stamp = now if version is None else version
        if change.kind == MERGE or change.kind == INCREMENT:
            row = await conn.fetchrow(
                f"SELECT data::text, version FROM {quote(change.table)} WHERE id = $1",
                tables[change.table].key(change.key),
            )
            assert row is not None  # the write just succeeded in this transaction
            data, stamp = render(change.table, row[0]), int(row[1])
        elif change.kind == DELETE:
            data = None
        elif change.kind == PUBLISH:
            stamp = now
        for column, value in zip(
            columns,
            (change.table, _key_json(change.key).decode(), change.event, data, stamp, change.user),
            strict=True,
        ):
            column.append(value)
    if columns[0]:
        await conn.execute(_APPEND, _LOG_LOCK, *columns)


def with_event(statement: str, first: int) -> str:
    """``statement`` (a write ``RETURNING version`` whose ``$2`` is the record's JSON) and the
    append of its event, as one statement: a lone write with its event in one round trip.
    The event's table, key, type and user are the parameters from ``$first`` on."""
    t, k, e, u = (f"${n}" for n in range(first, first + 4))
    return (
        f"WITH w AS ({statement}), lk AS (SELECT pg_advisory_xact_lock({_LOG_LOCK}) FROM w), "
        "added AS (INSERT INTO _charter_events (tbl, id, type, data, ts, usr) "
        f"SELECT {t}::text, {k}::text, {e}::text, $2::text, w.version, {u}::text FROM w, lk "
        "RETURNING position) "
        f"SELECT w.version, (SELECT pg_notify('{CHANNEL}', max(position)::text) FROM added) "
        "FROM w"
    )


def event_arguments(change: Change) -> tuple[str, str, str | None, str | None]:
    return change.table, _key_json(change.key).decode(), change.event, change.user


def lone(change: Change) -> bool:
    """A change ``apply_lone`` writes with its event in one statement: a PUT (blind, or of a
    version that was read) or an INSERT not seen before."""
    if change.event is None:
        return False
    if change.kind == INSERT:
        return not change.expect
    return change.kind == PUT and change.expect != 0


async def apply_lone(conn: Connection, spec: Any, change: Change, now: int) -> int:
    """A lone PUT or INSERT and its event in one statement (``with_event``), with the answers
    of the backend's ``_apply``: a conflict or a duplicate key when it writes nothing. ``spec``
    is the table's ``postgres_statements.Statements``."""
    key = spec.key(change.key)
    extra = event_arguments(change)
    args: tuple[Any, ...]
    if change.kind == INSERT:
        sql, args = spec.logged_insert, (key, change.data, now, *extra)
    elif change.expect is None:
        sql, args = spec.logged_upsert, (key, change.data, now, *extra)
    else:
        sql, args = spec.logged_update_if, (key, change.data, now, change.expect, *extra)
    row = await conn.fetchrow(sql, *args)
    if row is not None:
        return int(row[0])
    if change.kind == INSERT and change.expect is None:
        raise DuplicateKey.for_key(change.table, change.key)
    raise ConflictError.for_key(change.table, change.key)  # (an INSERT of a key seen absent)


def _event(row: Any) -> LoggedEvent:
    return LoggedEvent(row[0], row[1], _key_of(row[2]), row[3], row[4], row[5], row[6])


async def read_since(conn: Connection, after: int, limit: int) -> list[LoggedEvent]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM _charter_events WHERE position > $1 ORDER BY position LIMIT $2",
        after,
        limit,
    )
    return [_event(row) for row in rows]


async def read_back(
    conn: Connection, table: str, key: Any, before: int, limit: int
) -> list[LoggedEvent]:
    if key is None:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM _charter_events WHERE position < $1 AND tbl = $2 "
            "ORDER BY position DESC LIMIT $3",
            before,
            table,
            limit,
        )
    else:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM _charter_events WHERE position < $1 AND tbl = $2 "
            "AND id = $3 ORDER BY position DESC LIMIT $4",
            before,
            table,
            _key_json(key).decode(),
            limit,
        )
    return [_event(row) for row in rows]


async def read_bounds(conn: Connection) -> tuple[int, int]:
    floor = await conn.fetchval("SELECT position FROM _charter_event_floor")
    head = await conn.fetchval("SELECT max(position) FROM _charter_events")
    return int(floor or 0), int(head or floor or 0)


async def first_since(conn: Connection, timestamp: int) -> int | None:
    found = await conn.fetchval(
        "SELECT position FROM _charter_events WHERE ts >= $1 ORDER BY position LIMIT 1", timestamp
    )
    return None if found is None else int(found)


async def prune(conn: Connection, older_than: int | None, keep: int | None) -> int:
    limits = []
    if keep is not None:
        head = await conn.fetchval("SELECT max(position) FROM _charter_events")
        limits.append(int(head or 0) - keep)
    if older_than is not None:
        newest_old = await conn.fetchval(
            "SELECT max(position) FROM _charter_events WHERE ts < $1", older_than
        )
        if newest_old is not None:
            limits.append(int(newest_old))
    cut = max(limits, default=0)
    if cut <= 0:
        return 0
    async with conn.transaction():
        status = await conn.execute("DELETE FROM _charter_events WHERE position <= $1", cut)
        await conn.execute(
            "INSERT INTO _charter_event_floor (one, position) VALUES (1, $1) ON CONFLICT (one) "
            "DO UPDATE SET position = GREATEST(_charter_event_floor.position, excluded.position)",
            cut,
        )
    return int(status.split()[-1])
