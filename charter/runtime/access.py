"""Who may do what with which table, attribute and row: the one place it is decided (SPEC 6).

A request's ``Access`` comes from its role, once per role (``Rules.access``): per table the
operations its ``Grant`` allows, the ``View`` of what it may read (attributes not listed in
``Grant(attributes=...)`` are hidden, the primary key never is; a relationship is hidden with
its target table or its linking attribute) and the attributes it may write. Server code (no
request context), a super user and every request while auth is off get ``UNRESTRICTED``, a
constant: they pay for nothing here.

Row rules are the table's ``read_filter(cls, user)`` / ``write_filter(cls, user)``
classmethods. ``Access.scope`` asks them for one request and puts them, with the views, on the
query (``charter.query.scope``), so that the compiler ANDs them into the SQL of every read; a
write also checks the record it would leave (``charter.query.match``). A rule that raises
shows and lets write nothing (and is logged): it fails closed.

Refusals: 401 with ``WWW-Authenticate`` when the request is not signed in, else 403.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import CharterError, Forbidden
from ..model.table import maybe_await
from ..query.cache import rule_key
from ..query.model import Condition, Group, Query
from ..query.scope import Rule, Scope, View
from ..schema import TableSchema
from .grants import refuse, require

if TYPE_CHECKING:
    from .context import RequestContext

__all__ = [
    "DELETE",
    "INSERT",
    "READ",
    "UNRESTRICTED",
    "UPDATE",
    "Access",
    "Rules",
    "TableAccess",
    "forbidden_attributes",
]

log = logging.getLogger("charter.access")

READ, INSERT, UPDATE, DELETE = "read", "insert", "update", "delete"
_NOTHING: Rule = (Group("or", []),)  # matches no row: what a failing rule leaves
_generations = itertools.count(1)


class TableLike(Protocol):
    """What the rules read of a table runtime."""

    schema: TableSchema
    cls: Any


@dataclass(frozen=True, slots=True)
class TableAccess:
    """One role's rights on one table.

    Args:
        shown: the attributes it may read (None: all but ``returned=False`` ones).
        writable: the attributes it may write (None: every attribute clients may write).
        view: the compiler's view of the table for this role (None: the whole table).
    """

    table: str
    read: bool
    insert: bool
    update: bool
    delete: bool
    key: str
    hidden: frozenset[str]
    shown: frozenset[str] | None = None
    writable: frozenset[str] | None = None
    view: View | None = None
    rules: bool = False  # the table declares read_filter or write_filter
    links: frozenset[str] = frozenset()  # the relationships it may follow

    @property
    def restricts_attributes(self) -> bool:
        return self.shown is not None

    def public(self, data: dict[str, Any]) -> dict[str, Any]:
        """What this role may see of a record."""
        if self.shown is not None:
            return {k: v for k, v in data.items() if k in self.shown}
        if not self.hidden:
            return data
        return {k: v for k, v in data.items() if k not in self.hidden}

    def sees(self, name: str) -> bool:
        """Whether it may read (and name in a query) an attribute or relationship."""
        if name in self.links:
            return True
        if name in self.hidden:
            return False
        return self.shown is None or name in self.shown

    def unwritable(self, names: Iterable[str]) -> list[str]:
        """The given attribute names this role may not write (the primary key it may name)."""
        if self.writable is None:
            return []
        return sorted(n for n in names if n != self.key and n not in self.writable)


class Access:
    """One role's verdicts over an app's tables; see the module docstring."""

    def __init__(
        self,
        tables: Mapping[str, TableAccess],
        *,
        unrestricted: bool,
        rules: Rules | None = None,
        role: Any = None,
    ) -> None:
        self.tables = tables
        self.unrestricted = unrestricted
        self.role = role  # the Role this access is of (None: unrestricted, or no role)
        self._rules = rules
        self.generation = next(_generations)
        self.views = {n: t.view for n, t in tables.items() if t.view is not None}
        self.ruled = [n for n, t in tables.items() if t.rules]

    def table(self, name: str) -> TableAccess:
        return self.tables[name]

    def require(self, context: RequestContext | None, table: str, right: str) -> TableAccess | None:
        """This role's access to ``table`` (None when unrestricted); 401/403 unless it holds
        ``right`` there."""
        if self.unrestricted:
            return None
        granted = self.tables[table]
        if not getattr(granted, right):
            assert context is not None  # server code is unrestricted: it always holds
            refuse(context, f"{_who(context)} may not {right} {table}")
        return granted

    def require_method(
        self,
        context: RequestContext | None,
        table: str,
        *,
        egroup: str | None,
        perm: int | None,
        right: str,
    ) -> None:
        """401/403 unless this role may call a table's model method: the declared egroup bits
        (``perm``), else the table right its verb implies (``right``)."""
        if self.unrestricted:
            return
        if egroup is not None or perm is not None:
            require(context, egroup=egroup, perm=perm)
        else:
            self.require(context, table, right)

    async def scope(
        self,
        context: RequestContext | None,
        table: str,
        *,
        write: bool = False,
        related: bool = True,
    ) -> Scope | None:
        """The scope of one query of ``table`` for this request: the views, the table's read
        rule (and write rule when ``write``), and, when ``related``, the read rules of the
        other tables a join or a nested select may reach. None when unrestricted."""
        if self.unrestricted or self._rules is None:
            return None
        user = context.user if context is not None else None
        rules: dict[str, Rule] = {}
        names = self.ruled if related else [n for n in self.ruled if n == table]
        for name in names:
            rule = await self._rules.rule(name, user, "read_filter")
            if write and name == table:
                rule = rule + await self._rules.rule(name, user, "write_filter")
            if rule:
                rules[name] = rule
        if write and table not in names and self.tables[table].rules:
            rule = await self._rules.rule(table, user, "write_filter")
            if rule:
                rules[table] = rule
        keys = [(name, rule_key(rule)) for name, rule in rules.items()]
        key = None if any(k is None for _, k in keys) else (self.generation, tuple(keys))
        return Scope(self.views, rules, key)

    async def write_rule(self, context: RequestContext | None, table: str) -> Rule:
        """The write rule of ``table`` for this request (empty when there is none)."""
        if self.unrestricted or self._rules is None or not self.tables[table].rules:
            return ()
        user = context.user if context is not None else None
        return await self._rules.rule(table, user, "write_filter")


class _Unrestricted(Access):
    """Every table whole; tables are looked up on demand (their hidden attributes only)."""

    def __init__(self) -> None:
        super().__init__({}, unrestricted=True)

    def table(self, name: str) -> TableAccess:
        raise CharterError("an unrestricted access has no per-table verdicts")


UNRESTRICTED: Access = _Unrestricted()
"""Server code, super users and every request while auth is off."""


class Rules:
    """The access of each role over one app's tables (cached per role)."""

    def __init__(self, tables: Mapping[str, TableLike]) -> None:
        self.tables = tables
        self._cache: dict[str, tuple[Any, Access]] = {}
        self._nobody: Access | None = None

    def access(self, context: RequestContext | None) -> Access:
        """The request's access: ``UNRESTRICTED`` for server code, super users and auth off."""
        if context is None:
            return UNRESTRICTED
        role = context.role
        if role is None:
            if not context.auth:
                return UNRESTRICTED
            if self._nobody is None:  # auth on without a role: fail closed
                self._nobody = self._build(None)
            return self._nobody
        if role.super_user:
            return UNRESTRICTED
        cached = self._cache.get(role.name)
        if cached is not None and (cached[0] is role or cached[0] == role):
            return cached[1]
        access = self._build(role)
        self._cache[role.name] = (role, access)
        return access

    def _build(self, role: Any) -> Access:
        grants = {name: role.grant(name) if role is not None else None for name in self.tables}
        shown: dict[str, frozenset[str] | None] = {}
        for name, runtime in self.tables.items():
            grant = grants[name]
            schema = runtime.schema
            if grant is None or not grant.read:
                shown[name] = frozenset()
            elif grant.attributes is None:
                shown[name] = None
            else:
                readable = {a for a, r in grant.attributes.items() if "r" in r}
                shown[name] = frozenset(readable | {schema.primary_key})
        tables: dict[str, TableAccess] = {}
        for name, runtime in self.tables.items():
            schema = runtime.schema
            grant = grants[name]
            attributes = shown[name]
            hidden_rels = {
                rel.name
                for rel in schema.relationships.values()
                if not _link_visible(rel, name, shown)
            }
            visible_rels = frozenset(schema.relationships) - hidden_rels
            hidden = schema.hidden | hidden_rels
            view_shown = None if attributes is None else attributes | visible_rels
            writable = None
            if grant is not None and grant.attributes is not None:
                writable = frozenset(a for a, r in grant.attributes.items() if "w" in r)
            tables[name] = TableAccess(
                table=name,
                read=bool(grant and grant.read),
                insert=bool(grant and grant.insert),
                update=bool(grant and grant.update),
                delete=bool(grant and grant.delete),
                key=schema.primary_key,
                hidden=frozenset(hidden),
                shown=attributes,
                writable=writable,
                view=View(view_shown, frozenset(hidden)),
                rules=bool({"read_filter", "write_filter"} & runtime.cls.__charter_overrides__),
                links=visible_rels,
            )
        return Access(tables, unrestricted=False, rules=self, role=role)

    async def rule(self, table: str, user: Any, which: str) -> Rule:
        """``table``'s ``read_filter`` or ``write_filter`` for ``user``, as a tuple of
        conditions; a rule that raises or returns something else matches nothing."""
        cls = self.tables[table].cls
        if which not in cls.__charter_overrides__:
            return ()
        try:
            return _conditions(await maybe_await(getattr(cls, which)(user)))
        except Exception:
            log.exception("%s.%s failed: the request sees no row of it", table, which)
            return _NOTHING


