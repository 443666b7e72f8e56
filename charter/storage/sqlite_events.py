"""The event log on SQLite: one row per change's event, written by the writer thread inside the
transaction of the change (see ``base.Change.event``).

Positions come from ``AUTOINCREMENT``: SQLite has one writer at a time (across processes too),
so they grow in commit order and are never reused after a prune. The floor row remembers the
newest pruned position, so a resume from before it is told to refetch instead of seeing a gap.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from .base import DELETE, INCREMENT, MERGE, PUBLISH, Change, LoggedEvent
from .sqlite_schema import quote

__all__ = [
    "create_event_log",
    "first_since",
    "log_event",
    "prune",
    "read_back",
    "read_bounds",
    "read_since",
]

_COLUMNS = "position, tbl, id, type, data, ts, usr"
_INSERT = "INSERT INTO _charter_events (tbl, id, type, data, ts, usr) VALUES (?, ?, ?, ?, ?, ?)"
_key_json = msgspec.json.encode
_key_of = msgspec.json.decode


def create_event_log(conn: sqlite3.Connection) -> None:
    """Create the log's tables (inside ``migrate``'s transaction)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _charter_events (position INTEGER PRIMARY KEY AUTOINCREMENT, "
        "tbl TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, data TEXT, "
        "ts INTEGER NOT NULL, usr TEXT)"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _charter_event_floor "
        "(one INTEGER PRIMARY KEY CHECK (one = 1), position INTEGER NOT NULL)"
    )


def log_event(conn: sqlite3.Connection, change: Change, version: int | None, now: int) -> None:
    """Append ``change``'s event: the record as the write left it (read back for a merge or an
    increment, which SQLite computed), its version as the event's time."""
    key = _key_json(change.key).decode()
    if change.kind == MERGE or change.kind == INCREMENT:
        conn.execute(
            "INSERT INTO _charter_events (tbl, id, type, data, ts, usr) "
            f"SELECT ?, ?, ?, data, version, ? FROM {quote(change.table)} WHERE id = ?",
            (change.table, key, change.event, change.user, change.key),
        )
        return
    data = None if change.kind == DELETE else change.data
    stamp = now if change.kind in (DELETE, PUBLISH) or version is None else version
    conn.execute(_INSERT, (change.table, key, change.event, data, stamp, change.user))


def _event(row: tuple[Any, ...]) -> LoggedEvent:
    return LoggedEvent(row[0], row[1], _key_of(row[2]), row[3], row[4], row[5], row[6])


def read_since(conn: sqlite3.Connection, after: int, limit: int) -> list[LoggedEvent]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM _charter_events WHERE position > ? ORDER BY position LIMIT ?",
        (after, limit),
    ).fetchall()
    return [_event(row) for row in rows]


def read_back(
    conn: sqlite3.Connection, table: str, key: Any, before: int, limit: int
) -> list[LoggedEvent]:
    if key is None:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM _charter_events WHERE position < ? AND tbl = ? "
            "ORDER BY position DESC LIMIT ?",
            (before, table, limit),
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM _charter_events WHERE position < ? AND tbl = ? AND id = ? "
            "ORDER BY position DESC LIMIT ?",
            (before, table, _key_json(key).decode(), limit),
        ).fetchall()
    return [_event(row) for row in rows]


def read_bounds(conn: sqlite3.Connection) -> tuple[int, int]:
    floor = conn.execute("SELECT position FROM _charter_event_floor").fetchone()
    head = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = '_charter_events'")
    found = head.fetchone()
    return (floor[0] if floor else 0), (found[0] if found else 0)


def first_since(conn: sqlite3.Connection, timestamp: int) -> int | None:
    """Positions and times grow together (one writer, a clock per commit): the oldest event at
    or after ``timestamp`` is found by a binary search over positions."""
    low = conn.execute("SELECT min(position), max(position) FROM _charter_events").fetchone()
    if low is None or low[0] is None:
        return None
    first, last = low
    at = conn.execute("SELECT ts FROM _charter_events WHERE position = ?", (last,)).fetchone()
    if at[0] < timestamp:
        return None
    while first < last:
        middle = (first + last) // 2
        row = conn.execute(
            "SELECT ts FROM _charter_events WHERE position >= ? ORDER BY position LIMIT 1",
            (middle,),
        ).fetchone()
        if row[0] < timestamp:
            first = middle + 1
        else:
            last = middle
    found = conn.execute(
        "SELECT position FROM _charter_events WHERE position >= ? ORDER BY position LIMIT 1",
        (first,),
    ).fetchone()
    return int(found[0]) if found else None


def prune(conn: sqlite3.Connection, older_than: int | None, keep: int | None) -> int:
    """Delete what retention lets go; the floor rises to the newest deleted position."""
    limits = []
    if keep is not None:
        head = conn.execute("SELECT max(position) FROM _charter_events").fetchone()[0] or 0
        limits.append(head - keep)
    if older_than is not None:
        newest_old = conn.execute(
            "SELECT max(position) FROM _charter_events WHERE ts < ?", (older_than,)
        ).fetchone()[0]
        if newest_old is not None:
            limits.append(newest_old)
    cut = max(limits, default=0)
    if cut <= 0:
        return 0
    deleted = conn.execute("DELETE FROM _charter_events WHERE position <= ?", (cut,)).rowcount
    conn.execute(
        "INSERT INTO _charter_event_floor (one, position) VALUES (1, ?) "
        "ON CONFLICT (one) DO UPDATE SET position = max(position, excluded.position)",
        (cut,),
    )
    return int(deleted)
