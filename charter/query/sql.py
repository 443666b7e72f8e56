"""Compile a ``Query`` into parameterised SQL, with a planner.

The planner orders AND-ed conditions by estimated selectivity (equality on an indexed attribute,
then a range on one, then everything else), unless ``enforce_execution_order``; the first
condition that an index serves drives the search, and the others are kept off their indexes
(``Dialect.no_index``) so the database follows the plan that ``explain`` reports. Dotted
attributes follow relationships as ``IN``/``EXISTS`` subqueries; nested selects become JSON
subqueries (``select.py``): one statement per request, whatever the size of the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidQuery
from ..limits import MAX_GROUP_DEPTH, MAX_QUERY_CONDITIONS, MAX_SORT_KEYS
from ..schema import TableSchema
from .dialect import SQLITE, Dialect
from .model import Condition, Group, Query, Sort
from .operators import Operator, operator
from .related_sql import related_column
from .resolve import Catalog, Hop, Target, resolve, typed_value
from .scope import Rule, Scope

__all__ = [
    "SQLITE",
    "CompiledQuery",
    "Dialect",
    "check_conditions",
    "check_sort",
    "compile_count",
    "compile_select",
    "plan_select",
]

EQUALITY, RANGE, OR_INDEXED, SCAN = 0, 1, 2, 3
WALK_LIMIT = 1000  # a page this deep or shallower may be read by walking the sort's index
_ACCESS = {EQUALITY: "index", RANGE: "index", OR_INDEXED: "index", SCAN: "scan"}


@dataclass(slots=True)
class CompiledQuery:
    """SQL text, its bound parameters, and the plan ``explain(true)`` reports."""

    sql: str
    params: list[Any]
    plan: list[dict[str, Any]] = field(default_factory=list)
    related: bool = False  # a third column holds the nested selects' related records
    threshold: int = 0  # for a probe: the count at which the walking plan wins


@dataclass(slots=True)
class _Step:
    node: Condition | Group
    rank: int
    index: str | None
    trusted: bool = False  # a row rule's condition: the server's, not the reader's


class Compiler:
    """Compiles one query against one table; aliases are numbered ``t0`` (the table), ``t1``...

    With a ``scope`` (``scope.py``) the reader names only what its views show, and each
    table's row rule is ANDed in wherever that table is read. A rule's own conditions are
    *trusted*: they may name anything, and the tables they reach are read whole.
    """

    def __init__(
        self,
        schema: TableSchema,
        catalog: Catalog | None,
        dialect: Dialect,
        public: bool,
        describing: bool = True,
        scope: Scope | None = None,
    ) -> None:
        self.schema = schema
        self.catalog: Catalog = catalog if catalog is not None else {schema.name: schema}
        self.d = dialect
        self.scope = scope
        self.public = public or scope is not None
        self.describing = describing  # build explain's full descriptions (else only access)
        self.params: list[Any] = []
        self._aliases = 0

    def alias(self) -> str:
        self._aliases += 1
        return f"t{self._aliases}"

    def resolve(
        self, schema: TableSchema, path: list[str], what: str, trusted: bool = False
    ) -> Target:
        if trusted:
            return resolve(self.catalog, schema, path, public=False, what=what)
        views = self.scope.views if self.scope is not None else None
        return resolve(self.catalog, schema, path, public=self.public, what=what, views=views)

    def shows(self, schema: TableSchema, name: str) -> bool:
        """Whether the reader may name ``name`` (an attribute or relationship) of ``schema``."""
        view = self.scope.view(schema.name) if self.scope is not None else None
        return view is None or view.sees(name)

    def rule(self, table: str) -> Rule:
        """The reader's row rule on ``table`` (empty without a scope)."""
        return self.scope.rule(table) if self.scope is not None else ()

    def ruled(self, table: str, alias: str, where: str) -> str:
        """``where`` with ``table``'s row rule ANDed in (its conditions trusted)."""
        rule = self.rule(table)
        if not rule:
            return where
        schema = self.catalog[table]
        parts = [self.node(c, alias, False, trusted=True, schema=schema) for c in rule]
        return " AND ".join([where, *parts]) if where else " AND ".join(parts)

    # -- columns ---------------------------------------------------------------------------------

    def column(self, target: Target, alias: str) -> str:
        if target.is_key:
            return self.d.key(alias)
        if target.is_version:
            return f"{alias}.version"
        if target.indexed:
            return self.d.indexed_attribute(alias, target.schema, target.path[0])
        return self.d.attribute(alias, list(target.path))

    def follow(
        self,
        hops: tuple[Hop, ...],
        alias: str,
        leaf: Callable[[str], str],
        bare: bool,
        trusted: bool = False,
    ) -> str:
        """``leaf`` (a condition on the last table) reached from ``alias`` through ``hops``;
        each table reached is read under the reader's row rule (unless ``trusted``)."""
        if not hops:
            return leaf(alias)
        hop, inner = hops[0], self.alias()
        rel = hop.relationship
        table = f"{self.d.table(hop.target.name)} AS {inner}"
        where = self.follow(hops[1:], inner, leaf, False, trusted)
        if not trusted:
            where = self.ruled(hop.target.name, inner, where)
        if rel.to is not None:
            outer = self.d.key(alias)
            outer = self.d.no_index(outer) if bare else outer
            column = self.d.field(inner, hop.target, rel.to)
            return f"{outer} IN (SELECT {column} FROM {table} WHERE {where})"
        assert rel.from_ is not None
        fk = self.d.field(alias, hop.source, rel.from_)
        if not rel.many:
            outer = self.d.no_index(fk) if bare else fk
            # The selected key must carry no column affinity, or the index on ``fk`` is unusable.
            key = self.d.no_index(self.d.key(inner))
            return f"{outer} IN (SELECT {key} FROM {table} WHERE {where})"
        k = self.alias()
        return (
            f"EXISTS (SELECT 1 FROM {self.d.elements(fk, k)} JOIN {table} "
            f"ON {self.d.key(inner)} = {k}.value WHERE {where})"
        )

    # -- conditions ------------------------------------------------------------------------------

    def _operator(self, node: Condition) -> Operator:
        op = operator(node.comparator) if isinstance(node.comparator, str) else None
        if op is None:
            raise InvalidQuery(f"unknown comparator {node.comparator!r}")
        return op

    def _target(
        self, node: Condition, trusted: bool = False, schema: TableSchema | None = None
    ) -> Target:
        target = self.resolve(schema or self.schema, node.path, "condition", trusted)
        final = target.schema
        if final.options.strict_queries and not target.indexed and not trusted:
            raise InvalidQuery(
                f"{target.name} is not indexed and {final.name} is declared strict_queries"
            )
        return target

    def condition(
        self,
        node: Condition,
        alias: str,
        no_index: bool,
        trusted: bool = False,
        schema: TableSchema | None = None,
    ) -> str:
        target = self._target(node, trusted, schema)
        op = self._operator(node)
        if op.name == "between" and (
            not isinstance(node.value, list | tuple) or len(node.value) != 2
        ):
            raise InvalidQuery(f"between on {target.name} takes two values")
        is_list = target.is_list

        def leaf(inner: str) -> str:
            col = self.column(target, inner)
            if no_index and not target.hops:
                col = self.d.no_index(col)
            if is_list and node.value is not None:
                e = self.alias()
                value = self._value(target, op, node.value, element=True)
                render = operator("equals").render if op.name == "contains" else op.render  # type: ignore[union-attr]
                sql, params = render(self.d, f"{e}.value", value)
                self.params.extend(params)
                return f"EXISTS (SELECT 1 FROM {self.d.elements(col, e)} WHERE {sql})"
            if op.text and not target.is_text:  # one text for a number on every backend
                col = self.d.bool_text(col) if target.is_boolean else self.d.as_text(col)
            sql, params = op.render(self.d, col, self._value(target, op, node.value))
            self.params.extend(params)
            return sql

        return self.follow(target.hops, alias, leaf, no_index, trusted)

    def _value(self, target: Target, op: Operator, value: Any, element: bool = False) -> Any:
        text = op.text and not element
        if op.name == "between":
            return [typed_value(target, v, element=element) for v in value]
        return typed_value(target, value, element=element, text=text)

    def node(
        self,
        node: Condition | Group,
        alias: str,
        no_index: bool,
        trusted: bool = False,
        schema: TableSchema | None = None,
    ) -> str:
        if isinstance(node, Condition):
            return self.condition(node, alias, no_index, trusted, schema)
        if not isinstance(node, Group) or node.operator not in ("and", "or"):
            raise InvalidQuery(f"not a condition: {node!r}")
        if not node.conditions:
            return "TRUE" if node.operator == "and" else "FALSE"
        joiner = " AND " if node.operator == "and" else " OR "
        return (
            "("
            + joiner.join(self.node(c, alias, no_index, trusted, schema) for c in node.conditions)
            + ")"
        )

    # -- planning --------------------------------------------------------------------------------

    def rank(self, node: Condition | Group, trusted: bool = False) -> tuple[int, str | None]:
        """Estimated selectivity class of a condition, and the index that serves it."""
        if isinstance(node, Group):
            ranks = [self.rank(c, trusted) for c in node.conditions] or [(SCAN, None)]
            if node.operator == "and":
                return min(ranks)
            return (OR_INDEXED, None) if all(r <= RANGE for r, _ in ranks) else (SCAN, None)
        target = self._target(node, trusted)
        op = self._operator(node)
        if target.hops:
            hop = target.hops[0]
            rel = hop.relationship
            if rel.to is not None:
                return RANGE, self.schema.primary_key
            if not rel.many and rel.from_ in self.schema.indexes:
                return RANGE, rel.from_
            return SCAN, None
        if not target.indexed or target.is_list or op.index is None:
            return SCAN, None
        if op.text and not target.is_text:  # compared as text: the index does not apply
            return SCAN, None
        index = target.path[0]
        if op.index == "equality":
            return (EQUALITY, index) if node.value is not None else (RANGE, index)
        values = node.value if op.name == "between" else [node.value]
        if not isinstance(values, list | tuple) or any(v is None for v in values):
            return SCAN, None  # against null a range holds for (nearly) every row or none
        return RANGE, index

    def walkable(self, query: Query) -> str | None:
        """The indexed attribute a search can walk in sort order, stopping after ``limit`` rows.

        Walking the sort's index reads rows already in order and stops when the page is full;
        it wins over driving by a condition's index when that condition matches many rows.
        """
        if query.sort is None or query.limit is None:
            return None
        if query.operator != "and" and not self.rule(self.schema.name):
            return None  # (a ruled OR query is the rule AND the OR group: walkable)
        if query.limit + (query.offset or 0) > WALK_LIMIT:
            return None
        path = query.sort.path
        if len(path) != 1 or path[0] not in self.schema.indexes:
            return None
        if self.resolve(self.schema, path, "sort()").is_list:
            return None
        return path[0]

    def where(
        self, query: Query, alias: str, walk: str | None = None
    ) -> tuple[str, list[dict[str, Any]], str]:
        """The WHERE clause, the plan, and what follows ``FROM`` to use the driving index.

        ``walk`` names an attribute whose index drives the search in sort order instead: its
        own conditions bound the walk, and every other condition filters what it reads.
        """
        conditions = list(query.conditions)
        check_conditions(conditions)
        rule = self.rule(self.schema.name)
        if walk is not None:
            return self._walk(conditions, rule, query.operator, alias, walk)
        if not conditions and not rule:
            return "", [], ""
        if query.operator == "or" and not rule:
            sql = self.node(Group("or", conditions), alias, False)
            plan = [self._describe(c, "scan", None) for c in conditions]
            return " WHERE " + sql, plan, ""
        steps = self._steps(conditions, rule, query.operator)
        if not steps:  # only empty AND groups: every row
            return "", [], ""
        if not query.enforce_execution_order:
            steps.sort(key=lambda s: s.rank)  # (stable: a tie keeps the rule first)
        parts, plan = [], []
        lead = steps[0] if steps[0].rank < OR_INDEXED else None
        for step in steps:
            # The driving index serves every condition on its attribute (both ends of a range).
            driver = lead is not None and step.rank < OR_INDEXED and step.index == lead.index
            driver = driver or (step is steps[0] and step.rank == OR_INDEXED)
            parts.append(self.node(step.node, alias, not driver, step.trusted))
            access = _ACCESS[step.rank] if driver else ("filter" if plan else "scan")
            index = step.index if driver else None
            plan.append(self._describe(step.node, access, index, step.trusted))
        hint = ""
        if lead is not None and lead.index is not None and lead.index != self.schema.primary_key:
            hint = self.d.use_index(self.schema.name, lead.index)
        return " WHERE " + " AND ".join(parts), plan, hint

    def _steps(self, conditions: list[Condition | Group], rule: Rule, operator: str) -> list[_Step]:
        """The AND-ed steps: the row rule's (trusted) and the reader's conditions, with chained
        ranges and nested AND groups joining the top level (an OR query is one group)."""
        if operator == "or" and conditions:
            conditions = [Group("or", conditions)]
        steps: list[_Step] = []
        for trusted, nodes in ((True, rule), (False, conditions)):
            for c in nodes:
                flat = c.conditions if isinstance(c, Group) and c.operator == "and" else [c]
                steps.extend(_Step(n, *self.rank(n, trusted), trusted) for n in flat)
        return steps

    def _walk(
        self,
        conditions: list[Condition | Group],
        rule: Rule,
        operator: str,
        alias: str,
        walk: str,
    ) -> tuple[str, list[dict[str, Any]], str]:
        parts: list[str] = []
        plan: list[dict[str, Any]] = [
            {"sort": walk, "access": "index", "index": self.d.index_expression(walk)}
        ]
        for step in self._steps(conditions, rule, operator):
            bound = step.index == walk and step.rank <= RANGE
            parts.append(self.node(step.node, alias, not bound, step.trusted))
            access, index = ("index", walk) if bound else ("filter", None)
            plan.append(self._describe(step.node, access, index, step.trusted))
        where = " WHERE " + " AND ".join(parts) if parts else ""
        return where, plan, self.d.use_index(self.schema.name, walk)

    def _describe(
        self, node: Condition | Group, access: str, index: str | None, trusted: bool = False
    ) -> dict[str, Any]:
        if trusted:  # a row rule: how it is served, not what it holds
            expression = None
            if index is not None:
                key = index == self.schema.primary_key
                expression = "primary key" if key else self.d.index_expression(index)
            return {"rule": self.schema.name, "access": access, "index": expression}
        if not self.describing:  # what the planner itself needs, without the cost of more
            if index is None:
                return {"access": access, "index": None}
            key = index == self.schema.primary_key
            return {
                "access": access,
                "index": "primary key" if key else self.d.index_expression(index),
            }
        if isinstance(node, Group):
            return {
                "operator": node.operator,
                "conditions": [
                    self._describe(c, access, self.rank(c)[1] if access == "index" else None)
                    for c in node.conditions
                ],
                "access": access,
            }
        attribute = ".".join(node.path)
        out: dict[str, Any] = {
            "attribute": attribute,
            "comparator": self._operator(node).name,
            "value": self._plain_value(node),
            "access": access,
            "index": None,
        }
        if index is not None:
            key = index == self.schema.primary_key
            out["index"] = "primary key" if key else self.d.index_expression(index)
        return out

    def _plain_value(self, node: Condition) -> Any:
        """The value as the query binds it (typed by the attribute), for ``explain``."""
        op = self._operator(node)
        target = self._target(node)
        try:
            return _plain(self._value(target, op, node.value, element=target.is_list))
        except (InvalidQuery, TypeError, ValueError):
            return _plain(node.value)

    # -- order -----------------------------------------------------------------------------------

    def sort_value(self, schema: TableSchema, alias: str, path: list[str]) -> str:
        target = self.resolve(schema, path, "sort()")
        if target.is_composite:
            raise InvalidQuery(
                f"sort(): {target.name} holds a list or an object; sort by an attribute holding"
                " one value"
            )
        if not target.hops:
            return self.column(target, alias)
        hop = target.hops[0]
        rel = hop.relationship
        if rel.many or rel.from_ is None:
            raise InvalidQuery(f"sort(): {'.'.join(path)} follows a to-many relationship")
        inner = self.alias()
        value = self.sort_value(hop.target, inner, path[1:])
        fk = self.d.field(alias, schema, rel.from_)
        table = self.d.table(hop.target.name)
        # A related record the reader may not see sorts as if absent (its value is null).
        where = self.ruled(hop.target.name, inner, f"{self.d.key(inner)} = {fk}")
        return f"(SELECT {value} FROM {table} AS {inner} WHERE {where})"

    def order(self, query: Query, alias: str) -> str:
        if query.sort is None:
            return ""
        terms = []
        chain = check_sort(query.sort)
        for sort in chain:
            value = self.sort_value(self.schema, alias, sort.path)
            terms.append(self.d.order_term(value, sort.descending))
        # A total order: ties go by key, in the last attribute's direction, so that walking an
        # index of (value, key) backwards gives ``sort(-value)`` with no sort of its own.
        terms.append(self.d.order_term(self.d.key(alias), bool(chain[-1].descending)))
        return " ORDER BY " + ", ".join(terms)

    def page(self, query: Query) -> str:
        if query.limit is None and not query.offset:
            return ""
        for name, value in (("limit", query.limit), ("offset", query.offset)):
            if value is not None and (not isinstance(value, int) or value < 0 or value > 2**62):
                raise InvalidQuery(f"{name} must be a non-negative integer")
        self.params.extend(
            [query.limit if query.limit is not None else self.d.no_limit(), query.offset or 0]
        )
        return self.d.limit()


