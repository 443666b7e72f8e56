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
        return f"({expression}{_TEXT}"

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
    """The compiler's SQL made PostgreSQL's: ``?`` becomes ``$1, $2...`` (outside quotes).

    It also covers what the ``Dialect`` seam does not yet spell per backend (each is a one-line
    change in ``charter/query``; until then they are rewritten here, token by token):

    - a condition that is always false or true is emitted as a bare ``0`` / ``1``: here
      ``FALSE`` / ``TRUE`` (PostgreSQL wants a boolean);
    - a subquery in ``FROM`` must have an alias before PostgreSQL 16: one is added;
    - ``ends_with`` with an empty suffix compares with ``''``, which is not jsonb: ``'""'``;
    - nulls sort first in ascending order on SQLite, last on PostgreSQL: each ``ORDER BY``
      term says ``NULLS FIRST`` (ascending) or ``NULLS LAST`` (descending).
    """
    out: list[str] = []
    number = 0
    i, n = 0, len(sql)
    last_word = ""  # the previous keyword or punctuation token, upper-cased
    opened: list[bool] = []  # per open parenthesis: whether it starts a FROM subquery
    ordering: list[int] = []  # the depths of the ORDER BY clauses being read

    def end_term() -> None:
        if ordering and ordering[-1] == len(opened):
            out.append(" NULLS LAST" if last_word == "DESC" else " NULLS FIRST")

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
            literal = sql[i : j + 1]
            if literal == "''" and last_word == ">=":
                literal = "'\"\"'"
            out.append(literal)
            i = j + 1
            last_word = "LITERAL"
            continue
        if ch == "?":
            number += 1
            out.append(f"${number}")
            i += 1
            last_word = "PARAM"
            continue
        if ch == "(":
            opened.append(last_word == "FROM")
            out.append(ch)
            i += 1
            last_word = "("
            continue
        if ch == ")":
            end_term()
            if ordering and ordering[-1] == len(opened):
                ordering.pop()
            out.append(ch)
            i += 1
            if opened and opened.pop():
                rest = sql[i:].lstrip()
                if not rest.upper().startswith("AS ") and not _starts_alias(rest):
                    out.append(f" AS _s{len(out)}")
            last_word = ")"
            continue
        if ch.isalnum() or ch == "_":
            j = i
            while j < n and (sql[j].isalnum() or sql[j] in "_$."):
                j += 1
            word = sql[i:j]
            upper = word.upper()
            if upper in ("LIMIT", "OFFSET") and ordering and ordering[-1] == len(opened):
                while out and out[-1].isspace():
                    out.pop()
                end_term()
                ordering.pop()
                out.append(" ")
            if upper == "BY" and last_word == "ORDER":
                ordering.append(len(opened))
            if word in ("0", "1") and last_word in ("WHERE", "AND", "OR", "(", "NOT"):
                ahead = sql[j:].lstrip()
                if not ahead or ahead[0] == ")" or ahead.split(" ", 1)[0].upper() in _AFTER:
                    word = "TRUE" if word == "1" else "FALSE"
            out.append(word)
            last_word = word.upper()
            i = j
            continue
        if ch in "<>=!":
            j = i
            while j < n and sql[j] in "<>=!":
                j += 1
            out.append(sql[i:j])
            last_word = sql[i:j]
            i = j
            continue
        if ch == ",":
            end_term()
        out.append(ch)
        if not ch.isspace():
            last_word = ch
        i += 1
    end_term()
    return "".join(out)


_AFTER = {"AND", "OR", "ORDER", "LIMIT", "OFFSET"}


def _starts_alias(rest: str) -> bool:
    """Whether what follows a FROM subquery already names it (``sub``, not ``WHERE``...)."""
    word = rest.split(" ", 1)[0].rstrip(")").upper()
    if not word or not (word[0].isalpha() or word[0] == "_"):
        return False
    return word not in {"WHERE", "ORDER", "LIMIT", "OFFSET", "GROUP", "JOIN", "ON", "UNION"}
