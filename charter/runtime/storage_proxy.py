"""Kontract's JSON document storage: ``app.storage.<collection>``.

A *collection* is a named key -> JSON document store, kept in its own SQLite table
``storage_<name>`` (created on first use, kept across restarts). ``app.storage.carts`` and
``app.storage["carts"]`` are the same collection. Names are identifiers (a letter, then letters,
digits or ``_``; at most 63 characters) and case-insensitive, as SQLite table names are:
``Carts`` is ``carts``. Anything else, or a name whose table would be one of the app's declared
tables, raises ``ValidationError``.

Keys are strings; documents are anything msgspec encodes to JSON. Every write is one transaction
of the SQLite writer thread, so the read-modify-write methods (``update``, ``push``, ``pop``,
``shift``) are atomic; reads see committed data.

=====================================  =========================================================
``await get(key, default=None)``       the document, or ``default`` when the key is absent
``await set(key, value)``              store ``value``, replacing what was there; ``None``
``await update(key, changes)``         shallow-merge the object ``changes`` into the object
                                       under ``key`` (``{}`` when absent); the merged object
``await delete(key)``                  remove the key; ``True`` when it was there
``await push(key, *values)``           append to the list under ``key`` (``[]`` when absent);
                                       the list's new length
``await pop(key)`` / ``shift(key)``    remove and return the last / first item of the list
                                       (``None`` when empty or absent; nothing is written then)
``await query(match)``                 every ``{"key": k, "value": doc}`` whose document
                                       contains ``match`` (JSON containment, as PostgreSQL's
                                       ``@>``), in the order the keys were first set
``await exec(sql, params=())``         run one SQL statement confined to the collection's
                                       table; the rows it returns, as tuples
=====================================  =========================================================

Order: a key keeps the position it was first stored at (a column ``seq``); ``set``/``update``
of an existing key do not move it. Lists keep insertion order (``push`` appends, ``shift``
takes from the front).

Errors: ``ValidationError`` (422) for bad input — a key that is not a string, a value that is
not JSON, ``update`` of something that is not an object, ``push``/``pop``/``shift`` on something
that is not a list, SQL that fails (syntax, constraint, parameters, limits). ``Forbidden`` (403)
for every statement ``exec`` refuses to run (see below). ``HttpError(501)`` on a backend other
than SQLite.

``exec``: write ``{table}`` for the collection's table; see ``charter.storage.sqlite_confine``
for what a statement may do and how it is confined. Refused statements raise ``Forbidden`` and
change nothing.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from ..errors import CharterError, HttpError, ValidationError
from ..storage import Storage
from ..storage.sqlite_confine import _VTABS, confine_text, run_confined
from .lifecycle import Lifecycle

__all__ = ["Collection", "StorageProxy"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_COLUMNS = ["key", "value", "seq"]
_encode = msgspec.json.encode
_decode = msgspec.json.decode


class StorageProxy:
    """``app.storage.carts`` (or ``app.storage["carts"]``) is the collection ``carts``."""

    def __init__(self, storage: Storage, tables: Iterable[str], lifecycle: Lifecycle) -> None:
        self._storage = storage
        self._tables = tables  # the app's table names: a collection may not take one
        self._lifecycle = lifecycle
        self._collections: dict[str, Collection] = {}

    def __getattr__(self, name: str) -> Collection:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Collection:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError(
                f"invalid collection name {name!r}: a letter, then letters, digits or _ "
                "(at most 63 characters)"
            )
        name = name.lower()
        collection = self._collections.get(name)
        if collection is None:
            table = f"storage_{name}"
            if any(declared.lower() == table for declared in self._tables):
                raise ValidationError(
                    f"collection {name!r} would use table {table!r}, a table of the app"
                )
            collection = Collection(self._storage, self._lifecycle, name)
            self._collections[name] = collection
        return collection


class Collection:
    """One document collection; see the module docstring for every method's semantics."""

    #: A statement that does not write is interrupted after this many seconds (a statement
    #: that writes cannot be: interrupting it would roll back the writer's whole batch).
    time_limit: float = 2.0
    #: At most this many rows in the result of one ``exec``.
    row_limit: int = 100_000
    #: At most this many bytes in one string or blob while ``exec`` runs.
    length_limit: int = 64 * 1024 * 1024

    def __init__(self, storage: Storage, lifecycle: Lifecycle, name: str) -> None:
        self._storage_backend = storage
        self._lifecycle = lifecycle
        self.name = name
        self.table = f"storage_{name}"
        self._quoted = f'"{self.table}"'
        self._vtabs = _VTABS
        self._ready = False

    def __repr__(self) -> str:
        return f"<Collection {self.name!r}>"

    # -- plumbing ------------------------------------------------------------------------------

    def _storage(self) -> Any:
        storage = self._storage_backend
        if not hasattr(storage, "run_write"):
            raise HttpError(501, "the storage proxy needs the SQLite backend")
        return storage

    async def _ensure(self) -> Any:
        storage = self._storage()
        if self._ready:
            return storage
        if not self._lifecycle.started:
            await self._lifecycle.startup()
            storage = self._storage()
        create = (
            f"CREATE TABLE IF NOT EXISTS {self._quoted} (key TEXT PRIMARY KEY NOT NULL, "
            "value TEXT NOT NULL CHECK (json_valid(value)), seq INTEGER NOT NULL)"
        )
        index = f'CREATE INDEX IF NOT EXISTS "{self.table}:seq" ON {self._quoted} (seq)'

        def run(conn: sqlite3.Connection) -> frozenset[str]:
            conn.execute(create)
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({self._quoted})")]
            if columns != _COLUMNS:
                raise CharterError(
                    f"table {self.table!r} exists and is not a storage collection "
                    f"(columns {columns})"
                )
            conn.execute(index)
            # A real table named like a table-valued function would shadow it: not readable.
            shadows = conn.execute(
                "SELECT lower(name) FROM sqlite_master WHERE lower(name) IN "
                "('json_each', 'json_tree')"
            ).fetchall()
            return _VTABS - {row[0] for row in shadows}

        self._vtabs = await storage.run_write(run)
        self._ready = True
        return storage

    async def _write(self, fn: Any) -> Any:
        storage = await self._ensure()
        return await storage.run_write(fn)

    def _put(self, conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute(
            f"INSERT INTO {self._quoted} (key, value, seq) VALUES (?, ?, "
            f"(SELECT coalesce(max(seq), 0) + 1 FROM {self._quoted})) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _load(self, conn: sqlite3.Connection, key: str) -> tuple[bool, Any]:
        row = conn.execute(f"SELECT value FROM {self._quoted} WHERE key = ?", (key,)).fetchone()
        return (True, _decode(row[0])) if row is not None else (False, None)

    # -- documents -----------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        """The document under ``key`` (``default`` when absent)."""
        _check_key(key)
        storage = await self._ensure()
        rows = await storage.execute_read(f"SELECT value FROM {self._quoted} WHERE key = ?", (key,))
        return _decode(rows[0][0]) if rows else default

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``, replacing what was there."""
        _check_key(key)
        data = _to_json(value)
        await self._write(lambda conn: self._put(conn, key, data))

    async def update(self, key: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Shallow-merge ``changes`` into the object under ``key``; the merged object."""
        _check_key(key)
        if not isinstance(changes, Mapping):
            raise ValidationError("update() takes an object of changes")
        # Validate (and normalize, as storing would) the changes before the writer sees them.
        patch = _decode(_to_json(dict(changes)))

        def run(conn: sqlite3.Connection) -> dict[str, Any]:
            _, current = self._load(conn, key)
            if current is None:
                current = {}
            if not isinstance(current, dict):
                raise ValidationError(
                    f"update(): the document under {key!r} is a {_kind(current)}, not an object"
                )
            current.update(patch)
            self._put(conn, key, _to_json(current))
            return current

        result: dict[str, Any] = await self._write(run)
        return result

    async def delete(self, key: str) -> bool:
        """Remove ``key``; False when it was absent."""
        _check_key(key)
        sql = f"DELETE FROM {self._quoted} WHERE key = ?"
        return bool(await self._write(lambda conn: conn.execute(sql, (key,)).rowcount))

    # -- lists ---------------------------------------------------------------------------------

    def _list(self, conn: sqlite3.Connection, key: str, method: str) -> tuple[bool, list[Any]]:
        found, items = self._load(conn, key)
        if not found:
            return False, []
        if not isinstance(items, list):
            raise ValidationError(
                f"{method}(): the document under {key!r} is a {_kind(items)}, not a list"
            )
        return True, items

    async def push(self, key: str, *values: Any) -> int:
        """Append ``values`` to the list under ``key`` (created when absent); its new length."""
        _check_key(key)
        encoded = [_decode(_to_json(value)) for value in values]

        def run(conn: sqlite3.Connection) -> int:
            _, items = self._list(conn, key, "push")
            items.extend(encoded)
            self._put(conn, key, _to_json(items))
            return len(items)

        return int(await self._write(run))

    async def pop(self, key: str) -> Any:
        """Remove and return the last item of the list under ``key`` (None when empty)."""
        _check_key(key)
        return await self._write(self._take(key, "pop", -1))

    async def shift(self, key: str) -> Any:
        """Remove and return the first item of the list under ``key`` (None when empty)."""
        _check_key(key)
        return await self._write(self._take(key, "shift", 0))

    def _take(self, key: str, method: str, index: int) -> Any:
        def run(conn: sqlite3.Connection) -> Any:
            _, items = self._list(conn, key, method)
            if not items:
                return None
            item = items.pop(index)
            self._put(conn, key, _to_json(items))
            return item

        return run

    # -- queries -------------------------------------------------------------------------------

    async def query(self, match: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every ``{"key", "value"}`` whose document contains ``match``, in key order."""
        if not isinstance(match, Mapping):
            raise ValidationError("query() takes an object to match")
        pattern = _decode(_to_json(dict(match)))
        storage = await self._ensure()
        rows = await storage.execute_read(f"SELECT key, value FROM {self._quoted} ORDER BY seq", ())
        out = []
        for key, raw in rows:
            value = _decode(raw)
            if _contains(value, pattern):
                out.append({"key": key, "value": value})
        return out

    async def exec(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run one SQL statement confined to this collection's table; the rows it returns."""
        if not isinstance(sql, str):
            raise ValidationError("exec() takes the SQL as a string")
        if isinstance(params, str | bytes) or not isinstance(params, Sequence | Mapping):
            raise ValidationError("exec() takes parameters as a list or an object")
        bound: Any = dict(params) if isinstance(params, Mapping) else tuple(params)
        statement = confine_text(sql.replace("{table}", self._quoted))

        def run(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return run_confined(
                conn,
                statement,
                bound,
                table=self.table,
                collection=self.name,
                vtabs=self._vtabs,
                time_limit=self.time_limit,
                row_limit=self.row_limit,
                length_limit=self.length_limit,
            )

        return list(await self._write(run))


def _check_key(key: Any) -> None:
    if not isinstance(key, str):
        raise ValidationError(f"a storage key is a string, not {type(key).__name__}")


def _to_json(value: Any) -> str:
    try:
        return _encode(value).decode()
    except (TypeError, ValueError, msgspec.EncodeError) as exc:
        raise ValidationError(f"the value is not JSON: {exc}") from None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__


def _contains(value: Any, match: Any) -> bool:
    """JSON containment, as PostgreSQL's ``@>``: objects by subset, arrays by any element."""
    if isinstance(match, dict):
        return isinstance(value, dict) and all(
            k in value and _contains(value[k], v) for k, v in match.items()
        )
    if isinstance(match, list):
        return isinstance(value, list) and all(any(_contains(v, m) for v in value) for m in match)
    if isinstance(match, bool) or isinstance(value, bool):  # true is not 1 in JSON
        return value is match
    if isinstance(match, int | float) and isinstance(value, int | float):
        return bool(value == match)
    return type(value) is type(match) and bool(value == match)
