"""Relationships in conditions, sorts and nested selects; the planner and explain; Table.search."""

from __future__ import annotations

import pytest

from charter import Condition, Group, Query, Sort
from charter.errors import InvalidQuery
from charter.query.sql import compile_select
from tests.query.shop import Brand, Bundle, Product, ids


def test_conditions_follow_relationships(shop):
    get = lambda qs: sorted(ids(shop.get("/Product/?" + qs)))  # noqa: E731
    assert get("brand.name=Acme") == ["p1", "p2"]  # to-one
    assert get("brand.country.name=Japan") == ["p3"]  # two levels
    assert get("reviews.stars=ge=4") == ["p1", "p3"]  # to-many (the other table holds our key)
    assert get("[brand.name=Zen|reviews.stars=3]") == ["p1", "p3"]
    assert sorted(ids(shop.get("/Bundle/?products.name=sw=Air"))) == ["b1"]  # list of keys
    assert sorted(ids(shop.get("/Brand/?products.reviews.stars=4"))) == ["zen"]
    assert sorted(ids(shop.get("/Brand/?country.name=ne=France"))) == ["zen"]


def test_sort_through_a_to_one_relationship(shop):
    assert ids(shop.get("/Product/?sort(brand.name,-price)")) == ["p4", "p1", "p2", "p5", "p3"]
    assert ids(shop.get("/Product/?sort(-brand.country.name,price)&limit(2)")) == ["p3", "p2"]


def test_nested_selects(shop):
    rows = shop.get("/Product/?select(id,brand{name,country{name}})&sort(id)&limit(4)").json()
    assert rows == [
        {"id": "p1", "brand": {"name": "Acme", "country": {"name": "France"}}},
        {"id": "p2", "brand": {"name": "Acme", "country": {"name": "France"}}},
        {"id": "p3", "brand": {"name": "Zen", "country": {"name": "Japan"}}},
        {"id": "p4", "brand": None},
    ]
    # to-many gives arrays; Review.allow_read hides the secret review (r4) of p1
    (p1,) = shop.get("/Product/?id=p1&select(id,reviews{id,stars})").json()
    assert p1 == {"id": "p1", "reviews": [{"id": "r1", "stars": 5}, {"id": "r2", "stars": 3}]}
    bundles = shop.get("/Bundle/?select(id,products{id})&sort(id)").json()
    assert bundles == [{"id": "b1", "products": [{"id": "p2"}, {"id": "p1"}]},
                       {"id": "b2", "products": []}]  # fmt: skip
    # a relationship without a nested list gives the related records (hidden fields removed)
    (row,) = shop.get("/Product/?id=p1&select(brand)").json()
    assert row == {"id": "acme", "name": "Acme", "country_id": "fr"}
    assert "cost" not in shop.get("/Bundle/?select(products)&id=b1").json()[0][0]


def test_nested_selects_are_one_statement(shop):
    app = shop.app
    schemas = {name: runtime.schema for name, runtime in app.tables.items()}
    query = Query(select=["id", {"name": "brand", "select": ["name"]},
                          {"name": "reviews", "select": ["stars"]}])  # fmt: skip
    compiled = compile_select(schemas["Product"], query, catalog=schemas)
    assert compiled.sql.count("SELECT") == 4 and compiled.related  # one statement, subqueries
    assert compiled.params == []


def test_explain_gives_the_plan(shop):
    plan = shop.get("/Product/?stock=gt=1&brand_id=acme&price=lt=200&explain(true)").json()
    order = [(c["attribute"], c["access"], c["index"]) for c in plan["conditions"]]
    assert order == [
        ("brand_id", "index", "json_extract(data, '$.brand_id')"),  # equality on an index first
        ("price", "filter", None),  # then a range on an index
        ("stock", "filter", None),  # then what is not indexed
    ]
    assert any("Product__brand_id" in line for line in plan["sqlite"])
    assert "?" in plan["sql"] and "acme" not in plan["sql"]
    scan = shop.get("/Product/?stock=2&explain(true)").json()
    assert scan["conditions"][0]["access"] == "scan"
    assert any(line.startswith("SCAN") for line in scan["sqlite"])
    both = shop.get("/Product/?price=gt=10&lt=100&explain(true)").json()  # one index, two ends
    assert [c["access"] for c in both["conditions"]] == ["index", "index"]


async def test_enforce_execution_order(shop):
    query = Query(
        conditions=[Condition("stock", "greater_than", 1), Condition("brand_id", "equals", "acme")],
        explain=True,
        enforce_execution_order=True,
    )
    (plan,) = [p async for p in Product.search(query)]
    assert [c["attribute"] for c in plan["conditions"]] == ["stock", "brand_id"]
    query.enforce_execution_order = False
    (plan,) = [p async for p in Product.search(query)]
    assert [c["attribute"] for c in plan["conditions"]] == ["brand_id", "stock"]


async def test_table_search_with_objects_and_dicts(shop):
    query = Query(
        conditions=[Condition("price", "greater_than", 20),
                    Group("or", [Condition("name", "starts_with", "Air"),
                                 Condition(["brand", "name"], "equals", "Zen")])],
        sort=Sort("price", descending=True, next=Sort("name")),
        limit=2,
    )  # fmt: skip
    assert [p.id async for p in Product.search(query)] == ["p1", "p3"]
    as_dict = {
        "conditions": [{"attribute": "price", "comparator": "greater_than", "value": 20},
                       {"operator": "or", "conditions": [
                           {"attribute": "name", "comparator": "starts_with", "value": "Air"},
                           {"attribute": "brand.name", "comparator": "equals", "value": "Zen"}]}],
        "sort": {"attribute": "price", "descending": True, "next": {"attribute": "name"}},
        "limit": 2,
    }  # fmt: skip
    assert [p.id async for p in Product.search(as_dict)] == ["p1", "p3"]
    harper = {
        "conditions": [{"search_attribute": "price", "search_type": "lt", "search_value": 10}]
    }
    assert [p.id async for p in Product.search(harper)] == ["p5"]
    selected = Product.search({"select": ["id", {"name": "brand", "select": ["name"]}],
                               "conditions": [{"attribute": "id", "value": "p3"}]})  # fmt: skip
    assert [r async for r in selected] == [{"id": "p3", "brand": {"name": "Zen"}}]
    assert [r async for r in Brand.search(Query(select="name", sort=Sort("name")))] == [
        "Acme", "Solo", "Zen"]  # fmt: skip
    assert [r async for r in Bundle.search({"select": ("id", "title"), "limit": 1})] == [
        ["b1", "Runner"]]  # fmt: skip
    with pytest.raises(InvalidQuery):
        [r async for r in Product.search({"conditions": [{"attribute": "nope", "value": 1}]})]


def test_strict_queries(shop):
    assert ids(shop.get("/Strict/?code=A")) == ["s1"]
    response = shop.get("/Strict/?note=x")
    assert response.status_code == 400
    assert "strict_queries" in response.json()["error"]["message"]


def test_delete_matching_uses_the_same_compiler(shop):
    response = shop.delete("/Review/?stars=le=3&product_id=p1")
    assert response.status_code == 200 and response.json() == 2
    assert sorted(ids(shop.get("/Review/"))) == ["r1", "r3"]  # r2 and r4 (secret) are gone
    assert shop.delete("/Product/?brand.name=Acme").json() == 2
    assert sorted(ids(shop.get("/Product/"))) == ["p3", "p4", "p5"]
    assert shop.delete("/Product/?nope=1").status_code == 400
    assert shop.delete("/Product/?price=gt=1&explain(true)").json()["conditions"]
    assert len(ids(shop.get("/Product/"))) == 3
