"""One transaction per request: read committed data and its own writes, collect writes, commit
them at the end.

A transaction never holds the database's write lock while the handler runs. It remembers the
version of every record it read; at commit the backend checks those records did not change in
between (optimistic concurrency) and applies every write atomically. A conflicting transaction
is retried by ``run_in_transaction`` a bounded number of times, then reported as 409.

Writes of one record in one transaction mean what they would mean run one after the other
(statement order): each record has at most one staged write of the whole record (put, insert,
delete) or one staged merge, plus increments that commute with it. A put or delete drops the
increments staged before it (it replaces what they changed); an increment after a put or a
merge that sets the same attribute is folded into it; a merge drops the increments of the
attributes it sets. An increment that is a record's only write stays a blind ``INCREMENT``, so
concurrent ``add_to`` calls never conflict.

Reads see the staged writes: ``read`` (``get``) here, searches through
``charter.runtime.pending``. ``app.transaction()`` is ``transaction_block`` and
``run_transaction`` below: nested in a current transaction, a ``savepoint`` of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import msgspec

from ..errors import CharterError, ValidationError
from ..storage import Change, ConflictError, Row, Storage
from ..storage.base import DELETE, INCREMENT, INSERT, MERGE, PUBLISH, PUT, MissingRecord
from .contention import hot_records
from .lifecycle import Lifecycle

__all__ = [
    "Transaction",
    "current_transaction",
    "run_in_transaction",
    "run_transaction",
    "transaction_block",
]

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
        "_before",
        "_changes",
        "_counters",
        "_index",
        "_seen",
        "committed",
        "holds_hot",
        "storage",
        "versions",
        "wrote",
    )

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._changes: list[Change] = []
        self._index: dict[tuple[str, Any], int] = {}  # a record's whole write or merge
        self._counters: dict[tuple[str, Any], int] = {}  # how many increments a record has
        # The tables written (a search of other tables is the committed read: no cost).
        self.wrote: set[str] = set()
        self._seen: dict[tuple[str, Any], int] = {}
        self._after: list[Callable[[Transaction], None]] = []
        # Work that must succeed for the commit to happen (a caching table's write through to
        # its origin), one per record: the last registered for a record replaces the others.
        self._before: dict[tuple[str, Any], Callable[[Transaction], Awaitable[None]]] = {}
        self.versions: dict[tuple[str, Any], int | None] = {}
        self.committed = False
        self.holds_hot = False  # a re-run holding the records it conflicted on

    @property
    def has_writes(self) -> bool:
        return bool(self._changes)

    async def read(self, table: str, key: Any) -> Row | None:
        """The record as this transaction sees it: its own writes (increments included),
        else committed data."""
        record = (table, key)
        slot = self._index.get(record)
        row: Row | None
        if slot is not None:
            change = self._changes[slot]
            if change.kind == DELETE:
                return None
            if change.kind == MERGE:
                row = await self._merged(change)
            else:
                assert change.data is not None
                row = Row(change.data, 0)
        else:
            if not self.holds_hot:
                hot = hot_records(self.storage)
                if hot:
                    await hot.wait(record)
            row = await self.storage.fetch(table, key)
            self._seen.setdefault(record, row.version if row is not None else 0)
        if row is not None and record in self._counters:
            row = Row(self._incremented(row.data, record), row.version)
        return row

    def _incremented(self, data: str, record: tuple[str, Any]) -> str:
        """A document with the increments staged for ``record`` added in."""
        document = _decode(data)
        for change in self._changes:
            if change.kind == INCREMENT and (change.table, change.key) == record:
                assert change.data is not None
                document[change.data] = _added(change, document.get(change.data))
        return _encode(document).decode()

    def touches(self, table: str, key: Any) -> bool:
        """Whether this transaction staged a write of the record."""
        return (table, key) in self._index or (table, key) in self._counters

    def pending(self, tables: set[str] | frozenset[str]) -> list[Change] | None:
        """The staged writes of ``tables`` (None when there are none): what a read of those
        tables must see applied (``charter.runtime.pending``)."""
        if self.committed or self.wrote.isdisjoint(tables):
            return None
        changes = [c for c in self._changes if c.kind != PUBLISH and c.table in tables]
        return changes or None

    def seen_version(self, table: str, key: Any) -> int | None:
        return self._seen.get((table, key))

    def saw(self, table: str, key: Any, version: int) -> None:
        """Remember that this transaction read ``version`` of a record by other means than
        ``read`` (a search): a later write of that record is checked against it."""
        self._seen.setdefault((table, key), version)

    def _stage(self, change: Change) -> None:
        """Stage a write of the whole record (put, insert, delete): it replaces what was staged
        for the record before it, increments included."""
        record = (change.table, change.key)
        self.wrote.add(change.table)
        if record in self._counters:
            self._drop_increments(record, None)
        slot = self._index.get(record)
        if slot is None:
            self._index[record] = len(self._changes)
            self._changes.append(change)
            return
        previous = self._changes[slot]
        if previous.kind == INSERT and change.kind == PUT:
            change.kind = INSERT
        elif previous.kind == DELETE and change.kind == INSERT and previous.expect:
            # Deleted then created again: the record exists at commit only if the delete's
            # version is still current, so it is a put checked against that version.
            change.kind = PUT
        if previous.kind != MERGE:  # (a merge is blind: what replaces it keeps its own check)
            change.expect = previous.expect
        self._changes[slot] = change

    def _drop_increments(self, record: tuple[str, Any], fields: set[str] | None) -> None:
        """Unstage the increments of ``record`` (of ``fields`` only, unless None): a later
        write replaces what they changed."""
        kept = [
            c
            for c in self._changes
            if c.kind != INCREMENT
            or (c.table, c.key) != record
            or (fields is not None and c.data not in fields)
        ]
        dropped = len(self._changes) - len(kept)
        if not dropped:
            return
        self._changes = kept
        self._index = {
            (c.table, c.key): i for i, c in enumerate(kept) if c.kind not in (INCREMENT, PUBLISH)
        }
        left = self._counters[record] - dropped
        if left:
            self._counters[record] = left
        else:
            del self._counters[record]

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
        (``MissingRecord``). Merged into a write staged before it, it stays that write; it
        replaces the staged increments of the attributes it sets.
        """
        record = (table, key)
        self.wrote.add(table)
        slot = self._index.get(record)
        names = _decode(fields)
        if slot is None:
            self._index[record] = len(self._changes)
            self._changes.append(Change(MERGE, table, key, fields))
        else:
            previous = self._changes[slot]
            if previous.kind == DELETE:
                raise MissingRecord(message=f"{table} {key!r} does not exist")
            assert previous.data is not None
            document = _decode(previous.data)
            document.update(names)
            previous.data = _encode(document).decode()
        if record in self._counters:
            self._drop_increments(record, set(names))

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
        """Stage a conflict-free increment, applied to whatever value is current at commit.

        After a staged put (or a merge that sets ``field``) it is added into that write; after
        a staged delete it is a 404 (``MissingRecord``) at once.
        """
        record = (table, key)
        self.wrote.add(table)
        slot = self._index.get(record)
        if slot is not None:
            previous = self._changes[slot]
            if previous.kind == DELETE:
                raise MissingRecord.for_key(table, key)
            assert previous.data is not None
            document = _decode(previous.data)
            if previous.kind != MERGE or field in document:
                step = Change(INCREMENT, table, key, field, None, amount)
                document[field] = _added(step, document.get(field))
                previous.data = _encode(document).decode()
                return
        self._changes.append(Change(INCREMENT, table, key, field, None, amount))
        self._counters[record] = self._counters.get(record, 0) + 1

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
        index, counters, tables = dict(self._index), dict(self._counters), set(self.wrote)
        after, before = len(self._after), dict(self._before)
        try:
            yield self
        except BaseException:
            self._changes, self._index, self._counters = changes, index, counters
            self.wrote = tables
            del self._after[after:]
            self._before = before
            raise

    def after_commit(self, fn: Callable[[Transaction], None]) -> None:
        self._after.append(fn)

    def before_commit(
        self, record: tuple[str, Any], fn: Callable[[Transaction], Awaitable[None]]
    ) -> None:
        """Run ``fn(txn)`` once, just before the storage commit, for ``record`` (replacing one
        registered for it before). If it raises, nothing is committed and the exception goes
        on; a savepoint's rollback drops those registered inside it."""
        self._before[record] = fn

    async def commit(self) -> None:
        if self.committed:
            return
        try:
            for hook in list(self._before.values()):
                await hook(self)
        except BaseException:
            self.committed = True  # failed: nothing of it may be committed later
            raise
        self.committed = True
        if self._changes:
            versions = await self.storage.commit(self._changes)
            for change, version in zip(self._changes, versions, strict=True):
                self.versions[(change.table, change.key)] = version
        for fn in self._after:
            fn(self)


