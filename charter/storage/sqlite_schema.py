"""Create and migrate SQLite tables and indexes to match the declared schemas.

Each table is ``(id PRIMARY KEY, data TEXT, version INTEGER)`` with the record as a JSON
document, so a new field needs no ALTER: existing documents are given the field's default (a
caching table has one more column, ``stale``: the version its record was invalidated at). A
declared index is on a stored generated column ``"$.field"`` holding
``json_extract(data, '$.field')`` (``query.dialect.index_columns``), followed by ``id``; the
query compiler reads that column for the attribute. A change of the indexed fields rebuilds the
table once at start (SQLite cannot add a stored column in place). A field removed from the
declaration is moved out of the documents into ``_charter_archive`` (nothing is lost). What
each table looked like (its fields and their types, its indexes) is kept in
``_charter_tables``; a field whose type changed has its stored values converted, or the start
is refused (``charter.schema.type_changes``).

Tables are rowid tables, not ``WITHOUT ROWID``. A ``WITHOUT ROWID`` table keeps each row inside
its primary-key b-tree, and a seek that compares a key with a large row's reads that whole row,
overflow pages included: one 9 MB document made point reads of its neighbours 30-40x slower.
A rowid table's b-tree is keyed by the integer rowid, so a document's overflow pages are read
only when that record is. An ``INTEGER`` key is the rowid itself; a ``TEXT`` key costs a seek in
its unique index first (a few microseconds at most; figures in docs/storage.md). Tables of the
previous layout are rebuilt at start.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from ..errors import CharterError
from ..query.dialect import index_columns
from ..schema.type_changes import TypeChanges, field_types
from .base import added_field_json

if TYPE_CHECKING:
    from ..schema import TableSchema

__all__ = ["Statistics", "migrate"]

log = logging.getLogger("charter.storage")


def quote(name: str) -> str:
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


def columns(schema: TableSchema) -> str:
    """The column list of a table: a rowid table (see the module docstring for why), and a
    stored generated column per declared index. The generated columns have no type, so no
    affinity: each holds exactly what ``json_extract`` gives, and compares the same."""
    key_type = "INTEGER" if schema.key_type is int else "TEXT"
    generated = "".join(
        f", {quote(column)} GENERATED ALWAYS AS (json_extract(data, '$.{field}')) STORED"
        for field, column in index_columns(schema).items()
    )
    stale = ", stale INTEGER" if schema.cached else ""
    return (
        f"(id {key_type} PRIMARY KEY NOT NULL, data TEXT NOT NULL, version INTEGER NOT NULL"
        f"{stale}{generated})"
    )


def _has_stale(conn: sqlite3.Connection, table: str) -> bool:
    """Whether ``table`` has the ``stale`` column of a caching table."""
    return any(row[1] == "stale" for row in conn.execute(f"PRAGMA table_info({table})"))


def _migrate_table(conn: sqlite3.Connection, schema: TableSchema) -> None:
    table = quote(schema.name)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} {columns(schema)}")
    row = conn.execute(
        "SELECT fields FROM _charter_tables WHERE name = ?", (schema.name,)
    ).fetchone()
    fields = list(schema.fields)
    if row is not None:
        before = json.loads(row[0])
        _convert_types(conn, TypeChanges(schema, before))
    if (
        _without_rowid(conn, table)
        or _key_column(conn, table) != columns(schema).split()[1]
        or _generated(conn, table) != list(index_columns(schema).values())
    ):
        _rebuild(conn, schema)
    if schema.cached and not _has_stale(conn, table):  # (a table that became a caching one)
        conn.execute(f"ALTER TABLE {table} ADD COLUMN stale INTEGER")
    if row is not None:
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
        conn.execute(f"DROP INDEX {quote(name)}")
    for name, field in wanted.items():
        if name not in existing:
            # id after the value: entries with equal values are in id order, as they were
            # when the WITHOUT ROWID key was each entry's locator, so the total order
            # ``ORDER BY value, id`` (and ``value = ? ORDER BY id``) is walked, not sorted.
            column = quote(index_columns(schema)[field])
            conn.execute(f"CREATE INDEX {quote(name)} ON {table} ({column}, id)")
    recorded = (json.dumps(field_types(schema)), json.dumps(sorted(wanted)))
    before = conn.execute(
        "SELECT fields, indexes FROM _charter_tables WHERE name = ?", (schema.name,)
    ).fetchone()
    if before is None or tuple(before) != recorded:  # (unchanged: a read-only file starts)
        conn.execute(
            "INSERT INTO _charter_tables (name, fields, indexes) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET fields = excluded.fields, "
            "indexes = excluded.indexes",
            (schema.name, *recorded),
        )


def _convert_types(conn: sqlite3.Connection, changes: TypeChanges) -> None:
    """Convert the stored values of the fields whose type changed, or refuse (nothing changed).

    Every record is read and checked before any is written; the caller's transaction makes the
    rewrite all or nothing, and ``BEGIN IMMEDIATE`` keeps other workers out meanwhile. The
    declared indexes are on the documents, so they follow the rewritten values.
    """
    if not changes:
        return
    table = quote(changes.table)
    rewrites: list[tuple[str, str, object]] = []
    for key, data in conn.execute(f"SELECT id, data FROM {table} ORDER BY id"):
        for name, value in changes.check(key, msgspec.json.decode(data)).items():
            rewrites.append((f"$.{name}", value.decode(), key))
    problem = changes.problem()
    if problem is not None:
        raise CharterError(problem)
    now = int(time.time() * 1000)
    conn.executemany(
        f"UPDATE {table} SET data = json_set(data, ?, json(?)), "
        f"version = max({now}, version + 1) WHERE id = ?",
        rewrites,
    )
    if rewrites:
        log.warning(
            "%s: %s changed type; %d stored values converted",
            changes.table,
            ", ".join(changes.changed),
            len(rewrites),
        )


def _key_column(conn: sqlite3.Connection, table: str) -> str:
    """The declared type of the ``id`` column (``INTEGER`` or ``TEXT``)."""
    for row in conn.execute(f"PRAGMA table_info({table})"):
        if row[1] == "id":
            return str(row[2]).upper()
    return ""


def _generated(conn: sqlite3.Connection, table: str) -> list[str]:
    """The names of the table's stored generated columns (``hidden`` 3 in ``table_xinfo``)."""
    return [row[1] for row in conn.execute(f"PRAGMA table_xinfo({table})") if row[6] == 3]


