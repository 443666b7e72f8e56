"""Random queries checked against a pure-Python reference evaluator on the same data, through
HTTP (``TestClient``) and through ``Table.search``: they must give the same records in the same
order."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charter import App, Condition, Field, Group, Query, Sort, Table, relationship
from charter.testing import TestClient


class Maker(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)


class Item(Table):
    id: str = Field(primary_key=True)
    a: int = Field(indexed=True)
    b: float | None = None
    c: str = Field(indexed=True)
    d: bool = False
    tags: list[str] = []
    maker_id: str | None = Field(default=None, indexed=True)
    maker: Maker | None = relationship(from_="maker_id")


ALPHABET = ["a", "b", "ab", "B", "é", "&", "|", "(", ")", "%", " ", "'", '"', "=", ",", "x;y"]
MAKERS = [{"id": f"m{i}", "name": name} for i, name in enumerate(["ab", "b", "a&b", "é"])]


def _items() -> list[dict[str, Any]]:
    rnd = random.Random(7)
    out = []
    for i in range(60):
        out.append({
            "id": f"i{i:02}",
            "a": rnd.randint(-3, 6),
            "b": rnd.choice([None, rnd.randint(-20, 20) / 4]),
            "c": "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 3))),
            "d": rnd.random() < 0.5,
            "tags": rnd.sample(["red", "blue", "a&b"], rnd.randint(0, 2)),
            "maker_id": rnd.choice([None, "m0", "m1", "m2", "m3"]),
        })  # fmt: skip
    return out


ITEMS = _items()
MAKER_NAME = {m["id"]: m["name"] for m in MAKERS}

# -- the reference evaluator -------------------------------------------------------------------


def _value(item: dict[str, Any], path: list[str]) -> Any:
    if path[0] == "maker":
        return MAKER_NAME.get(item["maker_id"]) if item["maker_id"] else None
    return item[path[0]]


def _holds(item: dict[str, Any], node: Condition | Group) -> bool:
    if isinstance(node, Group):
        results = [_holds(item, c) for c in node.conditions]
        return all(results) if node.operator == "and" else any(results)
    if node.path[0] == "maker" and item["maker_id"] is None:
        return False  # through a relationship: a related record must exist and satisfy it
    x, v, cmp = _value(item, node.path), node.value, node.comparator
    if node.path == ["tags"]:
        return v in x
    if cmp == "equals":
        return x is None if v is None else x is not None and x == v
    if cmp == "not_equal":
        return x is not None if v is None else x is None or x != v
    if x is None:
        return False
    if cmp == "between":
        return v[0] <= x <= v[1]
    if cmp in ("starts_with", "ends_with", "contains"):
        method = {"starts_with": x.startswith, "ends_with": x.endswith}.get(cmp)
        return method(v) if method else v in x
    return {"less_than": x < v, "less_than_equal": x <= v, "greater_than": x > v,
            "greater_than_equal": x >= v}[cmp]  # fmt: skip


def _reference(query: Query) -> list[str]:
    rows = [i for i in ITEMS if all(_holds(i, c) for c in query.conditions)]
    chain = query.sort.chain() if query.sort else []
    # Ties go by id, in the last sort attribute's direction.
    rows.sort(key=lambda r: r["id"], reverse=bool(chain and chain[-1].descending))
    for sort in reversed(chain):
        # SQLite orders null first; sort by (is not null, value), reversed for descending
        def key(r: dict[str, Any], s: Sort = sort) -> tuple[bool, Any]:
            value = _value(r, s.path)
            return (value is not None, value if value is not None else 0)

        rows.sort(key=key, reverse=sort.descending)
    start = query.offset or 0
    end = start + query.limit if query.limit is not None else None
    return [r["id"] for r in rows[start:end]]


# -- random queries ------------------------------------------------------------------------------

_text = st.sampled_from([*ALPHABET, "", "ab", "é"])
_numbers = {"a": st.integers(-4, 7), "b": st.integers(-24, 24).map(lambda n: n / 4)}


@st.composite
def conditions(draw: Any) -> Condition:
    attribute = draw(st.sampled_from(["a", "b", "c", "d", "tags", "maker.name"]))
    if attribute == "tags":
        return Condition("tags", "contains", draw(st.sampled_from(["red", "blue", "a&b", "x"])))
    if attribute == "d":
        return Condition("d", draw(st.sampled_from(["equals", "not_equal"])), draw(st.booleans()))
    text = attribute in ("c", "maker.name")
    comparators = ["equals", "not_equal", "less_than", "less_than_equal", "greater_than",
                   "greater_than_equal", "between"]  # fmt: skip
    if text:
        comparators += ["starts_with", "ends_with", "contains"]
    comparator = draw(st.sampled_from(comparators))
    values = _text if text else _numbers[attribute]
    if comparator == "between":
        low, high = sorted([draw(values), draw(values)])
        return Condition(attribute, comparator, [low, high])
    if comparator in ("equals", "not_equal") and attribute in ("b", "maker.name"):
        values = st.one_of(st.none(), values)
    return Condition(attribute, comparator, draw(values))


def groups(depth: int = 2) -> st.SearchStrategy[Any]:
    if depth == 0:
        return conditions()
    inner = st.lists(groups(depth - 1), min_size=1, max_size=3)
    group = st.builds(Group, st.sampled_from(["and", "or"]), inner)
    return st.one_of(conditions(), conditions(), group)


@st.composite
def queries(draw: Any) -> Query:
    query = Query(conditions=draw(st.lists(groups(), max_size=3)))
    keys = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "maker.name"]), max_size=3,
                         unique=True))  # fmt: skip
    nodes = [Sort(k.split(".") if "." in k else k, draw(st.booleans())) for k in keys]
    for node, nxt in itertools.pairwise(nodes):
        node.next = nxt
    query.sort = nodes[0] if nodes else None
    query.limit = draw(st.one_of(st.none(), st.integers(0, 20)))
    query.offset = draw(st.one_of(st.none(), st.integers(0, 30)))
    query.enforce_execution_order = draw(st.booleans())
    return query


# -- the URL form of a query ---------------------------------------------------------------------

_URL = {"equals": "=", "not_equal": "=ne=", "less_than": "=lt=", "less_than_equal": "=le=",
        "greater_than": "=gt=", "greater_than_equal": "=ge=", "starts_with": "=sw=",
        "ends_with": "=ew=", "contains": "=ct=", "between": "=bt="}  # fmt: skip


def _url_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value, safe="") if value != "null" else "string:null"
    return repr(value)


def _url_node(node: Condition | Group, brackets: str = "()") -> str:
    if isinstance(node, Group):
        joiner = "&" if node.operator == "and" else "|"
        inner = joiner.join(
            _url_node(c, "[]" if brackets == "()" else "()") for c in node.conditions
        )
        return brackets[0] + inner + brackets[1]
    attribute = ".".join(node.path)
    if node.comparator == "between":
        value = ",".join(_url_value(v) for v in node.value)
    else:
        value = _url_value(node.value)
    return f"{attribute}{_URL[node.comparator]}{value}"


def to_url(query: Query) -> str:
    parts = [_url_node(c) for c in query.conditions]
    if query.sort:
        keys = [("-" if s.descending else "+") + ".".join(s.path) for s in query.sort.chain()]
        parts.append(f"sort({quote(','.join(keys), safe=',')})")
    if query.limit is not None:
        start = query.offset or 0
        parts.append(f"limit({start},{start + query.limit})")
    elif query.offset:
        parts.append(f"offset({query.offset})")
    return "&".join(parts)


# -- the test ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path: Path = tmp_path_factory.mktemp("props") / "p.db"
    client = TestClient(App(tables=[Maker, Item], database=f"sqlite:///{path}"))
    client.__enter__()
    for table, rows in (("Maker", MAKERS), ("Item", ITEMS)):
        for row in rows:
            assert client.put(f"/{table}/{row['id']}", json=row).status_code == 204
    yield client
    client.__exit__(None, None, None)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(query=queries())
def test_random_queries_match_the_reference(store: TestClient, query: Query) -> None:
    expected = _reference(query)
    unordered = query.sort is None

    def same(got: list[str]) -> None:
        note = f"{url} -> {got} != {expected}"
        if unordered and (query.limit is not None or query.offset):
            assert len(got) == len(expected) and set(got) <= set(
                _reference(Query(query.conditions))
            )
        elif unordered:
            assert sorted(got) == sorted(expected), note
        else:
            assert got == expected, note

    url = to_url(query)
    response = store.get("/Item/?" + url)
    assert response.status_code == 200, (url, response.text)
    same([r["id"] for r in response.json()])

    async def direct() -> list[str]:
        return [item.id async for item in Item.search(query)]

    same(store._run(direct()))