def _added(change: Change, value: Any) -> Any:
    """``value`` (an attribute's value, None when absent) plus the increment ``change``
    adds: what the database computes at commit."""
    if value is None:
        value = 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(
            f"add_to() cannot add to {change.table}.{change.data} of {change.key!r}: "
            f"it holds {type(value).__name__}, not a number"
        )
    return value + change.amount


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


# -- app.transaction() -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def transaction_block(storage: Storage, owner: Lifecycle) -> AsyncIterator[Transaction]:
    """``async with app.transaction() as tx``: a new transaction committed when the block ends
    (a conflict raises ``Conflict``: a block cannot be re-run); inside a current transaction,
    a savepoint of it: the block's writes are undone if it raises, and the exception goes on."""
    outer = _current.get()
    if outer is not None:
        with outer.savepoint():
            yield outer
        return
    if not owner.started:
        await owner.startup()
    txn = Transaction(storage)
    token = _current.set(txn)
    try:
        yield txn
    finally:
        _current.reset(token)
    await txn.commit()


def run_transaction(
    storage: Storage, owner: Lifecycle, fn: Callable[[], Awaitable[T]], retries: int
) -> Coroutine[Any, Any, T]:
    """``await app.transaction(fn, retries=N)``: ``fn()`` in a new transaction, committed; on a
    conflict at commit it is run again from the start in a fresh transaction, up to ``retries``
    more times (as a request's handler is), then ``Conflict`` (409).

    Inside a current transaction it runs in a savepoint of it. Conflicts show only where the
    outermost transaction commits, so ``retries`` cannot apply there: passing a non-zero value
    raises ``CharterError`` rather than doing nothing (a request's handler is re-run whole on a
    conflict already; retry around the outermost transaction instead). Bad arguments are
    refused at the call, before anything is awaited.
    """
    if not callable(fn):
        raise TypeError(f"app.transaction() takes a function, not {type(fn).__name__}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a whole number >= 0, not {retries!r}")
    return _run_transaction(storage, owner, fn, retries)


async def _run_transaction(
    storage: Storage, owner: Lifecycle, fn: Callable[[], Awaitable[T]], retries: int
) -> T:
    outer = _current.get()
    if outer is not None:
        if retries:
            raise CharterError(
                "app.transaction(retries=...) cannot retry here: it nests in the current "
                "transaction (the request's or an outer block's), whose commit is where a "
                "conflict shows; a request's handler is re-run on conflict already, and an "
                "outer block takes retries= itself"
            )
        with outer.savepoint():
            return await fn()
    if not owner.started:
        await owner.startup()

    async def run(txn: Transaction) -> T:
        return await fn()

    result, _ = await run_in_transaction(storage, run, attempts=retries + 1, join=False)
    return result
