"""The URL grammar of SPEC section 4: every rule and comparator, and the 400s with positions."""

from __future__ import annotations

import datetime as dt

import pytest

from charter.errors import InvalidQuery
from charter.query import Condition, Group, Select, SelectItem, parse_query_string
from charter.query.parser import RawValue
from tests.query.shop import ids


def parse(qs: str):
    return parse_query_string(qs)


# -- the parser on its own ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "name"),
    [
        ("==", "equals"), ("=", "equals"), ("=ne=", "not_equal"), ("!=", "not_equal"),
        ("=lt=", "less_than"), ("=le=", "less_than_equal"), ("=gt=", "greater_than"),
        ("=ge=", "greater_than_equal"), ("=sw=", "starts_with"), ("=ew=", "ends_with"),
        ("=ct=", "contains"), ("=eq=", "equals"),
    ],
)  # fmt: skip
def test_every_comparator_spelling(token, name):
    (condition,) = parse(f"price{token}5").conditions
    assert condition == Condition("price", name, "5")
    assert isinstance(condition.value, RawValue)


def test_between_takes_two_values():
    (condition,) = parse("price=bt=1,5").conditions
    assert condition == Condition("price", "between", ["1", "5"])
    with pytest.raises(InvalidQuery, match="position 10"):
        parse("price=bt=1")


def test_typed_prefixes_and_null():
    values = [c.value for c in parse("a=number:5&b=number:2.5&c=boolean:true&d=string:null&e=null"
                                     "&f=date:2024-01-02T03:04:05").conditions]  # fmt: skip
    assert values == [5, 2.5, True, "null", None, dt.datetime(2024, 1, 2, 3, 4, 5)]
    assert type(values[3]) is str  # typed: not coerced again by the attribute's type
    assert parse("a=number%3A5").conditions[0].value == "number:5"  # an encoded colon is literal
    for bad, position in (("a=number:x", 2), ("a=boolean:yes", 2), ("b=date:soon", 2)):
        with pytest.raises(InvalidQuery, match=f"position {position}"):
            parse(bad)


def test_and_or_and_groups():
    query = parse("[name=sw=Air|name=ew=Max]&brand.name=Acme&stock=ne=0")
    assert query.operator == "and"
    group, brand, _ = query.conditions
    assert group == Group("or", [Condition("name", "starts_with", "Air"),
                                 Condition("name", "ends_with", "Max")])  # fmt: skip
    assert brand.path == ["brand", "name"]
    assert parse("a=1|b=2|c=3").operator == "or"
    nested = parse("(a=1&(b=2|[c=3&d=4]))").conditions[0]
    assert isinstance(nested, Group) and nested.operator == "and"
    assert nested.conditions[1].conditions[1].operator == "and"


def test_mixing_and_or_without_a_group_is_400_with_the_position():
    with pytest.raises(InvalidQuery, match=r"mixed without a group.*position 7"):
        parse("a=1|b=2&c=3")
    with pytest.raises(InvalidQuery, match="position 8"):
        parse("(a=1&b=2|c=3)")


def test_chained_range():
    (chain,) = parse("price=gt=1&lt=9").conditions
    assert chain == Group("and", [Condition("price", "greater_than", "1"),
                                  Condition("price", "less_than", "9")])  # fmt: skip
    # inside an or-level the chain still binds to its attribute
    query = parse("price=ge=1&le=2|stock=0")
    assert query.operator == "or" and len(query.conditions) == 2


def test_percent_encoding():
    (condition,) = parse("name=Sock%20%26%20Co%20%28pair%29%7C%3D").conditions
    assert condition.value == "Sock & Co (pair)|="
    assert parse("na%6De=x").conditions[0].attribute == "name"
    assert parse("name=caf%C3%A9").conditions[0].value == "café"
    with pytest.raises(InvalidQuery, match="position 7"):
        parse("name=ab%zz")
    with pytest.raises(InvalidQuery, match="UTF-8"):
        parse("name=%ff")


def test_select_forms():
    assert parse("select(name)").select == Select([SelectItem("name")], "value")
    assert parse("select(id,name)").select.mode == "object"
    assert parse("select([id,name])").select.mode == "array"
    nested = parse("select(id,brand{name,country{name}},$id,$updatedtime)").select
    assert nested.items[1] == SelectItem(
        "brand", Select([SelectItem("name"), SelectItem("country", Select([SelectItem("name")]))])
    )
    assert [i.name for i in nested.items][2:] == ["$id", "$updatedtime"]


def test_sort_limit_offset_explain():
    query = parse("sort(+price,-brand.name,stock)&limit(5,15)&explain(true)")
    chain = query.sort.chain()
    assert [(s.attribute, s.descending) for s in chain] == [
        ("price", False), (["brand", "name"], True), ("stock", False)]  # fmt: skip
    assert (query.offset, query.limit, query.explain) == (5, 10, True)
    assert parse("limit(3)&offset(7)").limit == 3 and parse("offset(7)").offset == 7
    assert parse("explain(false)").explain is False


