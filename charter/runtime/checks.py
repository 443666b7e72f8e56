"""A table runtime's checks of who is asking (``access.py`` decides, this applies): the
request's access, what it may see of a record, whether a stored record is outside its row
rules (one indexed count compiled with the rule), and whether the record a write leaves is
(``charter.query.match``, related records asked with SQL)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import Forbidden, NotFound
from ..query.match import matches
from ..query.model import Condition, Group, Query
from ..query.resolve import Hop
from ..query.scope import Rule
from ..schema import TableSchema
from ..storage import Storage
from .access import UNRESTRICTED, Access, Rules, forbidden_attributes
from .context import RequestContext

if TYPE_CHECKING:
    from .pending import PendingReads
    from .tables import TableRuntime

__all__ = ["AccessChecks"]

_json_decode = msgspec.json.decode


class AccessChecks:
    """Mixed into ``TableRuntime``: see the module docstring."""

    name: str
    key: str
    schema: TableSchema
    storage: Storage
    reads: PendingReads  # the storage's reads, as the current transaction sees them
    tables: Mapping[str, TableRuntime]
    _rules: Rules | None
    _catalog: dict[str, Any] | None

    async def load(self, key: Any, context: Any = None) -> Any:
        raise NotImplementedError

    def public(self, data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _encode(self, values: dict[str, Any]) -> str:
        raise NotImplementedError

    @property
    def rules(self) -> Rules:
        """The access rules of this runtime's app (one object, shared by its tables)."""
        rules = self._rules
        if rules is None:
            rules = Rules(self.tables)
            for runtime in self.tables.values():
                runtime._rules = rules
        return rules

    def access(self, context: RequestContext | None) -> Access:
        """What ``context``'s user may do (``UNRESTRICTED`` for server code and super users)."""
        if context is None:
            return UNRESTRICTED
        return self.rules.access(context)

    def shown(self, data: dict[str, Any], access: Access) -> dict[str, Any]:
        """What ``access``'s user may see of a record."""
        if access.unrestricted:
            return self.public(data)
        return access.table(self.name).public(data)

    async def outside(self, key: Any, context: RequestContext | None, *, write: bool) -> bool:
        """Whether the stored record ``key`` is outside the user's read rule (and, for a
        ``write``, its write rule): one indexed count, compiled with the rule."""
        access = self.access(context)
        if access.unrestricted or not access.table(self.name).rules:
            return False
        scope = await access.scope(context, self.name, write=write, related=False)
        if scope is None or not scope.rules:
            return False
        query = Query([Condition(self.key, "equals", key)], scope=scope)
        return await self.reads.count(self.schema, query) == 0

    async def load_as(
        self, key: Any, context: RequestContext | None, *, write: bool = False
    ) -> Any:
        """The record ``key`` as ``context``'s user may reach it: an instance that does not
        exist when there is none; 404 when there is one outside its rules (as if absent)."""
        instance = await self.load(key, context)
        if instance._exists and await self.outside(key, context, write=write):
            raise NotFound(f"{self.name} {key!r} not found")
        return instance

    async def _check_written(
        self, context: RequestContext | None, access: Access, record: dict[str, Any]
    ) -> None:
        """403 when the record a write leaves is outside the writer's read and write rules."""
        table = access.table(self.name)
        if not table.rules:
            return
        scope = await access.scope(context, self.name, write=True, related=False)
        rule: Rule = scope.rule(self.name) if scope is not None else ()
        if not rule:
            return
        document = _json_decode(self._encode(record))
        if not await matches(self.catalog, self.schema, rule, document, self._related):
            raise Forbidden(f"the {self.name} record would be outside what you may write")

    async def _related(self, hop: Hop, record: dict[str, Any], condition: Condition) -> bool:
        """Whether a stored record ``hop`` links ``record`` to meets ``condition`` (for a row
        rule checked on a record not stored yet)."""
        rel, target = hop.relationship, hop.target
        if rel.to is not None:
            link: Condition | Group = Condition(rel.to, "equals", record.get(self.key))
        else:
            value = record.get(rel.from_ or "")
            keys = value if isinstance(value, list) else [value]
            keys = [k for k in keys if k is not None]
            if not keys:
                return False
            link = Group("or", [Condition(target.primary_key, "equals", k) for k in keys])
        query = Query([link, condition], limit=1)
        return await self.reads.count(target, query) > 0

    @property
    def catalog(self) -> dict[str, Any]:
        """Every table's schema by name (the app's tables do not change once it is built)."""
        if self._catalog is None:
            self._catalog = {name: rt.schema for name, rt in self.tables.items()}
        return self._catalog

    def _restricted(self, context: Any, right: str, names: Any = None) -> Access:
        """The access of a write's context: 401/403 unless it holds ``right`` on this table,
        403 naming the attributes of ``names`` it may not write."""
        access = self.access(context)
        if access.unrestricted:
            return access
        table = access.table(self.name)
        access.require(context, self.name, right)
        if isinstance(names, dict):
            refused = table.unwritable(names)
            if refused:
                raise forbidden_attributes(self.name, refused)
        return access

    def _unwritable(self, access: Access, old: dict[str, Any]) -> frozenset[str]:
        """The stored attributes a PUT by ``access``'s user keeps (it may not write them)."""
        writable = access.table(self.name).writable
        if writable is None:
            return frozenset()
        return frozenset(n for n in old if n != self.key and n not in writable)
