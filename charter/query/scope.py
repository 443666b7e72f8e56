"""What one reader may see: per table the attributes it can name, and the row rule ANDed into
every read of the table (SPEC section 6).

A ``Scope`` travels on ``Query.scope`` from the runtime (which decides it, in
``charter.runtime.access``) to the compiler, which applies it wherever a table is read: the
searched table, the tables a condition or a sort reaches through a relationship, and nested
selects. Because it is part of the query it is part of the plan cache's key (``cache.py``), and
the rule's conditions are planned with the client's: an indexed rule drives the search.

An attribute the reader may not read is, to the compiler, an attribute that does not exist: a
condition, sort or select on it answers the very message an unknown name gets, so that its
values cannot be found by bisection. A relationship whose target the reader may not read (or
whose linking attribute it may not read) is hidden the same way.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

from .model import Condition, Group

__all__ = ["Rule", "Scope", "View"]

Rule = tuple[Condition | Group, ...]
"""A row rule: conditions that all hold for a row the reader may see (an empty tuple: none)."""


@dataclass(frozen=True, slots=True)
class View:
    """What one reader sees of one table.

    Args:
        shown: the names (attributes and relationships) it may read; None: every name except
            ``hidden``. The primary key is always in it.
        hidden: names it may not read, whatever ``shown`` says (``returned=False`` included).
    """

    shown: frozenset[str] | None = None
    hidden: frozenset[str] = frozenset()

    def sees(self, name: str) -> bool:
        """Whether the reader may read (and so name in a query) ``name``."""
        if name in self.hidden:
            return False
        return self.shown is None or name in self.shown


@dataclass(frozen=True, slots=True)
class Scope:
    """A reader's views and row rules, per table name.

    Args:
        views: per table, what the reader sees; a table missing here is seen whole (less its
            ``returned=False`` attributes).
        rules: per table, the row rule (a table missing here has none).
        key: names everything above for the plan cache: two scopes with equal keys must
            compile every query alike (None: do not cache queries of this scope).
    """

    views: Mapping[str, View] = field(default_factory=dict)
    rules: Mapping[str, Rule] = field(default_factory=dict)
    key: Hashable | None = None

    def view(self, table: str) -> View | None:
        return self.views.get(table)

    def rule(self, table: str) -> Rule:
        return self.rules.get(table, ())
