"""The fixed SQL of one PostgreSQL table: fixed text, so asyncpg prepares each statement once
per connection."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from .postgres_events import with_event
from .postgres_schema import quote

if TYPE_CHECKING:
    from ..schema import TableSchema

__all__ = ["Statements"]


class Statements:
    """The fixed SQL of one table (so each statement is prepared once per connection)."""

    __slots__ = (
        "delete",
        "delete_if",
        "exists",
        "increment",
        "insert",
        "key_type",
        "logged_insert",
        "logged_update_if",
        "logged_upsert",
        "mark_stale",
        "merge",
        "merge_if",
        "select",
        "select_many",
        "update_if",
        "upsert",
        "version",
    )

    def __init__(self, schema: TableSchema) -> None:
        t = quote(schema.name)
        self.key_type = schema.key_type
        # A caching table's reads by id carry its stale mark (a third or fourth column).
        stale = ", stale = version" if schema.cached else ""
        self.select = f"SELECT data, version{stale} FROM {t} WHERE id = $1"
        self.select_many = f"SELECT id, data, version{stale} FROM {t} WHERE id = ANY($1::jsonb[])"
        self.mark_stale = f"UPDATE {t} SET stale = version WHERE id = $1"
        self.version = f"SELECT version FROM {t} WHERE id = $1"
        self.exists = f"SELECT 1 FROM {t} WHERE id = $1"
        values = f"INSERT INTO {t} (id, data, version) VALUES ($1, $2::text::jsonb, $3)"
        self.upsert = (
            f"{values} ON CONFLICT (id) DO UPDATE SET data = excluded.data, "
            f"version = GREATEST(excluded.version, {t}.version + 1) RETURNING version"
        )
        self.insert = f"{values} ON CONFLICT (id) DO NOTHING RETURNING version"
        self.update_if = (
            f"UPDATE {t} SET data = $2::text::jsonb, version = GREATEST($3, version + 1) "
            "WHERE id = $1 AND version = $4 RETURNING version"
        )
        self.delete = f"DELETE FROM {t} WHERE id = $1"
        self.delete_if = f"DELETE FROM {t} WHERE id = $1 AND version = $2 RETURNING version"
        self.increment = (
            f"UPDATE {t} SET data = jsonb_set(data, ARRAY[$2::text], "
            "to_jsonb(COALESCE((data->>$2::text)::numeric, 0) + $3::numeric)), "
            "version = GREATEST($4, version + 1) WHERE id = $1 RETURNING version"
        )
        # ``||`` replaces top-level attributes and keeps a null as null (a shallow merge).
        merge = (
            f"UPDATE {t} SET data = data || $2::text::jsonb, version = GREATEST($3, version + 1)"
        )
        self.merge = f"{merge} WHERE id = $1 RETURNING version"
        self.merge_if = f"{merge} WHERE id = $1 AND version = $4 RETURNING version"

        # The same writes with their event appended, in one statement (postgres_events).
        self.logged_upsert = with_event(self.upsert, 4)
        self.logged_insert = with_event(self.insert, 4)
        self.logged_update_if = with_event(self.update_if, 5)

    def key(self, key: Any) -> Any:
        """``key`` as stored: SQLite's column affinity, made explicit."""
        if self.key_type is int and isinstance(key, str):
            with contextlib.suppress(ValueError):
                return int(key)
        elif self.key_type is not int and isinstance(key, int) and not isinstance(key, bool):
            return str(key)
        return key
