"""The PostgreSQL spelling of the query compiler's SQL (``charter.query.dialect.Dialect``).

Documents are ``JSONB`` and so is the primary key column, so an attribute, a key and a bound
value all compare as ``jsonb``: numbers numerically, strings by the database collation (byte
order under ``C``/``C.UTF-8``, as on SQLite), with no cast that depends on the declared type.
An attribute is ``NULLIF(data->'f', 'null')`` so that a JSON null reads as SQL NULL (as
``json_extract`` does on SQLite); declared indexes are built on exactly that expression.

Sans-I/O, like the compiler: no driver is imported here. ``adapt`` turns the compiler's
output into PostgreSQL's (numbered parameters and the few spellings the ``Dialect`` seam does
not cover yet; see its docstring).
"""

from __future__ import annotations

from ..query.dialect import Dialect

__all__ = ["POSTGRES", "PostgresDialect", "adapt"]

_TEXT = " #>> '{}')"  # the end of what ``as_text`` makes: a text expression, not jsonb


class PostgresDialect(Dialect):
    """``data->'f'``, ``jsonb_array_elements``, ``jsonb_agg``; no index hints (the cost-based
    planner chooses; ``explain`` reports its choice)."""

    name = "postgresql"
    empty_text = "'\"\"'"  # the JSON string "" (attributes are jsonb)

    def order_term(self, expression: str, descending: bool) -> str:
        # Nulls sort first ascending and last descending, as on SQLite.
        return expression + (" DESC NULLS LAST" if descending else " NULLS FIRST")

    def finish(self, sql: str) -> str:
        return adapt(sql)

    def document(self, alias: str) -> str:
        return f"{alias}.data"

    def attribute(self, alias: str, path: list[str]) -> str:
        return _attribute(f"{alias}.data", path)

    def index_expression(self, field: str) -> str:
        return _attribute("data", [field])

    def no_index(self, expression: str) -> str:
        # PostgreSQL has no hint syntax, and its planner costs each index itself.
        return expression

    def elements(self, expression: str, alias: str) -> str:
        array = f"CASE WHEN jsonb_typeof({expression}) = 'array' THEN {expression} END"
        return f"jsonb_array_elements({array}) WITH ORDINALITY AS {alias}(value, key)"

    def is_array(self, expression: str) -> str:
        return f"jsonb_typeof({expression}) = 'array'"

    def contains_text(self, expression: str) -> str:
        return f"strpos({_text(expression)}, ?::text) > 0"

    def ends_with(self, expression: str) -> tuple[str, int]:
        return f"right({_text(expression)}, ?::int) = ?::text", 2

    def as_text(self, expression: str) -> str:
        # A number loses its trailing zeros (85.0 is "85"), as on SQLite; ends with _TEXT.
        # to_jsonb: the expression may be jsonb (an attribute) or bigint (the version).
        e = f"to_jsonb({expression})"
        number = f"to_jsonb(trim_scale(({expression})::numeric)::text)"
        return f"(CASE WHEN jsonb_typeof({e}) = 'number' THEN {number} ELSE {e} END{_TEXT}"

    def json_array(self, items: list[str]) -> str:
        return f"jsonb_build_array({', '.join(items)})"

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        # Keys are identifiers from the schema (checked by the compiler), never user values.
        return "jsonb_build_object(" + ", ".join(f"'{k}', {v}" for k, v in pairs) + ")"

    def json_value(self, expression: str) -> str:
        return expression  # already jsonb

    def json_aggregate(self, expression: str) -> str:
        return f"COALESCE(jsonb_agg({expression}), '[]'::jsonb)"

    def limit(self) -> str:
        return " LIMIT ? OFFSET ?"

    def no_limit(self) -> int:
        return 2**62  # LIMIT ALL cannot be a parameter; this is as good

    def explain(self, sql: str) -> str:
        return f"EXPLAIN {sql}"


def _attribute(document: str, path: list[str]) -> str:
    # Identifiers only (checked by the compiler), so splicing them is safe.
    steps = "".join(f"->'{name}'" for name in path)
    return f"NULLIF({document}{steps}, 'null'::jsonb)"


def _text(expression: str) -> str:
    """``expression`` as text: a jsonb attribute's value, or already text (``as_text``)."""
    return expression if expression.endswith(_TEXT) else f"({expression}{_TEXT}"


POSTGRES = PostgresDialect()


def adapt(sql: str) -> str:
    """The compiler's SQL as asyncpg takes it: each ``?`` (outside quotes) becomes ``$1, $2...``."""
    out: list[str] = []
    number = 0
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":  # a quoted literal or identifier: copied as is
            j = i + 1
            while j < n:
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i : j + 1])
            i = j + 1
        elif ch == "?":
            number += 1
            out.append(f"${number}")
            i += 1
        else:
            j = i
            while j < n and sql[j] not in "'\"?":
                j += 1
            out.append(sql[i:j])
            i = j
    return "".join(out)
