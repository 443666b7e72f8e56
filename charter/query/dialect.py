"""SQL dialects: every piece of backend-specific SQL text the query compiler emits.

The compiler and the operators build queries only through these methods, so a PostgreSQL
dialect (``data->>'field'``, ``jsonb_array_elements``, ``jsonb_agg``) is one more subclass.
Attribute names spliced into SQL text are identifiers checked against the schema; every value
is a bound parameter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..schema import TableSchema

__all__ = ["SQLITE", "Dialect", "SQLiteDialect", "index_columns"]


def index_columns(schema: TableSchema) -> dict[str, str]:
    """The column holding each indexed attribute's value on SQLite, by field name.

    Why: reading an attribute out of a JSON document (``json_extract``) costs about as much
    again as the rest of a small indexed query; a stored generated column holds exactly that
    value, computed by SQLite at each write, so conditions and sorts read it like a plain
    column. Named ``$.field`` (readable in raw SQL and apart from ``id``/``data``/``version``);
    SQLite's names ignore case, so a second name differing only in case gets a suffix.
    """
    columns: dict[str, str] = {}
    taken: set[str] = set()
    for number, field in enumerate(schema.indexes):
        name = f"$.{field}"
        if name.lower() in taken:
            name = f"$.{field}#{number}"
        taken.add(name.lower())
        columns[field] = name
    return columns


class Dialect:
    """How one backend spells document access, JSON building and plan inspection."""

    name = "abstract"
    placeholder = "?"

    def table(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def key(self, alias: str) -> str:
        """The primary key column of a table alias."""
        return f"{alias}.id"

    def document(self, alias: str) -> str:
        raise NotImplementedError

    def attribute(self, alias: str, path: list[str]) -> str:
        """A document attribute (``path`` are identifiers), as the declared index spells it."""
        raise NotImplementedError

    def indexed_attribute(self, alias: str, schema: TableSchema, field: str) -> str:
        """A top-level attribute of ``schema`` that has a declared index, as that index holds
        it (the same value as ``attribute``; a backend may keep it in a column)."""
        return self.attribute(alias, [field])

    def field(self, alias: str, schema: TableSchema, field: str) -> str:
        """A top-level attribute of ``schema``: its index's value when it has one (so that
        the index serves conditions and sorts on it), else read from the document."""
        if field in schema.indexes:
            return self.indexed_attribute(alias, schema, field)
        return self.attribute(alias, [field])

    def index_expression(self, field: str) -> str:
        """How ``explain`` names a declared index's value (see ``storage.sqlite_schema``)."""
        raise NotImplementedError

    def no_index(self, expression: str) -> str:
        """The same value, but not usable as an index key (to force the planned index)."""
        raise NotImplementedError

    def use_index(self, table: str, field: str) -> str:
        """Text after ``FROM table AS alias`` that makes the search use ``field``'s index."""
        return ""

    def elements(self, expression: str, alias: str) -> str:
        """A FROM item listing a JSON array's elements as ``{alias}.value`` (``.key`` = index)."""
        raise NotImplementedError

    def is_array(self, expression: str) -> str:
        raise NotImplementedError

    def contains_text(self, expression: str) -> str:
        """SQL true when the bound text parameter occurs in ``expression``."""
        raise NotImplementedError

    def ends_with(self, expression: str) -> tuple[str, int]:
        """SQL comparing the end of ``expression``; the int is how many parameters it binds
        (the suffix length then the suffix, or just the suffix)."""
        raise NotImplementedError

    # The empty string as a literal of the attribute's type (text ranges start there).
    empty_text = "''"

    def order_term(self, expression: str, descending: bool) -> str:
        """One ``ORDER BY`` term; nulls come first in ascending order, last in descending."""
        return expression + (" DESC" if descending else "")

    def finish(self, sql: str) -> str:
        """The statement as the driver takes it (placeholders spelled for this database)."""
        return sql

    def as_text(self, expression: str) -> str:
        """A value as the text comparators (``sw ew ct``) read it: text as is, a number as its
        shortest decimal, with no fraction when it is integral (``85.0`` is ``"85"``)."""
        raise NotImplementedError

    def bool_text(self, expression: str) -> str:
        """A declared boolean as the text comparators read it: ``"true"`` or ``"false"``."""
        return self.as_text(expression)

    def json_array(self, items: list[str]) -> str:
        raise NotImplementedError

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        raise NotImplementedError

    def json_value(self, expression: str) -> str:
        """Mark JSON text as JSON when nesting it in a built document."""
        raise NotImplementedError

    def json_aggregate(self, expression: str) -> str:
        raise NotImplementedError

    def limit(self) -> str:
        return " LIMIT ? OFFSET ?"

    def no_limit(self) -> int:
        return -1

    def explain(self, sql: str) -> str:
        raise NotImplementedError


class SQLiteDialect(Dialect):
    """SQLite's JSON1: ``json_extract``, ``json_each``, ``json_group_array``."""

    name = "sqlite"

    def document(self, alias: str) -> str:
        return f"{alias}.data"

    def attribute(self, alias: str, path: list[str]) -> str:
        return f"json_extract({alias}.data, '$.{'.'.join(path)}')"

    def indexed_attribute(self, alias: str, schema: TableSchema, field: str) -> str:
        return f"{alias}.{self.table(index_columns(schema)[field])}"

    def index_expression(self, field: str) -> str:
        return f"json_extract(data, '$.{field}')"

    def no_index(self, expression: str) -> str:
        return f"+{expression}"

    def use_index(self, table: str, field: str) -> str:
        # The name storage.sqlite_schema.index_name gives a declared index.
        return " INDEXED BY " + self.table(f"{table}__{field}")

    def elements(self, expression: str, alias: str) -> str:
        return f"json_each({expression}) AS {alias}"

    def is_array(self, expression: str) -> str:
        return f"json_type({expression}) = 'array'"

    def contains_text(self, expression: str) -> str:
        return f"instr({expression}, ?) > 0"

    def ends_with(self, expression: str) -> tuple[str, int]:
        return f"substr({expression}, -?) = ?", 2

    def as_text(self, expression: str) -> str:
        # json_extract gives a REAL for 85.0: integral values lose the fraction (up to 2^63),
        # others take the fewest significant digits that read back as the same double.
        e = expression
        g = [f"printf('%!.{n}g', {e})" for n in (15, 16, 17)]
        return (
            f"(CASE WHEN typeof({e}) <> 'real' THEN CAST({e} AS TEXT)"
            f" WHEN {e} = CAST({e} AS INTEGER) THEN CAST(CAST({e} AS INTEGER) AS TEXT)"
            f" WHEN CAST({g[0]} AS REAL) = {e} THEN {g[0]}"
            f" WHEN CAST({g[1]} AS REAL) = {e} THEN {g[1]} ELSE {g[2]} END)"
        )

    def bool_text(self, expression: str) -> str:
        return f"(CASE {expression} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END)"

    def json_array(self, items: list[str]) -> str:
        return f"json_array({', '.join(items)})"

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        # Keys are identifiers from the schema (checked by the compiler), never user values.
        return "json_object(" + ", ".join(f"'{k}', {v}" for k, v in pairs) + ")"

    def json_value(self, expression: str) -> str:
        return f"json({expression})"

    def json_aggregate(self, expression: str) -> str:
        return f"json_group_array(json({expression}))"

    def explain(self, sql: str) -> str:
        return f"EXPLAIN QUERY PLAN {sql}"


SQLITE = SQLiteDialect()
