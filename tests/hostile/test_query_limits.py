"""Hostile queries (issue 8, points 5, 7, 8 and 9): a 4xx envelope before any SQL runs, and
the same answer on both backends.

Deep groups, alternating ``&``/``|`` levels, too many conditions, an over-long query string,
long relationship paths and nested selects, duplicate or too many sort keys and sorting by a
list; values typed by a prefix compared with the attribute's declared type; ``select(rel)``
without braces.
"""

from __future__ import annotations

import pytest

from charter import Field, Table, relationship
from charter.limits import (
    MAX_GROUP_DEPTH,
    MAX_PATH_HOPS,
    MAX_QUERY_CONDITIONS,
    MAX_QUERY_LENGTH,
    MAX_SELECT_DEPTH,
    MAX_SORT_KEYS,
)


class Maker(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    secret: str = Field(default="s", returned=False)
    parts: list[Part] = relationship(to="maker_id")


class Part(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    stock: int = Field(default=0, indexed=True)
    price: float = 0
    active: bool = True
    tags: list[str] = []
    size: dict[str, int] = {}
    maker_id: str | None = Field(default=None, indexed=True)
    maker: Maker | None = relationship(from_="maker_id")


class Slot(Table):
    id: int = Field(primary_key=True)
    label: str = ""


PARTS = [
    {"id": "123", "name": "a", "stock": 5, "price": 1.5, "tags": ["x"], "maker_id": "m1"},
    {"id": "p2", "name": "b", "stock": 0, "price": 2.0, "active": False, "maker_id": "m1"},
    {"id": "p3", "name": "c", "stock": 123, "price": 3.0, "tags": ["y", "x"]},
]


@pytest.fixture
def client(serve):
    client = serve(Maker, Part, Slot)
    assert client.put("/Maker/m1", json={"name": "Acme", "secret": "hidden"}).status_code == 204
    for part in PARTS:
        assert client.put(f"/Part/{part['id']}", json=part).status_code == 204
    assert client.put("/Slot/5", json={"label": "five"}).status_code == 204
    return client


def _ids(client, qs: str) -> list[str]:
    response = client.get(f"/Part/?{qs}&select(id)&sort(id)")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _invalid(client, qs: str, path: str = "/Part/") -> str:
    response = client.get(path + "?" + qs)
    assert response.status_code == 400, (qs[:200], response.text)
    error = response.json()["error"]
    assert error["code"] == "INVALID_QUERY"
    deleted = client.delete(path + "?" + qs)  # the same query deletes nothing
    assert deleted.status_code == 400, deleted.text
    assert len(client.get("/Part/").json()) == len(PARTS)
    return error["message"]  # type: ignore[no-any-return]


def _alternating(levels: int, leaf: str = "name=a") -> str:
    """``name=a|(name=a&(name=a|(...)))``: ``levels`` groups, alternating operators."""
    query = leaf
    for level in range(levels):
        query = f"{leaf}{'&' if level % 2 else '|'}({query})"
    return query


# -- groups and conditions -------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_GROUP_DEPTH + 1, 1000, 5000])
def test_groups_nested_too_deep_are_400(client, depth):
    message = _invalid(client, "(" * depth + "name=a" + ")" * depth)
    assert str(MAX_GROUP_DEPTH) in message


@pytest.mark.parametrize("levels", [MAX_GROUP_DEPTH + 1, 30, 40])
def test_alternating_and_or_levels_past_the_limit_are_400(client, levels):
    for leaf in ("name=a", "maker.name=ne=x", "tags=ne=z"):
        _invalid(client, _alternating(levels, leaf))


def test_alternating_levels_at_the_limit_answer_on_both_backends(client):
    assert _ids(client, _alternating(MAX_GROUP_DEPTH, "name=a")) == ["123"]
    assert _ids(client, _alternating(MAX_GROUP_DEPTH, "maker.name=Acme")) == ["123", "p2"]
    worst = "maker.parts.maker.parts.name=ne=zz"  # MAX_PATH_HOPS relationships
    assert worst.count(".") == MAX_PATH_HOPS
    assert _ids(client, _alternating(MAX_GROUP_DEPTH, worst)) == ["123", "p2"]


def test_too_many_conditions_are_400(client):
    for count in (MAX_QUERY_CONDITIONS + 1, 1000):
        for joiner in ("&", "|"):
            conditions = joiner.join(f"name=a{i}" for i in range(count))
            message = _invalid(client, conditions + "&limit(1)" if joiner == "&" else conditions)
            assert str(MAX_QUERY_CONDITIONS) in message
    # A chained range counts each comparison.
    ranges = "&".join("stock=gt=0&lt=9" for _ in range(MAX_QUERY_CONDITIONS // 2 + 1))
    _invalid(client, ranges + "&limit(1)")


def test_conditions_at_the_limit_answer_on_both_backends(client):
    anded = "&".join(["stock=ge=0"] * (MAX_QUERY_CONDITIONS - 1) + ["name=a"])
    assert _ids(client, anded + "&limit(1)") == ["123"]
    ored = "|".join(["maker.name=ne=Acme"] * (MAX_QUERY_CONDITIONS - 1) + ["name=b"])
    assert _ids(client, f"[{ored}]&limit(5)") == ["p2"]
    assert client.get(f"/Part/?{anded}&sort(-stock)&limit(1)").status_code == 200


def test_a_query_string_past_the_limit_is_414(client):
    qs = "name=" + "a" * MAX_QUERY_LENGTH
    for response in (client.get("/Part/?" + qs), client.delete("/Part/?" + qs)):
        assert response.status_code == 414, response.text
        assert response.json()["error"]["code"] == "URI_TOO_LONG"
    assert len(client.get("/Part/").json()) == len(PARTS)
    near = "name=" + "a" * (MAX_QUERY_LENGTH - 5)  # at the limit: read, matches nothing
    assert client.get("/Part/?" + near).json() == []


def test_paths_through_too_many_relationships_are_400(client):
    path = ".".join(["maker", "parts"] * 20) + ".name=x"
    _invalid(client, path)
    _invalid(client, ".".join(["maker", "parts"] * 20) + ".name=x|name=a")
    _invalid(client, "sort(" + ".".join(["maker", "parts"] * 3) + ".maker.name)")
    too_long = ".".join((["maker", "parts"] * MAX_PATH_HOPS)[: MAX_PATH_HOPS + 1]) + ".name=x"
    _invalid(client, too_long)


def test_selects_nested_too_deep_are_400(client):
    def nested(levels: int) -> str:
        inner = "name"
        for level in reversed(range(levels)):
            inner = ("maker{" if level % 2 == 0 else "parts{") + inner + "}"
        return inner

    _invalid(client, f"select(id,{nested(MAX_SELECT_DEPTH + 1)})")
    _invalid(client, f"select(id,{nested(500)})")
    _invalid(client, "select(id,maker,maker)")
    response = client.get(f"/Part/?id=123&select(id,{nested(MAX_SELECT_DEPTH)})")
    assert response.status_code == 200, response.text
    assert response.json() == [{"id": "123", "maker": {"parts": [
        {"maker": {"name": "Acme"}}, {"maker": {"name": "Acme"}}]}}]  # fmt: skip


# -- sort --------------------------------------------------------------------------------------


def test_duplicate_or_too_many_sort_keys_are_400(client):
    _invalid(client, "sort(tags,tags)")
    _invalid(client, "sort(name," + ",".join(["name"] * 100) + ")")
    _invalid(client, "sort(name,-name)")
    _invalid(client, "sort(maker.name,+maker.name)")
    fields = ["name", "stock", "price", "active", "id", "maker_id", "maker.name", "$updatedtime"]
    assert len(fields) == MAX_SORT_KEYS
    assert client.get(f"/Part/?sort({','.join(fields)})").status_code == 200
    _invalid(client, f"sort({','.join(fields)},maker.id)")


def test_sorting_by_a_list_or_an_object_is_400(client):
    for qs in ("sort(tags)", "sort(-size)", "sort(name,tags)", "sort(maker.parts)"):
        _invalid(client, qs)


# -- typed values: one rule on both backends -------------------------------------------------


def test_a_typed_value_is_converted_to_the_declared_type(client):
    assert _ids(client, "id=number:123") == ["123"]
    assert _ids(client, "id=123") == ["123"]
    assert _ids(client, "id=string:123") == ["123"]
    assert _ids(client, "$id=number:123") == ["123"]
    assert _ids(client, "stock=string:123") == ["p3"]
    assert _ids(client, "stock=string:5") == ["123"]
    assert _ids(client, "stock=gt=string:4.5") == ["123", "p3"]
    assert _ids(client, "price=string:1.5") == ["123"]
    assert _ids(client, "name=number:1") == []
    assert _ids(client, "active=string:false") == ["p2"]
    assert _ids(client, "tags=number:1") == []
    slots = client.get("/Slot/?id=string:5").json()
    assert slots == [{"id": 5, "label": "five"}]
    assert client.get("/Slot/?$id=5").json() == slots


def test_a_boolean_never_becomes_a_number_or_a_string(client):
    for qs in (
        "stock=boolean:false", "stock=boolean:true", "price=boolean:true", "name=boolean:true",
        "id=boolean:true", "active=number:1", "active=number:0", "active=string:yes",
        "stock=string:abc", "stock=string:1_000", "stock=string:nan", "stock=string:%D9%A3",
        "tags=boolean:true",
        "stock=bt=boolean:false,number:9",
    ):  # fmt: skip
        _invalid(client, qs)
    assert client.get("/Slot/?id=boolean:true").status_code == 400


# -- select of a relationship without braces -------------------------------------------------


def test_select_of_a_relationship_without_braces_gives_the_related_records(client):
    maker = {"id": "m1", "name": "Acme"}  # every public attribute; hidden ones left out
    assert client.get("/Part/?id=123&select(maker)").json() == [maker]
    assert client.get("/Part/?id=p3&select(maker)").json() == [None]  # no maker: null
    assert client.get("/Part/?id=123&select(id,maker)").json() == [{"id": "123", "maker": maker}]
    parts = client.get("/Maker/?select(parts)").json()
    assert [[p["id"] for p in group] for group in parts] == [["123", "p2"]]
    assert client.get("/Part/?id=123&select(maker)", headers={"accept": "application/msgpack"})
