"""The query object model, shared by the URL form and ``Table.search(query)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Condition", "Group", "Query", "Sort"]


@dataclass(slots=True)
class Condition:
    """``attribute comparator value``; a list attribute follows relationships."""

    attribute: str | list[str]
    comparator: str
    value: Any = None

    @property
    def path(self) -> list[str]:
        return [self.attribute] if isinstance(self.attribute, str) else list(self.attribute)


@dataclass(slots=True)
class Group:
    """Conditions joined by one operator."""

    operator: Literal["and", "or"]
    conditions: list[Condition | Group]


@dataclass(slots=True)
class Sort:
    """Sort order; ``next`` breaks ties."""

    attribute: str | list[str]
    descending: bool = False
    next: Sort | None = None

    def chain(self) -> list[Sort]:
        out: list[Sort] = []
        node: Sort | None = self
        while node is not None:
            out.append(node)
            node = node.next
        return out


@dataclass(slots=True)
class Query:
    """A complete query: conditions (joined by ``operator``), sort, select and paging."""

    conditions: list[Condition | Group] = field(default_factory=list)
    sort: Sort | None = None
    select: list[Any] | None = None
    limit: int | None = None
    offset: int | None = None
    explain: bool = False
    enforce_execution_order: bool = False
    operator: Literal["and", "or"] = "and"

    @classmethod
    def coerce(cls, query: Query | dict[str, Any] | None) -> Query:
        """A ``Query`` from a Query, a dict of the same fields, or None."""
        if query is None:
            return cls()
        if isinstance(query, Query):
            return query
        data = dict(query)
        data["conditions"] = [_condition(c) for c in data.get("conditions", [])]
        sort = data.get("sort")
        if isinstance(sort, dict):
            data["sort"] = _sort(sort)
        return cls(**data)


def _condition(raw: Any) -> Condition | Group:
    if isinstance(raw, Condition | Group):
        return raw
    if "conditions" in raw:
        return Group(raw.get("operator", "and"), [_condition(c) for c in raw["conditions"]])
    return Condition(raw["attribute"], raw.get("comparator", "equals"), raw.get("value"))


def _sort(raw: dict[str, Any]) -> Sort:
    nxt = raw.get("next")
    return Sort(raw["attribute"], raw.get("descending", False), _sort(nxt) if nxt else None)