def check_conditions(conditions: list[Condition | Group]) -> None:
    """``InvalidQuery`` past ``MAX_QUERY_CONDITIONS`` conditions or ``MAX_GROUP_DEPTH`` levels
    of groups: before anything recurses into them or the database parses them."""
    count = 0
    level: list[Any] = list(conditions)
    # A chained range (``price=gt=1&lt=9``) is a group of its own inside its brackets.
    depth, deepest = 0, MAX_GROUP_DEPTH + 1
    while level:
        deeper: list[Any] = []
        for node in level:
            if isinstance(node, Group):
                if not isinstance(node.conditions, list | tuple):
                    raise InvalidQuery(f"not a condition: {node!r}")
                deeper.extend(node.conditions)
            else:
                count += 1
        if count > MAX_QUERY_CONDITIONS:
            raise InvalidQuery(f"a query holds at most {MAX_QUERY_CONDITIONS} conditions")
        if deeper:
            depth += 1
            if depth > deepest:
                raise InvalidQuery(f"groups nest at most {MAX_GROUP_DEPTH} levels deep")
        level = deeper


def check_sort(sort: Sort) -> list[Sort]:
    """The sort's chain; ``InvalidQuery`` past ``MAX_SORT_KEYS`` keys or for a key named twice
    (each key may copy a large value per row: what a sort holds in memory stays bounded)."""
    chain: list[Sort] = []
    seen: set[tuple[str, ...]] = set()
    node: Sort | None = sort
    while node is not None:
        if len(chain) == MAX_SORT_KEYS:
            raise InvalidQuery(f"sort() takes at most {MAX_SORT_KEYS} attributes")
        path = tuple(node.path)
        if path in seen:
            raise InvalidQuery(f"sort(): {'.'.join(path)} is named twice")
        seen.add(path)
        chain.append(node)
        node = node.next
    return chain


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def compile_select(
    schema: TableSchema,
    query: Query,
    dialect: Dialect = SQLITE,
    catalog: Catalog | None = None,
    *,
    public: bool = False,
    walk: str | None = None,
    describe: bool = False,
) -> CompiledQuery:
    """``SELECT data, version [, related]`` for the records matching ``query``.

    Args:
        public: the query comes from a client: attributes declared ``returned=False`` do not
            exist for it.
        walk: drive the search by this attribute's index, in sort order (``plan_select``).
        describe: fill ``plan`` with everything ``explain(true)`` reports.
    """
    c = Compiler(schema, catalog, dialect, public, describe, query.scope)
    alias = "t0"
    selection = query.selection
    related = related_column(c, schema, alias, selection) if selection is not None else None
    columns = f"{alias}.data, {alias}.version" + (f", {related}" if related else "")
    where, plan, hint = c.where(query, alias, walk)
    order = c.order(query, alias)
    sql = f"SELECT {columns} FROM {dialect.table(schema.name)} AS {alias}{hint}{where}{order}"
    sql += c.page(query)
    return CompiledQuery(sql, c.params, plan, related is not None)


