"""The query object model, shared by the URL form and ``Table.search(query)``.

Both forms end up here: the URL parser builds these objects, and ``Query.coerce`` builds them
from a dict of the same fields (HarperDB's ``search_attribute``/``search_type``/``search_value``
spellings are accepted too). The compiler only ever sees this representation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InvalidQuery

if TYPE_CHECKING:
    from .scope import Scope

__all__ = ["COMPARATOR_ALIASES", "Condition", "Group", "Query", "Select", "SelectItem", "Sort"]

COMPARATOR_ALIASES = {
    "eq": "equals",
    "ne": "not_equal",
    "lt": "less_than",
    "le": "less_than_equal",
    "gt": "greater_than",
    "ge": "greater_than_equal",
    "sw": "starts_with",
    "ew": "ends_with",
    "ct": "contains",
    "bt": "between",
    "equal": "equals",
    "not_equals": "not_equal",
    "less_than_or_equal": "less_than_equal",
    "greater_than_or_equal": "greater_than_equal",
}


def _path(attribute: str | list[str] | tuple[str, ...]) -> list[str]:
    if isinstance(attribute, str):
        return attribute.split(".") if "." in attribute else [attribute]
    return list(attribute)


@dataclass(slots=True)
class Condition:
    """``attribute comparator value``; a dotted or list attribute follows relationships."""

    attribute: str | list[str]
    comparator: str = "equals"
    value: Any = None

    @property
    def path(self) -> list[str]:
        return _path(self.attribute)


@dataclass(slots=True)
class Group:
    """Conditions joined by one operator (``"and"`` or ``"or"``)."""

    operator: Literal["and", "or"]
    conditions: list[Condition | Group]


@dataclass(slots=True)
class Sort:
    """Sort order; ``next`` breaks ties."""

    attribute: str | list[str]
    descending: bool = False
    next: Sort | None = None

    @property
    def path(self) -> list[str]:
        return _path(self.attribute)

    def chain(self) -> list[Sort]:
        out: list[Sort] = []
        node: Sort | None = self
        while node is not None:
            out.append(node)
            node = node.next
        return out


@dataclass(slots=True)
class SelectItem:
    """One selected attribute (or ``$id``/``$updatedtime``); ``select`` nests a relationship."""

    name: str
    select: Select | None = None


@dataclass(slots=True)
class Select:
    """What each result is: one bare ``value``, an ``object`` or an ``array`` of attributes."""

    items: list[SelectItem]
    mode: Literal["value", "object", "array"] = "object"

    @classmethod
    def coerce(cls, raw: Any) -> Select | None:
        """A ``Select`` from a string (bare values), a list (objects) or a tuple (arrays).

        List items are attribute names or ``{"name": "brand", "select": [...]}`` for nesting.
        """
        if raw is None or isinstance(raw, Select):
            return raw
        if isinstance(raw, str):
            return cls([SelectItem(raw)], "value")
        if isinstance(raw, list | tuple):
            mode: Literal["object", "array"] = "array" if isinstance(raw, tuple) else "object"
            return cls([_select_item(item) for item in raw], mode)
        if isinstance(raw, dict) and "items" in raw:
            return cls([_select_item(i) for i in raw["items"]], raw.get("mode", "object"))
        raise InvalidQuery(f"cannot select {raw!r}")


def _select_item(raw: Any) -> SelectItem:
    if isinstance(raw, SelectItem):
        return raw
    if isinstance(raw, str):
        return SelectItem(raw)
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        return SelectItem(raw["name"], Select.coerce(raw.get("select")))
    raise InvalidQuery(f"cannot select {raw!r}")


@dataclass(slots=True)
class Query:
    """A complete query: conditions (joined by ``operator``), sort, select and paging.

    ``scope`` is set by Charter for a query read on behalf of a user (``charter.query.scope``:
    the attributes it may name, the row rules ANDed in); server code leaves it None.
    """

    conditions: list[Condition | Group] = field(default_factory=list)
    sort: Sort | None = None
    select: Any = None
    limit: int | None = None
    offset: int | None = None
    explain: bool = False
    enforce_execution_order: bool = False
    operator: Literal["and", "or"] = "and"
    scope: Scope | None = None

    @property
    def selection(self) -> Select | None:
        """``select`` as a ``Select`` (it may be given as a string, list or tuple)."""
        return Select.coerce(self.select)

    @classmethod
    def coerce(cls, query: Query | dict[str, Any] | None) -> Query:
        """A ``Query`` from a Query, a dict of the same fields, or None."""
        if query is None:
            return cls()
        if isinstance(query, Query):
            return query
        if not isinstance(query, dict):
            raise InvalidQuery(f"a query is a Query or a dict, not {type(query).__name__}")
        data = dict(query)
        unknown = set(data) - set(cls.__dataclass_fields__) | ({"scope"} & set(data))
        if unknown:
            raise InvalidQuery(f"unknown query properties: {sorted(unknown)}")
        data["conditions"] = [_condition(c) for c in data.get("conditions") or []]
        sort = data.get("sort")
        if isinstance(sort, dict):
            data["sort"] = _sort(sort)
        elif isinstance(sort, list):
            chain = [_sort(s) if isinstance(s, dict) else s for s in sort]
            for node, nxt in itertools.pairwise(chain):
                node.next = nxt
            data["sort"] = chain[0] if chain else None
        return cls(**data)


def _condition(raw: Any) -> Condition | Group:
    if isinstance(raw, Condition | Group):
        return raw
    if not isinstance(raw, dict):
        raise InvalidQuery(f"a condition is a Condition, a Group or a dict, not {raw!r}")
    if "conditions" in raw:
        return Group(raw.get("operator", "and"), [_condition(c) for c in raw["conditions"]])
    attribute = raw.get("attribute", raw.get("search_attribute"))
    if attribute is None:
        raise InvalidQuery(f"a condition names no attribute: {raw!r}")
    comparator = str(raw.get("comparator", raw.get("search_type", "equals")))
    return Condition(attribute, comparator, raw.get("value", raw.get("search_value")))


def _sort(raw: dict[str, Any]) -> Sort:
    nxt = raw.get("next")
    return Sort(raw["attribute"], raw.get("descending", False), _sort(nxt) if nxt else None)
