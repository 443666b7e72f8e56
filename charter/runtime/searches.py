"""A table runtime's searches: a query as the caller may run it (its read right, views and row
rules compiled into the SQL), the records it streams (as instances, or shaped by its ``select``
with related records in the same statement), each read by the current transaction as ``get``
reads, and ``allow_read`` applied to each when a request asks."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from ..errors import HttpError
from ..query.model import Query
from ..storage import Row
from .access import READ
from .checks import AccessChecks
from .context import RequestContext
from .lifecycle import Lifecycle
from .projection import Projector
from .transaction import Transaction

__all__ = ["TableSearch"]

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.decode


class TableSearch(AccessChecks):
    """Mixed into ``TableRuntime``: see the module docstring."""

    lifecycle: Lifecycle
    cls: Any

    def instance(self, key: Any, row: Row | None, context: Any = None) -> Any:
        raise NotImplementedError

    def _txn(self) -> Transaction | None:
        raise NotImplementedError

    async def _hook(self, instance: Any, hook: str) -> None:
        raise NotImplementedError

    async def search(
        self,
        query: Query | dict[str, Any] | None,
        *,
        check_read: bool = False,
        context: RequestContext | None = None,
    ) -> AsyncIterator[Any]:
        """Records matching ``query``: instances, or what its ``select`` shapes (related records
        included, in the same SQL statement), or its plan when ``explain``.

        Args:
            check_read: apply the ``allow_read`` hooks to every record, related ones included
                (what a request does); a denied record is left out.
            context: search as this request's user (its read right, views and row rules);
                None: server code, unrestricted.
        """
        compiled = Query.coerce(query)
        if not self.lifecycle.started:
            await self.lifecycle.startup()
        access = self.access(context)
        if not access.unrestricted and compiled.scope is None:
            access.require(context, self.name, READ)
            scope = await access.scope(context, self.name)
            compiled = dataclasses.replace(compiled, scope=scope)
        if compiled.explain:
            yield await self.storage.explain(self.schema, compiled)
            return
        selection = compiled.selection
        projector = None
        if selection is not None:
            allow = self._allows if check_read else None
            projector = Projector(self.catalog, self.schema, selection, allow, access)
        hooked = check_read and "allow_read" in self.cls.__charter_overrides__
        # Every record read inside a transaction is version-checked if the transaction then
        # writes it, whichever API read it: a search is a read like ``get``. A record the
        # transaction wrote comes back with version 0 (``charter.runtime.pending``).
        txn = self._txn()
        async for row in self.reads.search(self.schema, compiled):
            data = _json_decode(row.data)
            key = data.get(self.key)
            if txn is not None and row.version and not txn.committed:
                txn.saw(self.name, key, row.version)
            instance = self.instance(key, row)
            if hooked:
                try:
                    await self._hook(instance, "allow_read")
                except HttpError:
                    continue
            yield instance if projector is None else await projector(data, row.version, row.related)

    async def _allows(self, table: str, doc: dict[str, Any], version: int) -> bool:
        """Whether ``table``'s ``allow_read`` lets the current user read a related record."""
        runtime = self.tables[table]
        if "allow_read" not in runtime.cls.__charter_overrides__:
            return True
        instance = runtime.instance(doc.get(runtime.key), Row(_json_encode(doc).decode(), version))
        try:
            await runtime._hook(instance, "allow_read")
        except HttpError:
            return False
        return True