def _without_rowid(conn: sqlite3.Connection, table: str) -> bool:
    """Whether ``table`` has the previous layout: a ``WITHOUT ROWID`` table has no rowid."""
    try:
        conn.execute(f"SELECT rowid FROM {table} LIMIT 0")
    except sqlite3.OperationalError:
        return True
    return False


def _rebuild(conn: sqlite3.Connection, schema: TableSchema) -> None:
    """Copy a table into the current layout, inside the caller's transaction: from
    ``WITHOUT ROWID``, or to the generated columns of the declared indexes.

    SQLite cannot change a table's kind, nor add a stored column, in place: create the new
    table, copy (in id order, so that rowids follow ids), drop the old one (its indexes go with
    it; the caller recreates the declared ones) and rename.
    """
    table = quote(schema.name)
    staging = quote(f"_charter_rebuild {schema.name}")
    conn.execute(f"DROP TABLE IF EXISTS {staging}")
    conn.execute(f"CREATE TABLE {staging} {columns(schema)}")
    kept = "id, data, version" + (", stale" if schema.cached and _has_stale(conn, table) else "")
    try:
        copied = conn.execute(
            f"INSERT INTO {staging} ({kept}) SELECT {kept} FROM {table} ORDER BY id"
        ).rowcount
    except sqlite3.IntegrityError as exc:  # an integer key column holding a non-integer
        raise RuntimeError(
            f"cannot migrate table {schema.name!r} to the rowid layout: {exc} "
            f"(an id that is not an integer?); nothing was changed"
        ) from exc
    conn.execute(f"DROP TABLE {table}")
    conn.execute(f"ALTER TABLE {staging} RENAME TO {table}")
    log.info("%s: %d records copied into the current layout", schema.name, copied)