def plan_select(
    schema: TableSchema,
    query: Query,
    dialect: Dialect = SQLITE,
    catalog: Catalog | None = None,
    *,
    public: bool = False,
    describe: bool = False,
) -> tuple[CompiledQuery, CompiledQuery | None, CompiledQuery | None]:
    """The statement for ``query``, and, when walking the sort's index may serve it better,
    that statement and a probe deciding between them.

    The probe counts the default plan's matches up to ``probe_size(query)``: when it finds that
    many, the condition is not selective and the walk reads fewer rows. Without a probe (the
    default plan has no index to drive it), the walk is always better.
    """
    default = compile_select(schema, query, dialect, catalog, public=public, describe=describe)
    c = Compiler(schema, catalog, dialect, public, describing=False, scope=query.scope)
    walk = c.walkable(query)
    if walk is None:
        return default, None, None
    lead = next((p.get("index") for p in default.plan if p.get("access") == "index"), None)
    if lead == dialect.index_expression(walk):
        return default, None, None  # the default plan already walks that index
    walking = compile_select(
        schema, query, dialect, catalog, public=public, walk=walk, describe=describe
    )
    if lead is None:
        return walking, None, None
    p = Compiler(schema, catalog, dialect, public, describing=False, scope=query.scope)
    where, _, hint = p.where(query, "t0")
    size = probe_size(query)
    probe_sql = (
        f"SELECT count(*) FROM (SELECT 1 FROM {dialect.table(schema.name)} AS t0{hint}{where} "
        f"LIMIT {size}) AS probe"
    )
    return default, walking, CompiledQuery(probe_sql, p.params, threshold=size)


def probe_size(query: Query) -> int:
    """How many matches make a condition unselective enough to walk the sort's index."""
    return max(256, 32 * ((query.limit or 0) + (query.offset or 0)))


def compile_count(
    schema: TableSchema,
    query: Query,
    dialect: Dialect = SQLITE,
    catalog: Catalog | None = None,
    *,
    public: bool = False,
) -> CompiledQuery:
    """``SELECT count(*)`` of the records matching ``query``'s conditions."""
    c = Compiler(schema, catalog, dialect, public, describing=False, scope=query.scope)
    where, plan, hint = c.where(query, "t0")
    sql = f"SELECT count(*) FROM {dialect.table(schema.name)} AS t0{hint}{where}"
    return CompiledQuery(sql, c.params, plan)
