"""Create and migrate SQLite tables and indexes to match the declared schemas.

Each table is ``(id PRIMARY KEY, data TEXT, version INTEGER)`` with the record as a JSON
document, so a new field needs no ALTER: existing documents are given the field's default. A
declared index is an expression index on ``json_extract(data, '$.field')``, the exact expression
the query compiler emits. A field removed from the declaration is moved out of the documents
into ``_charter_archive`` (nothing is lost). What each table looked like is kept in
``_charter_tables``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import added_field_json

if TYPE_CHECKING:
    from ..schema import TableSchema

__all__ = ["migrate"]

log = logging.getLogger("charter.storage")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def index_name(table: str, field: str) -> str:
    return f"{table}__{field}"


def migrate(conn: sqlite3.Connection, schemas: Sequence[TableSchema]) -> None:
    """Bring the database in line with ``schemas`` in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _charter_tables "
            "(name TEXT PRIMARY KEY, fields TEXT NOT NULL, indexes TEXT NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _charter_archive (tbl TEXT NOT NULL, id ANY, "
            "field TEXT NOT NULL, value TEXT, archived INTEGER NOT NULL)"
        )
        for schema in schemas:
            _migrate_table(conn, schema)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _migrate_table(conn: sqlite3.Connection, schema: TableSchema) -> None:
    table = _quote(schema.name)
    key_type = "INTEGER" if schema.key_type is int else "TEXT"
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {table} "
        f"(id {key_type} PRIMARY KEY NOT NULL, data TEXT NOT NULL, version INTEGER NOT NULL) "
        "WITHOUT ROWID"
    )
    row = conn.execute(
        "SELECT fields FROM _charter_tables WHERE name = ?", (schema.name,)
    ).fetchone()
    fields = list(schema.fields)
    if row is not None:
        before = json.loads(row[0])
        for name in fields:
            if name not in before:
                _add_field(conn, schema, name)
        for name in before:
            if name not in schema.fields:
                _archive_field(conn, schema, name)
    existing = {
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND name LIKE ? ESCAPE '\\'",
            (schema.name, schema.name.replace("_", "\\_") + "\\_\\_%"),
        )
    }
    wanted = {index_name(schema.name, f): f for f in schema.indexes}
    for name in existing - wanted.keys():
        conn.execute(f"DROP INDEX {_quote(name)}")
    for name, field in wanted.items():
        if name not in existing:
            conn.execute(
                f"CREATE INDEX {_quote(name)} ON {table} (json_extract(data, '$.{field}'))"
            )
    conn.execute(
        "INSERT INTO _charter_tables (name, fields, indexes) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET fields = excluded.fields, indexes = excluded.indexes",
        (schema.name, json.dumps(fields), json.dumps(sorted(wanted))),
    )


def _add_field(conn: sqlite3.Connection, schema: TableSchema, name: str) -> None:
    encoded = added_field_json(schema, name)
    conn.execute(
        f"UPDATE {_quote(schema.name)} SET data = json_set(data, ?, json(?)) "
        "WHERE json_type(data, ?) IS NULL",
        (f"$.{name}", encoded, f"$.{name}"),
    )


def _archive_field(conn: sqlite3.Connection, schema: TableSchema, name: str) -> None:
    table = _quote(schema.name)
    path = f"$.{name}"
    conn.execute(
        "INSERT INTO _charter_archive (tbl, id, field, value, archived) "
        "SELECT ?, id, ?, json_extract(data, ?), "
        "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) "
        f"FROM {table} WHERE json_type(data, ?) IS NOT NULL",
        (schema.name, name, path, path),
    )
    conn.execute(f"UPDATE {table} SET data = json_remove(data, ?)", (path,))
    log.warning("%s.%s is no longer declared: values moved to _charter_archive", schema.name, name)
