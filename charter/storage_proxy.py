"""Kontract's JSON document storage: ``app.storage.<collection>``.

Each collection is a key -> JSON document store in its own SQLite table. ``push``, ``pop`` and
``shift`` treat the document under a key as a list, in insertion order. ``exec`` runs SQL of
the caller's own, confined to the collection's table by SQLite's authorizer: a statement that
would read or write any other table, attach a database, or run a pragma is refused before it
runs. Write in SQL ``{table}`` for the collection's table; documents are in column ``value``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import Forbidden, HttpError, ValidationError

if TYPE_CHECKING:
    from .app import App

__all__ = ["Collection", "StorageProxy"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_encode = msgspec.json.encode
_decode = msgspec.json.decode

# What a confined statement may do (sqlite3 authorizer action codes).
_TABLE_ACTIONS = {
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_UPDATE,
    sqlite3.SQLITE_INSERT,
    sqlite3.SQLITE_DELETE,
}
_FREE_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


class StorageProxy:
    """``app.storage.carts`` is the collection ``carts`` (created on first use)."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._collections: dict[str, Collection] = {}

    def __getattr__(self, name: str) -> Collection:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Collection:
        collection = self._collections.get(name)
        if collection is None:
            if not _NAME.match(name):
                raise ValueError(f"invalid collection name {name!r}")
            collection = self._collections[name] = Collection(self._app, name)
        return collection


class Collection:
    """One document collection."""

    def __init__(self, app: App, name: str) -> None:
        self._app = app
        self.name = name
        self.table = f"storage_{name}"
        self._quoted = f'"{self.table}"'
        self._ready = False

    def _storage(self) -> Any:
        storage = self._app.database
        if not hasattr(storage, "run_write"):
            raise HttpError(501, "the storage proxy needs the SQLite backend")
        return storage

    async def _write(self, fn: Any) -> Any:
        await self._ensure()
        return await self._storage().run_write(fn)

    async def _ensure(self) -> None:
        if self._ready:
            return
        if not self._app._started:
            await self._app.startup()
        sql = (
            f"CREATE TABLE IF NOT EXISTS {self._quoted} (key TEXT PRIMARY KEY, "
            "value TEXT NOT NULL, seq INTEGER NOT NULL)"
        )
        await self._storage().run_write(lambda conn: conn.execute(sql))
        self._ready = True

    async def get(self, key: str, default: Any = None) -> Any:
        """The document under ``key`` (``default`` when absent)."""
        await self._ensure()
        rows = await self._storage().execute_read(
            f"SELECT value FROM {self._quoted} WHERE key = ?", (key,)
        )
        return _decode(rows[0][0]) if rows else default

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``, replacing what was there."""
        data = _encode(value).decode()
        sql = (
            f"INSERT INTO {self._quoted} (key, value, seq) VALUES (?, ?, "
            f"(SELECT coalesce(max(seq), 0) + 1 FROM {self._quoted})) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        await self._write(lambda conn: conn.execute(sql, (key, data)))

    async def update(self, key: str, changes: dict[str, Any]) -> Any:
        """Merge ``changes`` into the object under ``key``; the merged object."""
        if not isinstance(changes, dict):
            raise ValidationError("update() takes an object of changes")

        def run(conn: sqlite3.Connection) -> Any:
            row = conn.execute(f"SELECT value FROM {self._quoted} WHERE key = ?", (key,)).fetchone()
            current = _decode(row[0]) if row else {}
            if not isinstance(current, dict):
                raise ValidationError(f"the document under {key!r} is not an object")
            current.update(changes)
            self._put(conn, key, current)
            return current

        return await self._write(run)

    def _put(self, conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute(
            f"INSERT INTO {self._quoted} (key, value, seq) VALUES (?, ?, "
            f"(SELECT coalesce(max(seq), 0) + 1 FROM {self._quoted})) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, _encode(value).decode()),
        )

    async def delete(self, key: str) -> bool:
        """Remove ``key``; False when it was absent."""
        sql = f"DELETE FROM {self._quoted} WHERE key = ?"
        return bool(await self._write(lambda conn: conn.execute(sql, (key,)).rowcount))

    def _list_op(self, key: str, op: Any) -> Any:
        def run(conn: sqlite3.Connection) -> Any:
            row = conn.execute(f"SELECT value FROM {self._quoted} WHERE key = ?", (key,)).fetchone()
            items = _decode(row[0]) if row else []
            if not isinstance(items, list):
                raise ValidationError(f"the document under {key!r} is not a list")
            result = op(items)
            self._put(conn, key, items)
            return result

        return run

    async def push(self, key: str, *values: Any) -> int:
        """Append ``values`` to the list under ``key``; its new length."""
        return int(
            await self._write(self._list_op(key, lambda items: items.extend(values) or len(items)))
        )

    async def pop(self, key: str) -> Any:
        """Remove and return the last item of the list under ``key`` (None when empty)."""
        return await self._write(self._list_op(key, lambda items: items.pop() if items else None))

    async def shift(self, key: str) -> Any:
        """Remove and return the first item of the list under ``key`` (None when empty)."""
        return await self._write(self._list_op(key, lambda items: items.pop(0) if items else None))

    async def query(self, match: dict[str, Any]) -> list[dict[str, Any]]:
        """Every ``{"key", "value"}`` whose document contains ``match`` (JSON containment)."""
        await self._ensure()
        rows = await self._storage().execute_read(
            f"SELECT key, value FROM {self._quoted} ORDER BY seq", ()
        )
        out = []
        for key, raw in rows:
            value = _decode(raw)
            if _contains(value, match):
                out.append({"key": key, "value": value})
        return out

    async def exec(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one SQL statement confined to this collection's table; the rows it returns."""
        statement = sql.replace("{table}", self._quoted)
        if not sqlite3.complete_statement(statement.rstrip().rstrip(";") + ";"):
            raise ValidationError("exec() takes one complete SQL statement")

        def authorizer(
            action: int, arg1: str | None, arg2: str | None, db: str | None, _: Any
        ) -> int:
            if action in _FREE_ACTIONS:
                return sqlite3.SQLITE_OK
            if action in _TABLE_ACTIONS and arg1 == self.table and db == "main":
                return sqlite3.SQLITE_OK
            return sqlite3.SQLITE_DENY

        def run(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            conn.set_authorizer(authorizer)
            try:
                return conn.execute(statement, tuple(params)).fetchall()
            except sqlite3.ProgrammingError as exc:
                raise ValidationError(f"exec() refused: {exc}") from None
            except sqlite3.DatabaseError as exc:
                if "not authorized" in str(exc) or "prohibited" in str(exc):
                    raise Forbidden(f"exec() may only use {self.table}: {exc}") from None
                raise ValidationError(f"exec() failed: {exc}") from None
            finally:
                conn.set_authorizer(None)

        return list(await self._write(run))


def _contains(value: Any, match: Any) -> bool:
    """JSON containment, as PostgreSQL's ``@>``."""
    if isinstance(match, dict):
        return isinstance(value, dict) and all(
            k in value and _contains(value[k], v) for k, v in match.items()
        )
    if isinstance(match, list):
        return isinstance(value, list) and all(any(_contains(v, m) for v in value) for m in match)
    return bool(value == match)
