"""The storage contract every backend implements.

A backend stores each table as documents keyed by primary key, with the version (ms since the
epoch, strictly increasing per record) of their last write. Requests never talk to a backend
directly: they read through a ``Transaction`` and hand it a change set to commit at the end.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from ..errors import Conflict, NotFound, Unavailable
from ..query.sql import compile_select

if TYPE_CHECKING:
    from ..query.model import Query
    from ..schema import TableSchema

__all__ = [
    "DELETE",
    "INCREMENT",
    "INSERT",
    "MERGE",
    "PUBLISH",
    "PUT",
    "Change",
    "ConflictError",
    "DuplicateKey",
    "LoggedEvent",
    "MissingRecord",
    "Row",
    "Storage",
    "StorageFull",
    "as_pending",
]

log = logging.getLogger("charter.storage")
PUT, INSERT, DELETE, INCREMENT, MERGE, PUBLISH = 1, 2, 3, 4, 5, 6


class Row(NamedTuple):
    """A stored record: its JSON document and its version (and, for a query that selects
    relationships, the JSON of the related records: see ``charter.query.select``). ``stale``:
    a caching table's record read by id was invalidated (``Storage.mark_stale``) at this
    version."""

    data: str
    version: int
    related: str | None = None
    stale: bool = False


@dataclass(slots=True)
class Change:
    """One write of a transaction.

    ``expect`` is the version the transaction saw (0: absent); ``None`` writes blindly.
    For INCREMENT, ``data`` is the field name and ``amount`` the step. For MERGE, ``data`` is
    a JSON object of top-level attributes to set (a null sets null) in whatever version is
    current at commit, so concurrent merges of one record never conflict; the record must exist.
    A PUBLISH writes nothing but its event (``data``: the message as JSON).

    ``event`` (``put``, ``patch``, ``delete``, ``publish``) asks the commit to append the
    change's event to the event log, in the same database transaction, carrying the record as
    the write left it and ``user``: no write without its event, no event without its write.
    """

    kind: int
    table: str
    key: Any
    data: str | None = None
    expect: int | None = None
    amount: float = 0
    event: str | None = None
    user: str | None = None


class LoggedEvent(NamedTuple):
    """One entry of the event log: its position (only grows, in commit order), the record's
    table and key, the event type, the record as JSON after the write (the message of a
    publish; None for a delete), its time in ms and who wrote it."""

    position: int
    table: str
    key: Any
    type: str
    data: str | None
    timestamp: int
    user: str | None


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
        compiled = compile_select(schema, query, catalog=getattr(self, "catalog", None))
        return {"table": schema.name, "conditions": compiled.plan, "sql": compiled.sql}

    async def mark_stale(self, table: str, key: Any) -> None:
        """Mark a caching table's record stale at its current version (nothing when there is
        none): ``fetch`` answers it with ``stale`` until a write gives it a new version. The
        version and the document stay as they are, so no reader's version check is affected
        and no event is logged."""
        raise NotImplementedError(f"{type(self).__name__} does not keep caching tables")

    # -- the event log (realtime): written by ``commit``, read by every worker's hub --------

    @abstractmethod
    async def read_events(self, after: int, limit: int) -> list[LoggedEvent]:
        """Logged events past position ``after``, oldest first, at most ``limit``."""

    @abstractmethod
    async def read_events_back(
        self, table: str, key: Any, before: int, limit: int
    ) -> list[LoggedEvent]:
        """The newest events of ``table`` (of one record when ``key`` is not None) before
        position ``before``, newest first, at most ``limit`` (``previousCount``)."""

    @abstractmethod
    async def event_bounds(self) -> tuple[int, int]:
        """``(floor, head)``: every event at or below ``floor`` has been pruned, ``head`` is
        the newest position written."""

    @abstractmethod
    async def first_event_since(self, timestamp: int) -> int | None:
        """The position of the oldest kept event at or after ``timestamp`` (ms), if any."""

    @abstractmethod
    async def prune_events(self, *, older_than: int | None, keep: int | None) -> int:
        """Delete events older than ``older_than`` (ms) and all but the newest ``keep``;
        raise the floor to the newest deleted position. How many were deleted."""

    def on_commit(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Call ``fn()`` on this process's event loop after each commit that logged events
        (the local wake-up of the hub); returns the function that stops it."""
        listeners: list[Callable[[], None]] = self.__dict__.setdefault("_commit_listeners", [])
        listeners.append(fn)

        def stop() -> None:
            if fn in listeners:
                listeners.remove(fn)

        return stop

    def committed_events(self) -> None:
        """Tell the commit listeners that events were logged (call on the event loop)."""
        for fn in list(self.__dict__.get("_commit_listeners", ())):
            try:
                fn()
            except Exception:
                log.exception("a commit listener failed")

    @abstractmethod
    async def search_with(
        self,
        changes: Sequence[Change],
        schema: TableSchema,
        query: Query,
        *,
        rows: bool = True,
        counted: bool = False,
    ) -> tuple[int, list[Row]]:
        """What ``count`` (when ``counted``, else 0) and ``search`` (when ``rows``, else [])
        would answer if ``changes`` (``as_pending``'s) were committed; nothing is written.

        The changes are applied inside a database transaction (SQLite: a savepoint on the
        writer) that is rolled back once the query has run: the very SQL of a committed read
        runs on them, joins, row rules, sorting and paging included. The rows are read whole
        (the database holds the changes only while the query runs).
        """

    @abstractmethod
    async def commit(self, changes: Sequence[Change]) -> list[int | None]:
        """Apply every change atomically; the new version of each (None for deletes).

        Raises ``ConflictError`` when an ``expect`` does not hold, ``DuplicateKey`` when an
        INSERT names an existing key, ``MissingRecord`` when an INCREMENT or a MERGE finds no
        record.
        """


def as_pending(changes: Sequence[Change]) -> list[Change]:
    """A transaction's staged changes as a read applies them (``Storage.search_with``):
    blindly (no version check: conflicts are the commit's to report), an insert as a put (a
    duplicate is the commit's too), no event, no publish. A merge or increment of a record
    that does not exist is skipped by the backend (the record stays absent)."""
    return [
        Change(PUT if c.kind == INSERT else c.kind, c.table, c.key, c.data, None, c.amount)
        for c in changes
        if c.kind != PUBLISH
    ]


def added_field_json(schema: TableSchema, name: str) -> str:
    """The JSON value that stored records get for a newly declared field (migrations)."""
    info = schema.fields[name].info
    if not info.has_default:
        log.warning(
            "%s.%s was added without a default: existing records get null", schema.name, name
        )
    return msgspec.json.encode(info.make_default() if info.has_default else None).decode()
