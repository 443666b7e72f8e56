"""A table runtime's caching-table paths (SPEC section 10; the machinery is ``charter.sources``,
this applies it to reads and writes in a transaction): whether a read goes through the cache,
the read through it, and a write's pass-through to the origin just before its commit."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import NotFound, ValidationError
from ..storage import Row
from .transaction import Transaction

if TYPE_CHECKING:
    from ..sources.cache import Cache

__all__ = ["CachingTable"]

_json_decode = msgspec.json.decode


class CachingTable:
    """Mixed into ``TableRuntime``: see the module docstring."""

    name: str
    cache: Cache | None

    async def load(self, key: Any, context: Any = None) -> Any:
        raise NotImplementedError

    def _stamp(self, values: dict[str, Any], *, created: bool) -> None:
        raise NotImplementedError

    def _write(
        self, txn: Transaction, instance: Any, record: dict[str, Any], kind: str, event: Any
    ) -> None:
        raise NotImplementedError

    def cache_serves(self, txn: Transaction | None, key: Any, row: Row | None) -> bool:
        """Whether a caching table's read of ``key`` goes through the cache: a miss or an
        expired ``row``, unless the transaction staged a write of the record (its own write,
        version 0 until commit, is what it must read, not the origin's record)."""
        assert self.cache is not None
        if txn is not None and txn.touches(self.name, key):
            return False
        return row is None or not self.cache.fresh(row)

    async def through_cache(
        self, key: Any, row: Row | None, txn: Transaction | None
    ) -> tuple[Row | None, bool]:
        """A caching table's record for a miss or an expired ``row`` (``charter.sources``), and
        whether it came from the origin. The transaction that read ``row`` learns the version
        stored meanwhile, so a write of it in the same transaction does not conflict with the
        load."""
        assert self.cache is not None
        found, loaded = await self.cache.resolve(key, row)
        if txn is not None and found is not row:
            txn._seen[(self.name, key)] = found.version if found is not None else 0
        return found, loaded

    def _through(self, txn: Transaction, key: Any) -> None:
        """A caching table's write of ``key`` goes to the origin just before ``txn`` commits,
        once, as the transaction leaves the record (put, or delete when it is gone): a rolled
        back write (savepoint, atomic flow) never reaches it, and its failure (502/504)
        commits nothing."""
        cache = self.cache
        if cache is None or not (cache.writes or cache.deletes):
            return

        async def write(done: Transaction) -> None:
            row = await done.read(self.name, key)
            if row is None:
                await cache.delete_through(key)
            else:
                await cache.put_through(key, _json_decode(row.data))

        txn.before_commit((self.name, key), write)

    def _add_through(
        self, key: Any, field: str, amount: float
    ) -> Callable[[Transaction], Coroutine[Any, Any, None]]:
        """``add_to`` on a table whose writes pass through: the origin gets the record, so the
        increment is a read through the cache (the record may be only at the origin) and a
        checked write, not a conflict-free increment."""

        async def write_through(txn: Transaction) -> None:
            current = await self.load(key)
            if not current._exists:
                raise NotFound(f"{self.name} {key!r} not found")
            values = current._values()
            value = values.get(field)
            value = 0 if value is None else value
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(
                    f"add_to() cannot add to {self.name}.{field} of {key!r}: "
                    f"it holds {type(value).__name__}, not a number"
                )
            values[field] = value + amount
            self._stamp(values, created=False)
            self._write(txn, current, values, "patch", None)
            self._through(txn, key)

        return write_through
