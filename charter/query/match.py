"""Does one record, not yet stored, meet a row rule? The compiler's semantics, in Python.

Why: a row rule is SQL wherever stored rows are read (``sql.py``), but a write must also be
refused when the record it would leave falls outside the writer's rule (an insert, an update
moving a row out of reach), and that record is not in the database yet. This evaluates the
rule's conditions on the record as it would be stored (JSON values), with the compiler's typing
(``typed_value``), its null order (null is lower than every value) and its text comparators
(a number compared as its shortest decimal). A condition that follows a relationship is handed
to ``related``, which answers it with SQL on the stored related records.

Values of different kinds (a number against a string) never match a range here; the SQL
backends disagree on their order, and a rule compares like with like.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..errors import InvalidQuery
from ..schema import TableSchema
from .model import Condition, Group
from .operators import operator
from .resolve import Catalog, Hop, Target, resolve, typed_value

__all__ = ["Related", "matches"]

Related = Callable[[Hop, dict[str, Any], Condition], Awaitable[bool]]
"""``related(hop, record, condition)``: whether a record that ``hop`` links ``record`` to
meets ``condition`` (its path starts on the hop's target)."""

_TOP = "\U0010ffff"  # as operators._TOP: a prefix range's upper bound


async def matches(
    catalog: Catalog,
    schema: TableSchema,
    rule: Sequence[Condition | Group],
    record: dict[str, Any],
    related: Related,
    version: int = 0,
) -> bool:
    """Whether ``record`` (a document of ``schema`` as stored: JSON values) meets every
    condition of ``rule``; ``version`` stands for ``$updatedtime``."""
    for node in rule:
        if not await _node(catalog, schema, node, record, related, version):
            return False
    return True


async def _node(
    catalog: Catalog,
    schema: TableSchema,
    node: Condition | Group,
    record: dict[str, Any],
    related: Related,
    version: int,
) -> bool:
    if isinstance(node, Group):
        if node.operator == "and":
            for c in node.conditions:
                if not await _node(catalog, schema, c, record, related, version):
                    return False
            return True
        if node.operator == "or":
            for c in node.conditions:
                if await _node(catalog, schema, c, record, related, version):
                    return True
            return False
        raise InvalidQuery(f"not a condition: {node!r}")
    if not isinstance(node, Condition):
        raise InvalidQuery(f"not a condition: {node!r}")
    target = resolve(catalog, schema, node.path, public=False, what="rule")
    if target.hops:
        rest = Condition(node.path[1:], node.comparator, node.value)
        return await related(target.hops[0], record, rest)
    return _leaf(target, node, _value(target, record, version))


def _value(target: Target, record: dict[str, Any], version: int) -> Any:
    if target.is_version:
        return version
    value: Any = record
    for name in target.path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def _leaf(target: Target, node: Condition, actual: Any) -> bool:
    op = operator(node.comparator) if isinstance(node.comparator, str) else None
    if op is None:
        raise InvalidQuery(f"unknown comparator {node.comparator!r}")
    name = op.name
    if name == "between" and (not isinstance(node.value, list | tuple) or len(node.value) != 2):
        raise InvalidQuery(f"between on {target.name} takes two values")
    if target.is_list and node.value is not None:
        if not isinstance(actual, list):
            return False
        each = "equals" if name == "contains" else name
        expected = _typed(target, name, node.value, element=True)
        return any(_compare(each, e, expected) for e in actual)
    expected = _typed(target, name, node.value, element=False)
    if op.text:
        if actual is None:
            return False
        text = actual if target.is_text and isinstance(actual, str) else _as_text(actual)
        return _text(name, text, str(expected))
    return _compare(name, actual, expected)


def _typed(target: Target, name: str, value: Any, *, element: bool) -> Any:
    op = operator(name)
    assert op is not None
    if name == "between":
        return [typed_value(target, v, element=element) for v in value]
    return typed_value(target, value, element=element, text=op.text and not element)


def _compare(name: str, actual: Any, expected: Any) -> bool:
    if name == "equals":
        return actual is None if expected is None else _equal(actual, expected)
    if name == "not_equal":
        return actual is not None if expected is None else not _equal(actual, expected)
    if name == "between":
        low, high = expected
        if high is None:
            return actual is None and low is None
        if actual is None:
            return low is None
        if low is None:
            return _ordered(actual, high, "<=")
        return _ordered(low, actual, "<=") and _ordered(actual, high, "<=")
    symbol = {
        "less_than": "<",
        "less_than_equal": "<=",
        "greater_than": ">",
        "greater_than_equal": ">=",
    }.get(name)
    if symbol is None:  # a text comparator on a list's elements
        return actual is not None and _text(name, _as_text(actual), str(expected))
    if expected is None:  # null is lower than every value
        return {"<": False, "<=": actual is None, ">": actual is not None, ">=": True}[symbol]
    if actual is None:
        return False
    return _ordered(actual, expected, symbol)


def _kind(value: Any) -> str:
    if isinstance(value, bool | int | float):
        return "number"  # as SQLite reads JSON true/false: 1 and 0
    if isinstance(value, str):
        return "string"
    return "other"


def _equal(actual: Any, expected: Any) -> bool:
    kind = _kind(actual)
    return kind != "other" and kind == _kind(expected) and actual == expected


def _ordered(a: Any, b: Any, symbol: str) -> bool:
    kind = _kind(a)
    if kind == "other" or kind != _kind(b):
        return False
    if symbol == "<":
        return bool(a < b)
    if symbol == "<=":
        return bool(a <= b)
    if symbol == ">":
        return bool(a > b)
    return bool(a >= b)


def _text(name: str, text: str, expected: str) -> bool:
    if name == "starts_with":
        return expected <= text < expected + _TOP  # the range the SQL compares
    if name == "ends_with":
        return text.endswith(expected)
    return expected in text  # contains


def _as_text(value: Any) -> str:
    """A value as the text comparators read it (``Dialect.as_text``): a number as its shortest
    decimal, with no fraction when integral; true/false for a boolean."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**63:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value
    return str(value)
