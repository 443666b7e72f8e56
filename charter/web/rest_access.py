"""What a role's access (``charter.runtime.access``) changes in a table's REST resource: which
properties a path may name, the table's description, an ``explain`` plan, and whether a query
reaches related tables (and so needs their row rules)."""

from __future__ import annotations

from typing import Any

from ..query.model import Condition, Group, Query
from ..query.scope import Scope
from ..runtime.access import Access, TableAccess
from ..schema import TableSchema
from ..schema.describe import describe

__all__ = ["RoleFace", "RoleFaces", "masked_plan", "reaches_related"]


class RoleFace:
    """One role's view of one table over REST, computed once per role and table."""

    __slots__ = ("description", "properties", "table", "validation")

    def __init__(self, schema: TableSchema, access: Access) -> None:
        table = access.table(schema.name)
        self.table: TableAccess = table
        self.properties = frozenset(
            [f for f in schema.fields if table.sees(f)]
            + [r for r in schema.relationships if table.sees(r)]
        )
        # Queries are checked against the views alone: rules are the server's, always valid.
        self.validation = Scope(access.views, {}, None)
        self.description = _described(schema, table)


def _described(schema: TableSchema, table: TableAccess) -> dict[str, Any]:
    """``GET /Table`` for a role: what it cannot read is not described."""
    body = describe(schema)
    properties = {k: v for k, v in body["properties"].items() if table.sees(k)}
    body["properties"] = properties
    body["required"] = [r for r in body.get("required", []) if r in properties]
    body["x-indexes"] = [i for i in body["x-indexes"] if table.sees(i)]
    body["x-relationships"] = {k: v for k, v in body["x-relationships"].items() if table.sees(k)}
    return body


def masked_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """An ``explain`` plan as a restricted role sees it: how each of its conditions and each
    row rule is served, not the SQL, its parameters, or what a rule compares."""
    conditions = []
    for entry in plan.get("conditions", []):
        if "rule" in entry:
            entry = {"rule": entry["rule"], "access": entry["access"]}
        conditions.append(entry)
    return {"table": plan.get("table"), "conditions": conditions}


def reaches_related(query: Query) -> bool:
    """Whether ``query`` may read another table (a dotted path, a sort or a select through a
    relationship), so that the other tables' row rules must come with it."""
    if query.select is not None:
        return True
    node = query.sort
    while node is not None:
        if len(node.path) > 1:
            return True
        node = node.next
    return any(_dotted(c) for c in query.conditions)


def _dotted(node: Condition | Group) -> bool:
    if isinstance(node, Group):
        return any(_dotted(c) for c in node.conditions)
    return len(node.path) > 1


class RoleFaces:
    """Each restricted role's ``RoleFace`` of one table, made once (by access generation)."""

    LIMIT = 256  # roles remembered; past it the cache starts again

    def __init__(self, schema: TableSchema) -> None:
        self.schema = schema
        self._faces: dict[int, RoleFace] = {}

    def of(self, access: Access) -> RoleFace:
        face = self._faces.get(access.generation)
        if face is None:
            if len(self._faces) >= self.LIMIT:
                self._faces.clear()
            face = self._faces[access.generation] = RoleFace(self.schema, access)
        return face
