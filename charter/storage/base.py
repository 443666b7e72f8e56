"""The storage contract every backend implements.

A backend stores each table as documents keyed by primary key, with the version (ms since the
epoch, strictly increasing per record) of their last write. Requests never talk to a backend
directly: they read through a ``Transaction`` and hand it a change set to commit at the end.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from ..errors import Conflict, NotFound
from ..redaction import mask_url

if TYPE_CHECKING:
    from ..query.model import Query
    from ..schema import TableSchema

__all__ = [
    "DELETE",
    "INCREMENT",
    "INSERT",
    "MERGE",
    "PUT",
    "Change",
    "ConflictError",
    "Row",
    "Storage",
]

log = logging.getLogger("charter.storage")
PUT, INSERT, DELETE, INCREMENT, MERGE = 1, 2, 3, 4, 5


class Row(NamedTuple):
    """A stored record: its JSON document and its version (and, for a query that selects
    relationships, the JSON of the related records: see ``charter.query.select``)."""

    data: str
    version: int
    related: str | None = None


@dataclass(slots=True)
class Change:
    """One write of a transaction.

    ``expect`` is the version the transaction saw (0: absent); ``None`` writes blindly.
    For INCREMENT, ``data`` is the field name and ``amount`` the step. For MERGE, ``data`` is
    a JSON object of top-level attributes to set (a null sets null) in whatever version is
    current at commit, so concurrent merges of one record never conflict; the record must exist.
    """

    kind: int
    table: str
    key: Any
    data: str | None = None
    expect: int | None = None
    amount: float = 0


class ConflictError(Conflict):
    """A record changed after this transaction read it; the transaction may be retried."""

    retryable = True


class DuplicateKey(Conflict):
    """A create named a primary key that already exists."""

    def __init__(self, table: str, key: Any) -> None:
        super().__init__(f"{table} {key!r} already exists")


class MissingRecord(NotFound):
    """An increment or update named a record that does not exist."""


class Storage(ABC):
    """A storage backend (SQLite embedded, PostgreSQL)."""

    url: str

    @abstractmethod
    async def open(self, schemas: Sequence[TableSchema]) -> None:
        """Connect, create tables and indexes, migrate what changed."""

    @abstractmethod
    async def close(self) -> None:
        """Finish pending commits and release every connection."""

    @abstractmethod
    async def fetch(self, table: str, key: Any) -> Row | None:
        """The committed record, or None."""

    @abstractmethod
    def search(self, schema: TableSchema, query: Query) -> AsyncIterator[Row]:
        """Committed records matching the query, streamed in batches."""

    @abstractmethod
    async def count(self, schema: TableSchema, query: Query) -> int:
        """How many committed records match the query (ignoring limit and offset)."""

    async def search_counted(
        self, schema: TableSchema, query: Query
    ) -> tuple[int, AsyncIterator[Row]]:
        """How many records match (ignoring limit and offset) and the matching records.

        A backend that can should read both from one snapshot, so the count describes the rows.
        """
        return await self.count(schema, query), self.search(schema, query)

    async def explain(self, schema: TableSchema, query: Query) -> dict[str, Any]:
        """The plan of ``query``: its conditions in execution order and how each is served."""
        from ..query.sql import compile_select

        compiled = compile_select(schema, query, catalog=getattr(self, "catalog", None))
        return {"table": schema.name, "conditions": compiled.plan, "sql": compiled.sql}

    @abstractmethod
    async def commit(self, changes: Sequence[Change]) -> list[int | None]:
        """Apply every change atomically; the new version of each (None for deletes).

        Raises ``ConflictError`` when an ``expect`` does not hold, ``DuplicateKey`` when an
        INSERT names an existing key, ``MissingRecord`` when an INCREMENT or a MERGE finds no
        record.
        """


def added_field_json(schema: TableSchema, name: str) -> str:
    """The JSON value that stored records get for a newly declared field (migrations)."""
    info = schema.fields[name].info
    if not info.has_default:
        log.warning(
            "%s.%s was added without a default: existing records get null", schema.name, name
        )
    return msgspec.json.encode(info.make_default() if info.has_default else None).decode()


def open_storage(
    url: str, *, pool_size: int | None = None, pool_timeout: float | None = None
) -> Storage:
    """The backend for a database URL (``sqlite:///path``, ``postgresql://...``).

    Args:
        pool_size: connections per process, for a backend that pools them (PostgreSQL).
        pool_timeout: seconds a request waits for a pooled connection before a 503.
    """
    if url.startswith("sqlite:"):
        from .sqlite import SQLiteStorage

        return SQLiteStorage(url)
    if url.startswith(("postgresql:", "postgres:")):
        try:
            from .postgres import PostgresStorage
        except ImportError as exc:  # asyncpg is the optional ``postgres`` extra
            raise ImportError(
                f"{url.split(':', 1)[0]}:// needs asyncpg: pip install 'charter[postgres]'"
            ) from exc
        return PostgresStorage(url, pool_size=pool_size, pool_timeout=pool_timeout)
    raise ValueError(
        f"unsupported database URL {mask_url(url)!r} (expected sqlite:///path or postgresql://...)"
    )
