"""Where a differential run against HarperDB 4.7 found the query language answering otherwise
(issue 9, part 4): each class pinned on SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

import pytest

from charter import Condition, Field, Query, Table


def ids(client: Any, query: str) -> list[str]:
    response = client.get(f"/Product/?{query}&select(id)&sort(id)")
    assert response.status_code == 200, response.text
    return list(response.json())


def invalid(client: Any, query: str) -> str:
    response = client.get(f"/Product/?{query}")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_QUERY"
    return str(error["message"])


# -- a dotted path into an attribute holding one value -----------------------------------------


@pytest.mark.parametrize(
    "query", ["name.x=1", "id.x=1", "stock.x=1", "tags.x=run", "sort(name.x)", "brand.name.x=A"]
)
def test_a_path_into_a_single_value_is_invalid(shop, query):
    assert "names nothing" in invalid(shop, query)


def test_a_path_into_an_object_attribute_still_reads_inside_it(serve):
    class Person(Table):
        id: str = Field(primary_key=True)
        address: dict[str, Any] = {}

    client = serve(Person)
    client.put("/Person/a", json={"address": {"city": "Lyon"}})
    client.put("/Person/b", json={"address": {"city": "Oslo"}})
    assert client.get("/Person/?address.city=Lyon&select(id)").json() == ["a"]


# -- typed values meet the field's type -------------------------------------------------------


def test_a_boolean_on_a_number_is_invalid_not_a_cast(shop):
    assert "boolean" in invalid(shop, "stock==boolean:true")
    assert "boolean" in invalid(shop, "stock==boolean:false")


def test_a_string_on_a_number_is_converted_to_the_number(shop):
    assert ids(shop, "stock==string:5") == ["p1"]  # p1 has stock 5
    assert ids(shop, "price==string:120") == ["p1"]
    assert ids(shop, "stock=gt=string:9") == ["p4", "p5"]
    assert "number" in invalid(shop, "stock==string:five")


# -- null is the lowest value -------------------------------------------------------------------


def test_ranges_against_null_follow_the_sort_order(shop):
    everyone = ["p1", "p2", "p3", "p4", "p5"]
    # p4 is the only product without a brand.
    assert ids(shop, "brand_id=gt=null") == ["p1", "p2", "p3", "p5"]
    assert ids(shop, "brand_id=ge=null") == everyone
    assert ids(shop, "brand_id=lt=null") == []
    assert ids(shop, "brand_id=le=null") == ["p4"]
    assert ids(shop, "brand_id=bt=null,b") == ["p1", "p2", "p4"]  # acme < b
    assert ids(shop, "brand_id=bt=null,null") == ["p4"]
    assert ids(shop, "brand_id=bt=a,null") == []
    # No non-null value is null or lower: every product has a price.
    assert ids(shop, "price=gt=null") == everyone
    assert ids(shop, "price=le=null") == []


def test_ranges_against_null_agree_with_an_ascending_sort(shop):
    order = shop.get("/Product/?sort(brand_id,id)&select(id)").json()
    assert order[0] == "p4"  # nulls first
    assert ids(shop, "brand_id=gt=null") == sorted(order[1:])


async def test_a_null_range_in_python_conditions_too(shop):
    from tests.query.shop import Product

    async def search(comparator: str) -> list[str]:
        query = Query([Condition("brand_id", comparator, None)])
        return sorted([r.id async for r in Product.search(query)])

    assert await search("greater_than") == ["p1", "p2", "p3", "p5"]
    assert await search("less_than_equal") == ["p4"]
    assert await search("less_than") == []


# -- text comparators on fields that are not text -----------------------------------------------


class Reading(Table):
    id: str = Field(primary_key=True)
    value: float = 0.0
    count: int = 0
    ok: bool = False


READINGS = {
    "a": {"value": 85.0, "count": 15, "ok": True},
    "b": {"value": 95.5, "count": 150, "ok": False},
    "c": {"value": 0.1 + 0.2, "count": -3},
    "d": {"value": -0.0, "count": 0},
    "e": {"value": 1250000.0, "count": 7},
}


@pytest.fixture
def readings(serve):
    client = serve(Reading)
    for key, row in READINGS.items():
        assert client.put(f"/Reading/{key}", json=row).status_code == 204
    return client


def readings_where(client: Any, query: str) -> list[str]:
    response = client.get(f"/Reading/?{query}&select(id)&sort(id)")
    assert response.status_code == 200, response.text
    return list(response.json())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("value=ew=85", ["a"]),  # 85.0 reads "85", as HarperDB (JavaScript) writes it
        ("value=ew=.0", []),
        ("value=ew=0", ["d", "e"]),  # "0" (-0.0) and "1250000"
        ("value=sw=85", ["a"]),
        ("value=sw=95.5", ["b"]),
        ("value=ct=.", ["b", "c"]),
        ("value=ct=0000000000000", ["c"]),  # 0.30000000000000004: the shortest text
        ("value=ew=04", ["c"]),
        ("value=sw=-", []),
        ("value=ct=e", []),  # never an exponent here
        ("count=sw=15", ["a", "b"]),
        ("count=sw=-", ["c"]),
        ("count=ew=0", ["b", "d"]),
        ("ok=sw=t", ["a"]),  # a boolean reads "true" or "false"
        ("ok=ew=alse", ["b", "c", "d", "e"]),
        ("ok=ct=1", []),
        ("value=ct=number:85", ["a"]),  # a typed value is compared as its text too
    ],
)
def test_text_comparators_read_a_number_as_its_shortest_text(readings, query, expected):
    assert readings_where(readings, query) == expected


def test_text_comparators_on_the_version(readings):
    everyone = readings_where(readings, "sort(id)")
    assert readings_where(readings, "$updatedtime=sw=1") == everyone  # ms since 1970: 17...


# -- paging and select: HarperDB's answers ------------------------------------------------------


def test_limit_ending_before_it_starts_is_an_empty_page(shop):
    assert shop.get("/Product/?limit(10,5)").json() == []
    assert shop.get("/Product/?limit(3,1)&sort(id)").json() == []
    assert shop.get("/Product/?limit(3,3)").json() == []
    assert [p["id"] for p in shop.get("/Product/?limit(1,3)&sort(id)").json()] == ["p2", "p3"]


def test_an_empty_select_gives_empty_records(shop):
    assert shop.get("/Product/?select()&limit(2)").json() == [{}, {}]
    assert shop.get("/Product/?select([])&limit(2)").json() == [[], []]
    assert shop.get("/Product/?price=gt=90&select()").json() == [{}, {}]
