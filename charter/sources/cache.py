"""``Cache``: the read and write paths of one caching table.

Where freshness lives: in the record's version. Every stored record's version is the time of
its last write in ms (``storage.base``), so a record loaded from the source is fresh while
``version + expiration`` is in the future: the check on a hit is one comparison with the clock,
no extra query (``fresh``). ``invalidate`` marks the record stale in the database
(``Storage.mark_stale``: a caching table's ``stale`` column holds the version it was
invalidated at, and reading it by id tells whether that is still the version): an invalidated
record is an expired one, whatever its age, on every worker. The version is left alone (it is
what writes are checked against), and the next write of the record, a refresh included, gives
it a new version, which clears the mark.

A miss, an expired or an invalidated record (``resolve``):

1. joins the load of that id already running in this worker (``Flights``), else starts one;
2. the load takes the id's lock across workers (``Leases``), reads the record again (another
   worker may just have loaded it: then no origin call), calls ``source.get`` bounded by
   ``source_timeout``, stores the record with a ``put`` event (subscribers see a refresh) and
   answers it;
3. an origin failure is 502 ``UPSTREAM_FAILED``, a timeout 504 ``UPSTREAM_TIMEOUT``; nothing
   is stored. ``get`` answering None drops a cached copy and is a 404.

An expired or invalidated record the source lets be served stale
(``allow_stale_while_revalidate``) is answered at once while the same load runs in the
background (one per id, as above).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from ..errors import HttpError, UpstreamFailed, UpstreamTimeout, ValidationError
from ..model.source import CacheEntry, Source
from ..runtime.transaction import Transaction, run_in_transaction
from ..storage import Row
from .flight import Flights
from .lease import Leases
from .policy import CachePolicy

if TYPE_CHECKING:
    from ..runtime.tables import TableRuntime

__all__ = ["Cache", "Loaded"]

log = logging.getLogger("charter.sources")
T = TypeVar("T")
Loaded = tuple[Row | None, bool]
"""A record as a read finds it (None: no such record) and whether it came from the origin."""
_decode = msgspec.json.decode
_LEASE_MARGIN = 5.0  # seconds a worker waits past its own origin timeout for another's load


def _now_ms() -> int:
    return int(time.time() * 1000)


class Cache:
    """One caching table's source, policy and in-flight loads."""

    def __init__(
        self, runtime: TableRuntime, source: Source, policy: CachePolicy, leases: Leases
    ) -> None:
        self.runtime = runtime
        self.name = runtime.name
        self.storage = runtime.storage
        self.source = source
        self.policy = policy
        self.leases = leases
        self.writes = source.writes()
        self.deletes = source.deletes()
        self._expiration = policy.expiration_ms
        self._judges = source.judges_staleness()
        self._flights: Flights[Loaded] = Flights()

    # -- reads -------------------------------------------------------------------------------

    def fresh(self, row: Row) -> bool:
        """Whether a stored record may be served as it is (the hit path: one comparison, and
        the stale mark read with the record)."""
        if row.stale:
            return False
        expiration = self._expiration
        return expiration is None or row.version + expiration > _now_ms()

    async def resolve(self, key: Any, row: Row | None) -> Loaded:
        """The record to answer for ``key`` when storage holds ``row`` (None, or expired)."""
        if row is not None and self._judges and self._may_serve_stale(key, row):
            self._start(key)  # refreshed in the background, one load per id
            return row, False
        return await asyncio.shield(self._start(key))

    def _start(self, key: Any) -> asyncio.Task[Loaded]:
        return self._flights.start(key, lambda: self._load(key))

    def _may_serve_stale(self, key: Any, row: Row) -> bool:
        expires = None if self._expiration is None else row.version + self._expiration
        if row.stale:  # (invalidated: it expired when it was, or now if that was earlier)
            now = _now_ms()
            expires = now if expires is None else min(expires, now)
        assert expires is not None  # (a record that is not fresh expired or was invalidated)
        entry = CacheEntry(
            id=key,
            value=self.runtime.decode(row.data),
            loaded=row.version,
            expires=expires,
            invalidated=row.stale,
        )
        try:
            return bool(self.source.allow_stale_while_revalidate(entry, key))
        except Exception:
            log.exception("%s: allow_stale_while_revalidate failed; not serving stale", self.name)
            return False

    async def _load(self, key: Any) -> Loaded:
        # One bound for the whole load: the wait for another worker's call of this id and
        # then, if that one failed, this worker's own call share it.
        deadline = time.monotonic() + self.policy.timeout + _LEASE_MARGIN
        async with self.leases.held(self.name, key, deadline - time.monotonic()):
            row = await self.storage.fetch(self.name, key)
            if row is not None and self.fresh(row):
                return row, False  # another worker loaded it while this one waited
            left = min(self.policy.timeout, deadline - time.monotonic())
            record = await self._call(self.source.get(key), "get", key, left)
            if record is None:
                if row is not None:  # the origin has it no more
                    await self.drop(key, event=True)
                return None, False
            return await self.store(key, record), True

    # -- storing -------------------------------------------------------------------------------

    def _record(self, key: Any, record: Any) -> dict[str, Any]:
        """The origin's record as the table stores it: checked like a write by server code
        (attributes the table does not declare are left out unless ``extra="allow"``)."""
        runtime = self.runtime
        if not isinstance(record, dict):
            log.warning("%s: source returned %s for %r, not a dict", self.name, type(record), key)
            raise UpstreamFailed(f"the source of {self.name} returned no record for {key!r}")
        if runtime.schema.options.extra == "allow":
            record = dict(record)  # (the source's own dict is left as it is)
        else:
            record = {k: v for k, v in record.items() if k in runtime.schema.fields}
        given = record.get(runtime.key, key)
        if given != key:
            log.warning("%s: source returned the record %r for %r", self.name, given, key)
            raise UpstreamFailed(f"the source of {self.name} returned another record")
        record[runtime.key] = key
        try:
            values = runtime.validate_full(record)
        except ValidationError as exc:
            log.warning("%s: source record %r is invalid: %s", self.name, key, exc.details)
            raise UpstreamFailed(
                f"the source of {self.name} returned an invalid record for {key!r}"
            ) from None
        for spec in runtime.server_fields:
            values.setdefault(spec.name, spec.info.make_default())
        runtime._stamp(values, created=True)
        return runtime._ordered(values)

    async def store(self, key: Any, record: Any) -> Row:
        """Store a record from the origin (its own transaction: a ``put`` event)."""
        raw = self.runtime._encode(self._record(key, record))

        async def write(txn: Transaction) -> None:
            txn.put(self.name, key, raw)
            txn.log(self.name, key, "put", None)

        _, txn = await run_in_transaction(self.storage, write, join=False)
        return Row(raw, txn.versions.get((self.name, key)) or _now_ms())

    async def drop(self, key: Any, *, event: bool = False) -> None:
        """Remove the cached copy (``event``: subscribers see a delete: the origin has none)."""

        async def write(txn: Transaction) -> None:
            txn.delete(self.name, key)
            if event:
                txn.log(self.name, key, "delete", None)

        await run_in_transaction(self.storage, write, join=False)

    async def invalidate(self, key: Any) -> None:
        """``Table.invalidate``: mark the cached copy of ``key`` stale (nothing when there is
        none), so its next read loads it from the source, or serves it stale while it does if
        the source allows. Not an event: the record has not changed."""
        key = self.runtime.check_key(key)
        if not self.runtime.lifecycle.started:
            await self.runtime.lifecycle.startup()
        await self.storage.mark_stale(self.name, key)

    # -- writes through --------------------------------------------------------------------------

    async def put_through(self, key: Any, record: dict[str, Any]) -> None:
        """Write ``record`` to the origin when the source writes: called just before the
        commit of the transaction that stores it (``TableRuntime._through``); a failure
        raises there and nothing is stored."""
        if self.writes:
            document = _decode(self.runtime._encode(record))  # as JSON would carry it
            await self._call(self.source.put(key, document), "put", key)

    async def delete_through(self, key: Any) -> None:
        if self.deletes:
            await self._call(self.source.delete(key), "delete", key)

    # -- the origin ------------------------------------------------------------------------------

    async def _call(
        self, call: Awaitable[T], what: str, key: Any, timeout: float | None = None
    ) -> T:
        """An origin call bounded by ``source_timeout`` (or the ``timeout`` left of a load);
        its failures as 502/504 (an ``HttpError`` it raises on purpose goes through as it
        is)."""
        if timeout is None:
            timeout = self.policy.timeout
        if not inspect.isawaitable(call):  # a plain def: it has answered already
            return call
        if timeout <= 0:  # the load's time went on waiting for another worker's call
            if inspect.iscoroutine(call):
                call.close()  # (never awaited: closed, not left to warn)
            elif isinstance(call, asyncio.Future):
                call.cancel()  # (a task the source started: not left running)
            raise UpstreamTimeout(f"the source of {self.name} did not answer in time")
        try:
            return await asyncio.wait_for(call, timeout)
        except TimeoutError:
            log.warning("%s: source %s of %r took over %s s", self.name, what, key, timeout)
            raise UpstreamTimeout(
                f"the source of {self.name} did not answer within {timeout:g} s"
            ) from None
        except HttpError:
            raise
        except Exception:
            log.warning("%s: source %s of %r failed", self.name, what, key, exc_info=True)
            raise UpstreamFailed(f"the source of {self.name} failed") from None

    async def close(self) -> None:
        """Stop the loads in flight (at shutdown)."""
        await self._flights.cancel_all()
