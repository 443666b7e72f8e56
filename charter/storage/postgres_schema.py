"""Create and migrate PostgreSQL tables and indexes to match the declared schemas.

Each table is ``(id JSONB PRIMARY KEY, data JSONB, version BIGINT)`` (a caching table has one
more column, ``stale BIGINT``: the version its record was invalidated at), as on SQLite with JSONB
for TEXT (the key is JSONB too, so it compares with document attributes without casts; see
``postgres_dialect``). Declared indexes are B-tree expression indexes on exactly the expression
the query compiler emits for the attribute; a GIN index (``jsonb_path_ops``) on ``data`` serves
containment (``@>``). A new field gets its default in existing documents; a removed one is moved
to ``_charter_archive`` (nothing is lost); a field whose type changed has its stored values
converted, or the start is refused (``charter.schema.type_changes``). Everything runs in one
transaction under an advisory lock, so workers starting together migrate once, one after the
other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ..errors import CharterError
from ..schema.type_changes import TypeChanges, field_types
from .base import added_field_json
from .postgres_dialect import POSTGRES

if TYPE_CHECKING:
    from ..schema import TableSchema

__all__ = ["Connection", "index_name", "migrate"]

Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
"""A connection, or one lent by a pool."""

log = logging.getLogger("charter.storage")

_LOCK = 0x43484152  # "CHAR": the advisory lock every Charter migration takes
_MAX_NAME = 63  # PostgreSQL truncates longer identifiers


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _short(name: str) -> str:
    if len(name.encode()) <= _MAX_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return name.encode()[: _MAX_NAME - 11].decode(errors="ignore") + "_" + digest


def index_name(table: str, field: str) -> str:
    """The name of the declared index on ``table.field`` (as on SQLite, shortened if long)."""
    return _short(f"{table}__{field}")


def gin_name(table: str) -> str:
    return _short(f"{table}$gin")


async def migrate(conn: Connection, schemas: Sequence[TableSchema]) -> None:
    """Bring the database in line with ``schemas`` in one transaction."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS _charter_tables "
            "(name TEXT PRIMARY KEY, fields JSONB NOT NULL, indexes JSONB NOT NULL)"
        )
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS _charter_archive (tbl TEXT NOT NULL, id JSONB, "
            "field TEXT NOT NULL, value JSONB, archived BIGINT NOT NULL)"
        )
        for schema in schemas:
            await _migrate_table(conn, schema)


async def _migrate_table(conn: Connection, schema: TableSchema) -> None:
    table = quote(schema.name)
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {table} "
        "(id JSONB PRIMARY KEY, data JSONB NOT NULL, version BIGINT NOT NULL)"
    )
    if schema.cached and not await conn.fetchval(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = $1 AND column_name = 'stale'",
        schema.name,
    ):  # (checked first: ALTER locks the table out even when it has the column)
        await conn.execute(f"ALTER TABLE {table} ADD COLUMN stale BIGINT")
    before = await conn.fetchval(
        "SELECT fields::text FROM _charter_tables WHERE name = $1", schema.name
    )
    fields = list(schema.fields)
    if before is not None:
        known = json.loads(before)
        await _convert_types(conn, TypeChanges(schema, known))
        for name in fields:
            if name not in known:
                await _add_field(conn, schema, name)
        for name in known:
            if name not in schema.fields:
                await _archive_field(conn, schema, name)
    prefix = f"{schema.name}__"
    existing = {
        row[0]
        for row in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = $1",
            schema.name,
        )
    }
    wanted = {index_name(schema.name, f): f for f in schema.indexes}
    recorded = await conn.fetchval(
        "SELECT indexes::text FROM _charter_tables WHERE name = $1", schema.name
    )
    ours = {n for n in existing if n.startswith(prefix)} | set(json.loads(recorded or "[]"))
    for name in (ours & existing) - wanted.keys():
        await conn.execute(f"DROP INDEX {quote(name)}")
    for name, field in wanted.items():
        if name not in existing:
            expression = POSTGRES.index_expression(field)
            # NULLS FIRST: the order of an ascending sort (as on SQLite), read backwards for
            # a descending one.
            await conn.execute(
                f"CREATE INDEX {quote(name)} ON {table} (({expression}) NULLS FIRST)"
            )
    gin = gin_name(schema.name)
    if gin not in existing:
        await conn.execute(f"CREATE INDEX {quote(gin)} ON {table} USING GIN (data jsonb_path_ops)")
    await conn.execute(
        "INSERT INTO _charter_tables (name, fields, indexes) VALUES ($1, $2::text::jsonb, "
        "$3::text::jsonb) ON CONFLICT (name) DO UPDATE SET fields = excluded.fields, "
        "indexes = excluded.indexes",
        schema.name,
        json.dumps(field_types(schema)),
        json.dumps(sorted(wanted)),
    )


async def _convert_types(conn: Connection, changes: TypeChanges) -> None:
    """Convert the stored values of the fields whose type changed, or refuse (nothing changed).

    Every record is read and checked before any is written, inside the migration's transaction
    and advisory lock (so one worker converts, and the others then find the types recorded).
    Expression indexes follow the rewritten documents.
    """
    if not changes:
        return
    table = quote(changes.table)
    rewrites: list[tuple[str, str, str]] = []
    async for key, data in conn.cursor(f"SELECT id::text, data::text FROM {table} ORDER BY id"):
        for name, value in changes.check(json.loads(key), json.loads(data)).items():
            rewrites.append((name, value.decode(), key))
    problem = changes.problem()
    if problem is not None:
        raise CharterError(problem)
    await conn.executemany(
        f"UPDATE {table} SET data = jsonb_set(data, ARRAY[$1::text], $2::text::jsonb), "
        "version = greatest($4::bigint, version + 1) WHERE id = $3::text::jsonb",
        [(*r, int(time.time() * 1000)) for r in rewrites],
    )
    if rewrites:
        log.warning(
            "%s: %s changed type; %d stored values converted",
            changes.table,
            ", ".join(changes.changed),
            len(rewrites),
        )


async def _add_field(conn: Connection, schema: TableSchema, name: str) -> None:
    encoded = added_field_json(schema, name)
    await conn.execute(
        f"UPDATE {quote(schema.name)} SET data = jsonb_set(data, ARRAY[$1::text], "
        "$2::text::jsonb) WHERE NOT jsonb_exists(data, $1::text)",
        name,
        encoded,
    )


async def _archive_field(conn: Connection, schema: TableSchema, name: str) -> None:
    table = quote(schema.name)
    await conn.execute(
        "INSERT INTO _charter_archive (tbl, id, field, value, archived) "
        f"SELECT $1::text, id, $2::text, data->$2::text, $3::bigint FROM {table} "
        "WHERE jsonb_exists(data, $2::text)",
        schema.name,
        name,
        int(time.time() * 1000),
    )
    await conn.execute(
        f"UPDATE {table} SET data = data - $1::text WHERE jsonb_exists(data, $1::text)", name
    )
    log.warning("%s.%s is no longer declared: values moved to _charter_archive", schema.name, name)