@pytest.mark.parametrize(
    ("qs", "position"),
    [
        ("name", 4), ("=x", 0), ("a=1&|b=2", 4), ("a=1|", 4), ("(a=1", 4), ("[a=1)", 4),
        ("a=1)", 3), ("sort(", 5), ("limit(x)", 6), ("limit(1,2,3)", 10),
        ("offset()", 7), ("explain(maybe)", 8), ("select(,)", 7), ("select(a{)", 9),
        ("a=x=y", 1), ("a!b", 1), ("a=(1)", 2), ("(sort(a))", 1), ("a=1|sort(b)", 3),
        ("frobnicate(1)", 0), ("a.=1", 0), ("sort(-)", 5), ("a=1&b", 5),
    ],
)  # fmt: skip
def test_malformed_queries_name_the_position(qs, position):
    with pytest.raises(InvalidQuery, match=f"position {position}\\b"):
        parse(qs)


def test_empty_terms_around_ampersands_are_ignored():
    assert len(parse("&a=1&&b=2&").conditions) == 2
    assert parse("").conditions == []


# -- the grammar over HTTP ----------------------------------------------------------------------


def test_each_comparator_over_http(shop):
    get = lambda qs: sorted(ids(shop.get("/Product/?" + qs)))  # noqa: E731
    assert get("name==Cap") == get("name=Cap") == ["p4"]
    assert get("stock=ne=0") == get("stock!=0") == ["p1", "p3", "p4", "p5"]
    assert get("price=lt=20") == ["p5"]
    assert get("price=le=20") == ["p4", "p5"]
    assert get("price=gt=95.5") == ["p1"]
    assert get("price=ge=95.5") == ["p1", "p3"]
    assert get("name=sw=Air") == ["p1", "p2"]
    assert get("name=ew=Max") == ["p1", "p3"]
    assert get("name=ct=i") == ["p1", "p2", "p3", "p5"]
    assert get("tags=ct=red") == ["p1", "p5"]  # an element of a list
    assert get("price=bt=20,95.5") == ["p2", "p3", "p4"]
    assert get("price=gt=10&lt=100") == ["p2", "p3", "p4"]
    assert get("brand_id=null") == ["p4"]
    assert get("brand_id=ne=null") == ["p1", "p2", "p3", "p5"]
    assert get("active=false") == ["p4"]
    assert get("stock=number:5") == ["p1"]
    assert get("name=Sock%20%26%20Co%20%28pair%29") == ["p5"]
    assert get("[name=sw=Air|name=ew=Max]&stock=ne=0") == ["p1", "p3"]
    assert get("(price=lt=10|price=gt=100)&active=true") == ["p1", "p5"]


def test_values_are_typed_by_the_declared_type(shop):
    response = shop.get("/Product/?stock=lots")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_QUERY"
    assert ids(shop.get("/Product/?price=80")) == ["p2"]  # "80" compares as the float 80.0


def test_a_malformed_query_is_a_400_with_the_position(shop):
    response = shop.get("/Product/?name=Air|stock=1&price=2")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_QUERY"
    assert "position 16" in error["message"]


def test_unknown_and_hidden_attributes_are_400(shop):
    for qs in ("nope=1", "cost=5", "select(cost)", "sort(cost)", "brand.nope=1", "brand=1",
               "sort(reviews.stars)", "select(name{x})"):  # fmt: skip
        response = shop.get("/Product/?" + qs)
        assert response.status_code == 400, qs
        assert response.json()["error"]["code"] == "INVALID_QUERY"


def test_select_sort_limit_over_http(shop):
    top = shop.get("/Product/?select(name)&sort(-price)&limit(2)").json()
    assert top == ["Air Max", "Trail Max"]
    assert shop.get("/Product/?select([id,stock])&sort(stock)&limit(1,3)").json() == [
        ["p3", 2], ["p1", 5]]  # fmt: skip
    assert shop.get("/Product/?select(id,$id)&id=p2").json() == [{"id": "p2", "$id": "p2"}]
    (row,) = shop.get("/Product/?select($updatedtime)&id=p2").json()
    assert row == int(shop.get("/Product/p2").headers["etag"].strip('"'))
    assert ids(shop.get("/Product/?sort(active,-stock)&offset(3)")) == ["p3", "p2"]
    assert ids(shop.get("/Product/?sort(-active,-stock)&limit(2)&offset(1)")) == ["p1", "p3"]


def test_count_exact_and_content_range(shop):
    response = shop.get("/Product/?price=gt=10&sort(price)&limit(1,3)",
                        headers={"prefer": "count=exact"})  # fmt: skip
    assert response.headers["content-range"] == "items 1-2/4"
    assert ids(response) == ["p2", "p3"]
    head = shop.head("/Product/?price=gt=10", headers={"prefer": "count=exact"})
    assert head.headers["content-range"] == "items 0-3/4"
    none = shop.get("/Product/?price=gt=1000", headers={"prefer": "count=exact"})
    assert none.headers["content-range"] == "items */0"
