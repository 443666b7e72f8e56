"""The writes SQLite computes itself: a merge of top-level attributes and an increment, each
one ``UPDATE`` on the writer's connection (``sqlite.SQLiteStorage._apply`` runs them)."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import msgspec

from .base import Change, MissingRecord
from .sqlite_schema import quote

__all__ = ["increment", "merge"]

# An attribute name that a quoted JSON path label (``$."name"``) can spell.
_PLAIN_KEY = re.compile(r'[^"\\\x00-\x1f]+')
_json_decode = msgspec.json.decode
_json_encode = msgspec.json.encode


def merge(conn: sqlite3.Connection, change: Change, now: int, select: str) -> int:
    """Set the given top-level attributes in the current document, exactly: ``json_set``
    per attribute (``json_patch`` would delete on null and merge nested objects)."""
    assert change.data is not None
    fields = _json_decode(change.data)
    table = quote(change.table)
    if not fields:
        row = conn.execute(
            f"UPDATE {table} SET version = max(?, version + 1) WHERE id = ? RETURNING version",
            (now, change.key),
        ).fetchone()
    elif all(_PLAIN_KEY.fullmatch(name) for name in fields):
        args: list[Any] = []
        for name, value in fields.items():
            args += (f'$."{name}"', _json_encode(value).decode())
        pairs = ", ".join(["?, json(?)"] * len(fields))
        row = conn.execute(
            f"UPDATE {table} SET data = json_set(data, {pairs}), "
            "version = max(?, version + 1) WHERE id = ? RETURNING version",
            (*args, now, change.key),
        ).fetchone()
    else:  # a name a JSON path cannot spell: merge in Python (the writer is alone)
        found = conn.execute(select, (change.key,)).fetchone()
        row = None
        if found is not None:
            document = _json_decode(found[0])
            document.update(fields)
            row = conn.execute(
                f"UPDATE {table} SET data = ?, version = max(?, version + 1) "
                "WHERE id = ? RETURNING version",
                (_json_encode(document).decode(), now, change.key),
            ).fetchone()
    if row is None:
        raise MissingRecord.for_key(change.table, change.key)
    return int(row[0])


def increment(conn: sqlite3.Connection, change: Change, now: int) -> int:
    path = f"$.{change.data}"
    row = conn.execute(
        f"UPDATE {quote(change.table)} SET "
        "data = json_set(data, ?, coalesce(json_extract(data, ?), 0) + ?), "
        "version = max(?, version + 1) WHERE id = ? RETURNING version",
        (path, path, change.amount, now, change.key),
    ).fetchone()
    if row is None:
        raise MissingRecord.for_key(change.table, change.key)
    return int(row[0])