def _link_visible(rel: Any, source: str, shown: Mapping[str, frozenset[str] | None]) -> bool:
    """A relationship is readable when its target is, and so are the attributes linking them."""
    target = shown.get(rel.target)
    if target is not None and not target:
        return False  # the target table is not readable
    here = shown[source]
    if rel.from_ is not None and here is not None and rel.from_ not in here:
        return False
    return rel.to is None or target is None or rel.to in target


def _conditions(value: Any) -> Rule:
    """A rule's value as conditions: None (no restriction), a Condition or Group, a Query of
    conditions, or a list of them."""
    if value is None:
        return ()
    if isinstance(value, Condition | Group):
        return (value,)
    if isinstance(value, Query):
        extra = value.sort or value.select or value.limit is not None or value.offset
        if extra:
            raise CharterError("a row rule is conditions only (no sort, select or paging)")
        if value.operator == "or" and len(value.conditions) > 1:
            return (Group("or", list(value.conditions)),)
        return tuple(value.conditions)
    if isinstance(value, Sequence) and not isinstance(value, str):
        nodes = tuple(value)
        if all(isinstance(n, Condition | Group) for n in nodes):
            return nodes
    raise CharterError(f"a row rule returns a Condition, Group, Query or None, not {value!r}")


def _who(context: RequestContext) -> str:
    name = getattr(context.role, "name", None)
    return f"the role {name!r}" if name else "this request"


def forbidden_attributes(table: str, names: Sequence[str]) -> Forbidden:
    """The 403 of a write naming attributes the role may not write."""
    listed = ", ".join(names)
    return Forbidden(
        f"you may not write {listed} of {table}",
        details=[
            {"loc": ["body", n], "code": "FORBIDDEN", "message": "not writable"} for n in names
        ],
    )
