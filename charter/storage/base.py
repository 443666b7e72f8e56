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

from ..errors import Conflict, NotFound, Unavailable

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
    "DuplicateKey",
    "MissingRecord",
    "Row",
    "Storage",
    "StorageFull",
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


# Storage errors follow the constructor convention of ``charter.errors`` (the message first,
# the rest by keyword); ``for_key`` builds the message that names a record.


class ConflictError(Conflict):
    """A record changed after this transaction read it; the transaction may be retried."""

    retryable = True

    @classmethod
    def for_key(cls, table: str, key: Any) -> ConflictError:
        """The record ``key`` of ``table`` changed since it was read."""
        return cls(f"{table} {key!r} changed concurrently")


class DuplicateKey(Conflict):
    """A create named a primary key that already exists."""

    @classmethod
    def for_key(cls, table: str, key: Any) -> DuplicateKey:
        """A create of ``key`` in ``table``, which holds it already."""
        return cls(f"{table} {key!r} already exists")


class MissingRecord(NotFound):
    """An increment or update named a record that does not exist."""

    @classmethod
    def for_key(cls, table: str, key: Any) -> MissingRecord:
        """An update of ``key`` in ``table``, which does not hold it."""
        return cls(f"{table} {key!r} does not exist")


class StorageFull(Unavailable):
    """503: the database cannot grow (its disk, or a size limit, is full); see Retry-After."""

    default_code = "STORAGE_FULL"
    default_message = "the database is full"


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
