"""The entity context: tables by name, as the caller (Nevr's ``EntityContext``).

``entities.create("User", {...})``, ``find_one``, ``find_many``, ``update``, ``delete``,
``upsert`` and ``transaction(fn)`` are the Table API (``Table.get/search/post/put/patch/
delete``) given the running request's context: the caller's grants, attribute permissions, row
rules and ``allow_*`` hooks apply exactly as over REST, through the same checks; there is no
second data path. ``entities.privileged`` is the same API as server code (no grants,
attribute permissions or row rules). Records come back as plain dicts of every attribute
(server code sees them whole; a response shows what the caller may see).

Writes join the running transaction (the request's, or an ``app.transaction()`` block), so
they commit with the rest of the request; outside one each call commits on its own, and
``transaction(fn)`` groups calls into one.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import CharterError, Conflict, NotFound
from ..query.model import Condition, Query
from ..query.sql import compile_select
from ..storage import Storage
from .context import RequestContext, current_context
from .transaction import current_transaction, run_in_transaction

if TYPE_CHECKING:
    from .tables import TableRuntime

__all__ = ["EntityContext", "entities", "register_tables", "tables_of"]

T = TypeVar("T")
Where = Mapping[str, Any] | Query | None

# Storage -> one of its app's table runtimes, weakly both ways: a runtime holds its storage,
# so holding a runtime (or the tables) here would keep every app ever built alive.
_apps: weakref.WeakKeyDictionary[Storage, weakref.ref[TableRuntime]] = weakref.WeakKeyDictionary()


def register_tables(storage: Storage, tables: Mapping[str, TableRuntime]) -> None:
    """Record an app's tables by its storage (``App`` does, once built): the entity context
    finds the tables of the app serving the running request through it."""
    for runtime in tables.values():
        _apps[storage] = weakref.ref(runtime)
        return


def _registered() -> list[Mapping[str, TableRuntime]]:
    return [runtime.tables for ref in list(_apps.values()) if (runtime := ref()) is not None]


def tables_of(storage: Storage | None = None) -> Mapping[str, TableRuntime]:
    """The tables of the app of ``storage``, else of the running request or transaction, else
    of the one app built (or started) in this process."""
    if storage is None:
        context = current_context()
        storage = context.storage if context is not None else None
    if storage is None:
        txn = current_transaction()
        storage = txn.storage if txn is not None else None
    if storage is not None:
        ref = _apps.get(storage)
        found = ref() if ref is not None else None
        if found is not None:
            return found.tables
    live = _registered()
    if len(live) == 1:
        return live[0]
    started = [tables for tables in live if _running(tables)]
    if len(started) == 1:  # as ``Table``'s helpers choose: the one app that is running
        return started[0]
    raise CharterError(
        "entities: no app serves this code; call it in a request or inside "
        "`async with app.transaction():`"
        if live
        else "entities: no App has been built"
    )


def _running(tables: Mapping[str, TableRuntime]) -> bool:
    return any(runtime.running for runtime in tables.values())


class EntityContext:
    """Operations on the tables of the running app, as the caller (or as server code when
    ``privileged``).

    Args:
        privileged: act as server code: no grants, attribute permissions or row rules.
        context: act for this request instead of the running one.
        check_read: ask ``allow_read`` about what is read. By default when acting for a
            request's caller; a privileged route's steps ask it too (server code in a
            request, whose ``allow_*`` hooks still apply: docs/transactions.md).
    """

    __slots__ = ("_check_read", "_context", "_privileged", "_tables")

    def __init__(
        self,
        *,
        privileged: bool = False,
        context: RequestContext | None = None,
        tables: Mapping[str, TableRuntime] | None = None,
        check_read: bool | None = None,
    ) -> None:
        self._privileged = privileged
        self._check_read = check_read
        self._context = context
        self._tables = tables  # the app's, when the caller knows them (a mapped route)

    @property
    def privileged(self) -> EntityContext:
        """The same operations as server code."""
        return EntityContext(privileged=True, context=self._context, tables=self._tables)

    def acting_for(self) -> RequestContext | None:
        """The request whose user the operations act as (None: server code)."""
        if self._privileged:
            return None
        return self._context if self._context is not None else current_context()

    def runtime(self, table: Any) -> TableRuntime:
        """The runtime of ``table`` (a name or a Table class) in the running app."""
        name = table if isinstance(table, str) else getattr(table, "__charter_name__", None)
        tables = self._tables
        if tables is None:
            tables = tables_of(self._context.storage if self._context is not None else None)
        runtime = tables.get(name) if isinstance(name, str) else None
        if runtime is None:
            raise CharterError(f"entities: no table {table!r} in this app")
        return runtime

    def shown(self, table: Any, value: Any) -> Any:
        """A record, or a list of them, as the caller may see it (``returned=False`` and
        attributes its role may not read removed; server code: what any client may see).
        What a response built from these results may show."""
        runtime = self.runtime(table)
        access = runtime.access(self.acting_for())
        if isinstance(value, dict):
            return runtime.shown(value, access)
        if isinstance(value, list):
            return [runtime.shown(v, access) if isinstance(v, dict) else v for v in value]
        return value

    # -- reads ---------------------------------------------------------------------------------

    def _checks_read(self) -> bool:
        if self._check_read is not None:
            return self._check_read
        return self.acting_for() is not None

    async def _readable(self, runtime: TableRuntime, instance: Any) -> bool:
        """Whether the caller's ``allow_read`` lets it read ``instance`` (as REST asks)."""
        if not self._checks_read():
            return True
        try:
            await runtime._hook(instance, "allow_read")
        except CharterError:
            return False
        return True

    async def _found(self, runtime: TableRuntime, query: Query) -> AsyncIterator[Any]:
        """What ``query`` finds that the caller may read: instances, or what its select shapes,
        with ``allow_read`` asked about every record, related ones included (as REST asks). A
        table's own ``search`` is its data path: it is called, and its records are checked."""
        acting = self.acting_for()
        if query.select is not None:
            # A select shapes what a response shows: as over REST (web/rest.py ``query_of``),
            # returned=False attributes do not exist for it, whoever asks.
            selection = Query(select=query.select)
            compile_select(runtime.schema, selection, catalog=runtime.catalog, public=True)
        if "search" in runtime.cls.__charter_overrides__:
            async for item in runtime.cls.search(query, context=acting):
                if not isinstance(item, runtime.cls) or await self._readable(runtime, item):
                    yield item
            return
        async for item in runtime.search(query, check_read=self._checks_read(), context=acting):
            yield item

    async def find_one(self, table: Any, where: Where) -> dict[str, Any] | None:
        """The first record ``where`` finds (by primary key when it names only that), or None.
        401/403 when the caller may not read the table; a record outside its rules or denied
        by ``allow_read`` is not found."""
        runtime = self.runtime(table)
        key = _key_only(runtime, where)
        if key is not _NO_KEY:
            instance = await runtime.cls.get(key, context=self.acting_for())
            if instance is None or not await self._readable(runtime, instance):
                return None
            return dict(instance.to_dict())
        async for item in self._found(runtime, _query(where)):
            return _plain(runtime, item)  # type: ignore[no-any-return]
        return None

    async def find_many(self, table: Any, where: Where = None) -> list[dict[str, Any]]:
        """Every record ``where`` matches (a dict of equalities, or a ``Query`` with its sort,
        limit and select) that the caller may read."""
        runtime = self.runtime(table)
        return [_plain(runtime, item) async for item in self._found(runtime, _query(where))]

    async def _one_key(self, runtime: TableRuntime, where: Where) -> Any:
        """The key of the one record ``where`` finds: 404 when none, 409 when several."""
        key = _key_only(runtime, where)
        if key is not _NO_KEY:
            return key
        keys = []
        query = _query(where)
        if query.select is not None:
            raise CharterError("where names the record to write: it cannot select")
        async for instance in self._found(runtime, query):
            keys.append(instance.get_id())
            if len(keys) > 1:
                raise Conflict(f"where matches more than one {runtime.name} record")
        if not keys:
            raise NotFound(f"no {runtime.name} record matches")
        return keys[0]

    # -- writes --------------------------------------------------------------------------------

    async def exists(self, table: Any, key: Any) -> bool:
        """Whether a record ``key`` is stored (or written by this transaction), whoever may
        read it: what a create of that key would collide with. (A caching table's source is
        not asked.)"""
        runtime = self.runtime(table)
        key = runtime.check_key(key)
        txn = current_transaction()
        if txn is not None:
            return await txn.read(runtime.name, key) is not None
        return await runtime.storage.fetch(runtime.name, key) is not None

    async def create(self, table: Any, data: Mapping[str, Any]) -> dict[str, Any]:
        """A new record (its key generated when absent and the key is a string); 409 when the
        key exists (at commit: a transaction never holds a lock while it runs). The caller
        needs the insert right and may write only its attributes."""
        runtime = self.runtime(table)
        if "post" in runtime.cls.__charter_overrides__:  # the table's own post is its data path
            instance = await runtime.cls.post(dict(data), context=self.acting_for())
        else:  # the default post is the runtime's create: called without the layers between
            instance = await runtime.create(dict(data), self.acting_for())
        return dict(instance.to_dict())

    async def update(self, table: Any, where: Where, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``data`` into the one record ``where`` finds (404 if none, 409 if several);
        the record as it now is."""
        runtime = self.runtime(table)
        key = await self._one_key(runtime, where)
        await runtime.cls.patch(key, dict(data), context=self.acting_for())
        return dict((await runtime.load(key)).to_dict())

    async def upsert(self, table: Any, data: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the record ``data`` names by its key, or create it: what you put is what
        you get."""
        runtime = self.runtime(table)
        key = data.get(runtime.key)
        await runtime.cls.put(dict(data), context=self.acting_for())
        return dict((await runtime.load(key)).to_dict())

    async def delete(self, table: Any, where: Where) -> dict[str, Any]:
        """Delete the one record ``where`` finds (404 if none or outside the caller's rules,
        409 if several); the record as it was."""
        runtime = self.runtime(table)
        key = await self._one_key(runtime, where)
        before = await runtime.load_for(key, self.acting_for(), "delete")
        if not before._exists or not await runtime.cls.delete(key, context=self.acting_for()):
            raise NotFound(f"{runtime.name} {key!r} not found")
        return dict(before.to_dict())

    async def transaction(self, fn: Callable[[EntityContext], Awaitable[T]]) -> T:
        """Run ``fn(entities)`` as one unit: when it raises, none of its writes stay (inside a
        request, the request's earlier writes do); outside a transaction it commits at the
        end."""
        txn = current_transaction()
        if txn is not None:
            with txn.savepoint():
                return await fn(self)
        runtime = next(iter(tables_of().values()), None)
        if runtime is None:
            raise CharterError("entities.transaction: the app has no tables")
        if not runtime.lifecycle.started:
            await runtime.lifecycle.startup()

        async def run(_: Any) -> T:
            return await fn(self)

        result, _ = await run_in_transaction(runtime.storage, run)
        return result


entities = EntityContext()
"""The entity context of the running request, acting as its user."""

_NO_KEY: Any = object()


def _key_only(runtime: TableRuntime, where: Where) -> Any:
    """The primary key when ``where`` names exactly that (a read by key, no query)."""
    if isinstance(where, Mapping) and len(where) == 1 and runtime.key in where:
        return where[runtime.key]
    return _NO_KEY


def _plain(runtime: TableRuntime, item: Any) -> Any:
    """A found record as a dict of every attribute; a select's shape as it is."""
    return dict(item.to_dict()) if isinstance(item, runtime.cls) else item


def _query(where: Where) -> Query:
    if where is None:
        return Query()
    if isinstance(where, Query):
        return where
    if isinstance(where, Mapping):
        return Query([Condition(name, "equals", value) for name, value in where.items()])
    raise CharterError(f"where is a dict of attribute values or a Query, not {where!r}")