def _add_field(conn: sqlite3.Connection, schema: TableSchema, name: str) -> None:
    encoded = added_field_json(schema, name)
    conn.execute(
        f"UPDATE {quote(schema.name)} SET data = json_set(data, ?, json(?)) "
        "WHERE json_type(data, ?) IS NULL",
        (f"$.{name}", encoded, f"$.{name}"),
    )


def _archive_field(conn: sqlite3.Connection, schema: TableSchema, name: str) -> None:
    table = quote(schema.name)
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


class Statistics:
    """Keeps SQLite's planner statistics (``sqlite_stat1``) fresh for the declared tables.

    Why: without them SQLite guesses how selective an index is, and an index the query compiler
    does not force (the probe's count, a sort without conditions) may be read the slow way.
    ``PRAGMA optimize`` does not help on SQLite before 3.46: it only re-analyses tables that
    have statistics already. So a table is analysed at open when it has rows but no statistics,
    and again once the writes since its last analysis reach the row count then (at least
    ``MIN_CHANGES``): it is analysed each time it about doubles, a bounded cost per write.
    Up to ``FULL_ROWS`` rows ANALYZE reads every index (~35 ms at 100,000 rows, two indexes);
    above, ``analysis_limit`` makes it sample, so the writer is never held long (the sample
    is the start of each index, a rougher estimate).
    """

    ANALYSIS_LIMIT = 2000
    FULL_ROWS = 250_000
    MIN_CHANGES = 1000

    def __init__(self, conn: sqlite3.Connection, tables: Sequence[str]) -> None:
        self.rows: dict[str, int] = dict.fromkeys(tables, 0)
        self.changes: dict[str, int] = dict.fromkeys(tables, 0)
        analysed = _analysed_rows(conn)
        for table in tables:
            if table in analysed:
                self.rows[table] = analysed[table]
            else:
                count = conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]
                if count:
                    self.analyse(conn, table, count)

    def wrote(self, table: str, count: int = 1) -> None:
        """Count writes to ``table`` (called by the writer thread)."""
        if table in self.changes:
            self.changes[table] += count

    def refresh(self, conn: sqlite3.Connection) -> None:
        """Analyse the tables written enough since their last analysis (outside a transaction)."""
        for table, changed in self.changes.items():
            if changed >= max(self.MIN_CHANGES, self.rows[table]):
                self.analyse(conn, table, self.rows[table] + changed)

    def analyse(self, conn: sqlite3.Connection, table: str, rows: int) -> None:
        """ANALYZE ``table`` (about ``rows`` rows: whole up to FULL_ROWS, else sampled)."""
        limit = 0 if rows <= self.FULL_ROWS else self.ANALYSIS_LIMIT
        try:
            conn.execute(f"PRAGMA analysis_limit = {limit}")
            conn.execute(f"ANALYZE {quote(table)}")
        except sqlite3.Error as exc:  # statistics are an optimisation: never fail a write
            log.warning("could not analyse %s: %s", table, exc)
        self.changes[table] = 0
        self.rows[table] = _analysed_rows(conn).get(table, 0)


def _analysed_rows(conn: sqlite3.Connection) -> dict[str, int]:
    """Each analysed table's row count as ``sqlite_stat1`` has it (none before any ANALYZE)."""
    try:
        stats = conn.execute("SELECT tbl, stat FROM sqlite_stat1").fetchall()
    except sqlite3.OperationalError:  # no table sqlite_stat1 yet
        return {}
    rows: dict[str, int] = {}
    for table, stat in stats:
        head = str(stat or "").split(" ", 1)[0]
        if head.isdigit():
            rows[table] = max(rows.get(table, 0), int(head))
    return rows
