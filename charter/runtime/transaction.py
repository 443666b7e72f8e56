"""One transaction per request: read committed data, collect writes, commit them at the end.

A transaction never holds the database's write lock while the handler runs. It remembers the
version of every record it read; at commit the backend checks those records did not change in
between (optimistic concurrency) and applies every write atomically. A conflicting transaction
is retried by ``run_in_transaction`` a bounded number of times, then reported as 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import msgspec

from ..storage import Change, ConflictError, Row, Storage
from ..storage.base import DELETE, INCREMENT, INSERT, MERGE, PUBLISH, PUT, MissingRecord
from .contention import hot_records

__all__ = ["Transaction", "current_transaction", "run_in_transaction"]

T = TypeVar("T")
MAX_ATTEMPTS = 10
MAX_BACKOFF = 0.05  # seconds

_decode = msgspec.json.decode
_encode = msgspec.json.encode
_current: ContextVar[Transaction | None] = ContextVar("charter_transaction", default=None)


def current_transaction() -> Transaction | None:
    """The transaction of the running request (or ``app.transaction()`` block), if any."""
    return _current.get()


class Transaction:
    """Reads through, writes buffered until ``commit``."""

    __slots__ = (
        "_after",
        "_changes",
        "_index",
        "_seen",
        "committed",
        "holds_hot",
        "storage",
        "versions",
    )

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._changes: list[Change] = []
        self._index: dict[tuple[str, Any], int] = {}
        self._seen: dict[tuple[str, Any], int] = {}
        self._after: list[Callable[[Transaction], None]] = []
        self.versions: dict[tuple[str, Any], int | None] = {}
        self.committed = False
        self.holds_hot = False  # a re-run holding the records it conflicted on

    @property
    def has_writes(self) -> bool:
        return bool(self._changes)

    async def read(self, table: str, key: Any) -> Row | None:
        """The record as this transaction sees it: its own writes, else committed data."""
        slot = self._index.get((table, key))
        if slot is not None:
            change = self._changes[slot]
            if change.kind == DELETE:
                return None
            if change.kind == MERGE:
                return await self._merged(change)
            if change.kind != INCREMENT and change.data is not None:
                return Row(change.data, 0)
        if not self.holds_hot:
            hot = hot_records(self.storage)
            if hot:
                await hot.wait((table, key))
        row = await self.storage.fetch(table, key)
        self._seen.setdefault((table, key), row.version if row is not None else 0)
        return row

    def seen_version(self, table: str, key: Any) -> int | None:
        return self._seen.get((table, key))

    def saw(self, table: str, key: Any, version: int) -> None:
        """Remember that this transaction read ``version`` of a record by other means than
        ``read`` (a search): a later write of that record is checked against it."""
        self._seen.setdefault((table, key), version)

    def _stage(self, change: Change) -> None:
        slot = self._index.get((change.table, change.key))
        if slot is None:
            self._index[(change.table, change.key)] = len(self._changes)
            self._changes.append(change)
            return
        previous = self._changes[slot]
        if previous.kind == INSERT and change.kind == PUT:
            change.kind = INSERT
        if previous.kind != MERGE:  # (a merge is blind: what replaces it keeps its own check)
            change.expect = previous.expect
        self._changes[slot] = change

    def put(self, table: str, key: Any, data: str, *, insert: bool = False) -> None:
        """Stage a write of the whole record (``insert``: it must not exist yet)."""
        expect = None if insert else self._seen.get((table, key))
        self._stage(Change(INSERT if insert else PUT, table, key, data, expect))

    def delete(self, table: str, key: Any) -> None:
        self._stage(Change(DELETE, table, key, None, self._seen.get((table, key))))

    def merge(self, table: str, key: Any, fields: str) -> None:
        """Stage a conflict-free merge: ``fields`` (a JSON object) set in whatever version of
        the record is current at commit, so concurrent merges of one record never conflict.

        It is not version-checked, even if this transaction read the record: use it only for
        values that do not depend on what was read. At commit a missing record is a 404
        (``MissingRecord``). Merged into a write staged before it, it stays that write.
        """
        slot = self._index.get((table, key))
        if slot is None:
            self._stage(Change(MERGE, table, key, fields))
            return
        previous = self._changes[slot]
        if previous.kind == DELETE:
            raise MissingRecord(message=f"{table} {key!r} does not exist")
        assert previous.data is not None
        document = _decode(previous.data)
        document.update(_decode(fields))
        previous.data = _encode(document).decode()

    async def _merged(self, change: Change) -> Row | None:
        """A record as a staged merge will leave it (if nothing else changes it first)."""
        row = await self.storage.fetch(change.table, change.key)
        self._seen.setdefault((change.table, change.key), row.version if row is not None else 0)
        if row is None:
            return None
        assert change.data is not None
        document = _decode(row.data)
        document.update(_decode(change.data))
        return Row(_encode(document).decode(), row.version)

    def increment(self, table: str, key: Any, field: str, amount: float) -> None:
        """Stage a conflict-free increment, applied to whatever value is current at commit."""
        self._changes.append(Change(INCREMENT, table, key, field, None, amount))

    def log(self, table: str, key: Any, event: str, user: str | None) -> None:
        """Have the change staged last for a record write its event to the event log at commit
        (one event per record and transaction: the record as the transaction leaves it; a
        merge folded into an earlier write keeps that write's type)."""
        for change in reversed(self._changes):
            if change.table == table and change.key == key:
                if change.event is None or event == "delete":
                    change.event, change.user = event, user
                return

    def publish(self, table: str, key: Any, message: str, user: str | None) -> None:
        """Stage a message (JSON) for the subscribers of ``table/key``: an event, no write."""
        self._changes.append(Change(PUBLISH, table, key, message, event="publish", user=user))

    def checked_keys(self) -> list[tuple[str, Any]]:
        """The records whose versions the commit checks (where a conflict can come from)."""
        return [(c.table, c.key) for c in self._changes if c.expect is not None]

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[Transaction]:
        """A block whose writes are undone, and only they, when it raises (the exception goes
        on): what was staged before it stays staged. Reads it made stay checked at commit
        (a conflict on them still re-runs the whole transaction)."""
        changes = [copy.copy(change) for change in self._changes]
        index = dict(self._index)
        after = len(self._after)
        try:
            yield self
        except BaseException:
            self._changes, self._index = changes, index
            del self._after[after:]
            raise

    def after_commit(self, fn: Callable[[Transaction], None]) -> None:
        self._after.append(fn)

    async def commit(self) -> None:
        if self.committed:
            return
        self.committed = True
        if self._changes:
            versions = await self.storage.commit(self._changes)
            for change, version in zip(self._changes, versions, strict=True):
                self.versions[(change.table, change.key)] = version
        for fn in self._after:
            fn(self)


async def run_in_transaction(
    storage: Storage,
    fn: Callable[[Transaction], Awaitable[T]],
    *,
    attempts: int = MAX_ATTEMPTS,
    join: bool = True,
) -> tuple[T, Transaction]:
    """Run ``fn`` in a new transaction (or the current one, nested, when ``join``) and commit it.

    A ``ConflictError`` at commit re-runs ``fn`` from the start in a fresh transaction, after
    a random, growing pause (transactions that lost together would otherwise retry together and
    conflict again), holding the records it lost on so that it goes before newcomers
    (``charter.runtime.contention``).
    """
    outer = _current.get()
    if outer is not None and join:
        return await fn(outer), outer
    contended: list[tuple[str, Any]] = []
    for attempt in range(attempts):
        txn = Transaction(storage)
        token = _current.set(txn)
        try:
            if not contended:
                result = await fn(txn)
                await txn.commit()
                return result, txn
            hot = hot_records(storage, create=True)
            assert hot is not None
            async with hot.hold(contended):
                txn.holds_hot = True
                result = await fn(txn)
                await txn.commit()
                return result, txn
        except ConflictError:
            if attempt == attempts - 1:
                raise
            contended = sorted(set(contended) | set(txn.checked_keys()), key=str)
        finally:
            _current.reset(token)
        await asyncio.sleep(random.uniform(0, min(MAX_BACKOFF, 0.001 * 2**attempt)))
    raise AssertionError("unreachable")
