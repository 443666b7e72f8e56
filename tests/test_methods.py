"""Model methods (SPEC section 5): @get/@post/@put/@patch/@delete on a table's methods, their
parameters, validation of every parameter and result type, and HttpResult/HttpResp."""

import asyncio
import base64
import dataclasses
import datetime as dt
import decimal
import enum
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal, TypedDict

import cbor2
import msgspec
import pytest

from charter import (
    App,
    Field,
    HttpResp,
    HttpResult,
    Partial,
    Table,
    delete,
    get,
    patch,
    post,
    put,
)
from charter.testing import TestClient

# -- tables ----------------------------------------------------------------------------------


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    price: float = 0
    stock: int = 0

    @get
    def label(self) -> str:
        return f"{self.name} ({self.price})"

    @post
    async def restock(self, amount: int) -> int:
        await Product.patch(self.get_id(), {"stock": self.stock + amount})
        return self.stock + amount

    @put
    def rename(self, name: str) -> dict[str, str]:
        return {"id": self.get_id(), "old": self.name, "new": name}

    @patch
    async def bump(self, by: float = 1.0) -> float:
        return self.price + by

    @delete
    async def retire(self) -> None:
        await Product.delete(self.get_id())

    @get
    @staticmethod
    def cheapest(limit: int = 1, names: list[str] | None = None) -> dict[str, Any]:
        return {"limit": limit, "names": names}

    @post
    @staticmethod
    async def discount(percent: float, category: str | None = None) -> dict[str, Any]:
        return {"percent": percent, "category": category}

    @get
    @classmethod
    def table_name(cls) -> str:
        return cls.__name__

    @post
    @classmethod
    async def make(cls, id: str, name: str) -> str:
        await cls.put({"id": id, "name": name})
        return id

    @put
    @staticmethod
    def put_static(value: int) -> int:
        return value * 2

    @patch
    @staticmethod
    def patch_static(value: int) -> int:
        return value * 3

    @delete
    @staticmethod
    def delete_static() -> str:
        return "gone"

    @get
    @staticmethod
    def nap() -> str:
        time.sleep(0.5)  # blocking: must run off the event loop
        return "rested"

    @get
    @staticmethod
    async def quick() -> str:
        return "quick"


@pytest.fixture
def client(serve):
    client = serve(Product)
    assert client.put("/Product/p1", json={"name": "Air", "price": 30, "stock": 2}).status_code
    return client


# -- 1. routes and verbs -----------------------------------------------------------------------


def test_instance_get_loads_the_record_as_self(client):
    response = client.get("/Product/p1/label")
    assert response.status_code == 200
    assert response.json() == "Air (30.0)"


def test_instance_method_on_a_missing_record_is_404(client):
    for method, path, body in [
        ("GET", "/Product/nope/label", None),
        ("POST", "/Product/nope/restock", {"amount": 1}),
        ("DELETE", "/Product/nope/retire", None),
    ]:
        response = client.request(method, path, json=body)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "NOT_FOUND"


def test_instance_methods_on_every_verb(client):
    restocked = client.post("/Product/p1/restock", json={"amount": 3})
    assert restocked.status_code == 200
    assert restocked.json() == 5
    assert client.get("/Product/p1").json()["stock"] == 5
    renamed = client.put("/Product/p1/rename", json={"name": "Max"})
    assert renamed.json() == {"id": "p1", "old": "Air", "new": "Max"}
    assert client.patch("/Product/p1/bump", json={"by": 2.5}).json() == 32.5
    assert client.patch("/Product/p1/bump", json={}).json() == 31.0
    retired = client.delete("/Product/p1/retire")
    assert retired.status_code == 204
    assert client.get("/Product/p1").status_code == 404


def test_static_methods_on_every_verb(client):
    assert client.get("/Product/cheapest").json() == {"limit": 1, "names": None}
    response = client.post("/Product/discount", json={"percent": 10})
    assert response.status_code == 200
    assert response.json() == {"percent": 10.0, "category": None}
    assert client.put("/Product/put_static", json={"value": 2}).json() == 4
    assert client.patch("/Product/patch_static", json={"value": 2}).json() == 6
    assert client.delete("/Product/delete_static").json() == "gone"


def test_classmethods_receive_the_class(client):
    assert client.get("/Product/table_name").json() == "Product"
    assert client.post("/Product/make", json={"id": "p9", "name": "Cap"}).json() == "p9"
    assert client.get("/Product/p9").json()["name"] == "Cap"


def test_methods_are_inherited_by_child_tables(serve):
    class Special(Product):
        pass

    client = serve(Special)
    assert client.get("/Special/table_name").json() == "Special"
    assert client.post("/Special/discount", json={"percent": 1}).status_code == 200
    assert client.put("/Special/s1", json={"name": "S", "price": 2}).status_code == 204
    assert client.get("/Special/s1/label").json() == "S (2.0)"


def test_rest_routes_still_work_beside_methods(client):
    assert client.get("/Product/p1").json()["name"] == "Air"
    assert client.get("/Product/label").status_code == 404  # a record key, not a method
    assert client.post("/Product/", json={"id": "p2", "name": "Bag"}).status_code == 201


def test_wrong_verb_is_405(client):
    response = client.post("/Product/p1/label")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_get_parameters_are_coerced_from_the_query_string(client):
    response = client.get("/Product/cheapest?limit=5")
    assert response.json() == {"limit": 5, "names": None}
    bad = client.get("/Product/cheapest?limit=five")
    assert bad.status_code == 422
    (detail,) = bad.json()["error"]["details"]
    assert detail["loc"] == ["query", "limit"]
    assert detail["code"] == "UNMATCHING_PROPERTIES"


@pytest.mark.parametrize(
    "query", ["names=a&names=b", "names[]=a&names[]=b", "names%5B%5D=a&names%5B%5D=b"]
)
def test_repeated_or_bracketed_query_keys_make_lists(client, query):
    response = client.get(f"/Product/cheapest?{query}")
    assert response.status_code == 200, response.content
    assert response.json() == {"limit": 1, "names": ["a", "b"]}


def test_a_single_value_for_a_list_parameter_is_a_list(client):
    assert client.get("/Product/cheapest?names=a").json()["names"] == ["a"]


@pytest.mark.parametrize(
    ("media_type", "encode", "decode"),
    [
        ("application/json", msgspec.json.encode, msgspec.json.decode),
        ("application/msgpack", msgspec.msgpack.encode, msgspec.msgpack.decode),
        ("application/cbor", cbor2.dumps, cbor2.loads),
    ],
)
def test_bodies_in_every_format(client, media_type, encode, decode):
    headers = {"content-type": media_type, "accept": media_type}
    body = encode({"percent": 12.5, "category": "shoes"})
    response = client.post("/Product/discount", content=body, headers=headers)
    assert response.status_code == 200, response.content
    assert response.headers["content-type"] == media_type
    assert decode(response.content) == {"percent": 12.5, "category": "shoes"}
    bad = client.post("/Product/discount", content=encode({"percent": "x"}), headers=headers)
    assert bad.status_code == 422
    assert decode(bad.content)["error"]["details"][0]["loc"] == ["body", "percent"]


def test_body_must_be_an_object_of_named_parameters(client):
    missing = client.post("/Product/discount", json={})
    assert missing.status_code == 422
    assert missing.json()["error"]["details"] == [
        {"loc": ["body", "percent"], "code": "MISSING_PROPERTY", "message": "property is required"}
    ]
    extra = client.post("/Product/discount", json={"percent": 1, "colour": "red"})
    assert extra.status_code == 422
    assert extra.json()["error"]["details"][0]["loc"] == ["body", "colour"]
    assert extra.json()["error"]["details"][0]["code"] == "EXTRANEOUS_PROPERTY"
    empty = client.post("/Product/discount")
    assert empty.status_code == 422
    not_object = client.post("/Product/discount", json="ten")
    assert not_object.status_code == 422
    assert not_object.json()["error"]["details"][0]["loc"] == ["body"]
    malformed = client.post(
        "/Product/discount", content=b"{", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "MALFORMED_INPUT"


def test_body_is_not_coerced(client):
    response = client.post("/Product/discount", json={"percent": "10"})
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["loc"] == ["body", "percent"]
    assert detail["expected"] == "number"
    assert detail["got"] == "string"


async def test_a_sync_method_does_not_block_the_event_loop(database):
    app = App(tables=[Product], database=database)
    async with TestClient(app) as client:
        slow = asyncio.ensure_future(client.get("/Product/nap"))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        quick = await client.get("/Product/quick")
        elapsed = time.perf_counter() - started
        assert quick.json() == "quick"
        assert elapsed < 0.3
        assert not slow.done()
        assert (await slow).json() == "rested"


# -- 2. validation of every parameter and result type ------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Size(msgspec.Struct):
    width: float
    height: float


class Address(TypedDict):
    street: str
    city: str


@dataclasses.dataclass
class Inner:
    a: int
    b: str


@dataclasses.dataclass
class Outer:
    name: str
    inner: Inner
    tags: list[str]


class Brand(Table):
    id: str = Field(primary_key=True)
    name: str
    country: str = "FR"


NOW = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")

# (annotation, a valid JSON value, what the method receives, an invalid JSON value)
CASES: list[tuple[str, Any, Any, Any, Any]] = [
    ("str", str, "hi", "hi", 1),
    ("int", int, 3, 3, 3.5),
    ("float", float, 2.5, 2.5, "2.5"),
    ("bool", bool, True, True, 1),
    ("bytes", bytes, base64.b64encode(b"\x00\xff").decode(), b"\x00\xff", "***"),
    ("datetime", dt.datetime, "2024-05-06T07:08:09Z", NOW, "yesterday"),
    ("date", dt.date, "2024-05-06", dt.date(2024, 5, 6), "2024-13-45"),
    ("uuid", uuid.UUID, str(UID), UID, "not-a-uuid"),
    ("decimal", decimal.Decimal, "1.25", decimal.Decimal("1.25"), "abc"),
    ("list", list[int], [1, 2], [1, 2], [1, "2"]),
    ("dict", dict[str, int], {"a": 1}, {"a": 1}, {"a": "1"}),
    ("optional", int | None, None, None, "x"),
    ("literal", Literal["a", "b"], "b", "b", "c"),
    ("enum", Colour, "red", Colour.RED, "green"),
    ("intenum", Level, 2, Level.HIGH, 3),
    ("dataclass", Point, {"x": 1, "y": 2}, Point(1, 2), {"x": 1}),
    ("struct", Size, {"width": 1.5, "height": 2.0}, Size(1.5, 2.0), {"width": "1"}),
    ("typeddict", Address, {"street": "s", "city": "c"}, {"street": "s", "city": "c"}, {}),
    ("nested", Outer, {"name": "n", "inner": {"a": 1, "b": "x"}, "tags": []},
     Outer("n", Inner(1, "x"), []), {"name": "n", "inner": {"a": "1", "b": "x"}, "tags": []}),
]  # fmt: skip


def _echo_table(cases):
    """A table with one static ``echo_<name>(value: T) -> T`` per case; it records arguments."""
    seen: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__annotations__": {"id": str}, "id": Field(primary_key=True)}
    for name, annotation, *_ in cases:

        def make(name=name, annotation=annotation):
            async def echo(value):
                seen[name] = value
                return value

            echo.__name__ = f"echo_{name}"
            echo.__annotations__ = {"value": annotation, "return": annotation}
            return post(staticmethod(echo))

        namespace[f"echo_{name}"] = make()
    return type("Echo", (Table,), namespace), seen


Echo, SEEN = _echo_table(CASES)


@pytest.fixture
def echo(serve):
    SEEN.clear()
    return serve(Echo, Brand)


@pytest.mark.parametrize(("name", "annotation", "good", "received", "bad"), CASES)
def test_every_parameter_type_is_validated(echo, name, annotation, good, received, bad):
    response = echo.post(f"/Echo/echo_{name}", json={"value": good})
    assert response.status_code in (200, 204), response.content
    assert SEEN[name] == received
    assert type(SEEN[name]) is type(received)
    if response.status_code == 200:
        assert response.json() == good
    invalid = echo.post(f"/Echo/echo_{name}", json={"value": bad})
    assert invalid.status_code == 422, (name, invalid.content)
    error = invalid.json()["error"]
    assert error["code"] == "INVALID_PROPERTIES"
    assert error["details"][0]["loc"][:2] == ["body", "value"]


def test_any_accepts_any_json(serve):
    class Anything(Table):
        id: str = Field(primary_key=True)

        @post
        @staticmethod
        def echo(value: Any) -> Any:
            return value

    client = serve(Anything)
    for value in [1, "x", [1, {"a": None}], {"k": [True]}]:
        assert client.post("/Anything/echo", json={"value": value}).json() == value
    assert client.post("/Anything/echo", json={"value": None}).status_code == 204


def test_nested_error_locations(echo):
    response = echo.post(
        "/Echo/echo_nested",
        json={"value": {"name": "n", "inner": {"a": "1", "b": "x"}, "tags": []}},
    )
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["loc"] == ["body", "value", "inner", "a"]
    assert detail["expected"] == "integer"


def test_query_parameters_of_every_scalar_type(serve):
    class Q(Table):
        id: str = Field(primary_key=True)

        @get
        @staticmethod
        def typed(
            n: int,
            f: float,
            b: bool,
            d: dt.date,
            at: dt.datetime,
            u: uuid.UUID,
            c: Colour,
            lit: Literal["x", "y"],
            money: decimal.Decimal,
            opt: int | None = None,
        ) -> dict[str, Any]:
            assert isinstance(at, dt.datetime) and isinstance(u, uuid.UUID)
            assert isinstance(c, Colour) and isinstance(money, decimal.Decimal)
            return {"n": n, "f": f, "b": b, "d": d, "c": c.value, "lit": lit, "opt": opt}

    client = serve(Q)
    query = f"n=1&f=2.5&b=true&d=2024-05-06&at=2024-05-06T07:08:09Z&u={UID}&c=blue&lit=y&money=1.5"
    response = client.get(f"/Q/typed?{query}")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "n": 1, "f": 2.5, "b": True, "d": "2024-05-06", "c": "blue", "lit": "y", "opt": None
    }  # fmt: skip
    bad = client.get(f"/Q/typed?{query.replace('c=blue', 'c=green')}")
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["loc"] == ["query", "c"]
    missing = client.get("/Q/typed?n=1")
    assert missing.status_code == 422
    locs = [d["loc"] for d in missing.json()["error"]["details"]]
    assert ["query", "f"] in locs and ["query", "money"] in locs
    assert ["query", "opt"] not in locs


def test_a_table_parameter_arrives_as_a_table_instance(echo):
    seen = {}

    class Shop(Table):
        id: str = Field(primary_key=True)

        @post
        @staticmethod
        def register(brand: Brand) -> str:
            seen["brand"] = brand
            return f"{brand.name}/{brand.country}"

    client = TestClient(App(tables=[Shop, Brand], database=echo.app.config.database))
    with client:
        response = client.post("/Shop/register", json={"brand": {"id": "b1", "name": "Acme"}})
        assert response.status_code == 200, response.content
        assert response.json() == "Acme/FR"
        assert isinstance(seen["brand"], Brand)
        assert seen["brand"].get_id() == "b1"
        bad = client.post("/Shop/register", json={"brand": {"id": "b1", "name": 3}})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["loc"] == ["body", "brand", "name"]
        extra = client.post("/Shop/register", json={"brand": {"id": "b", "name": "A", "x": 1}})
        assert extra.status_code == 422


def test_containers_of_tables_and_partials_arrive_converted(serve):
    seen = {}

    class Group(Table):
        id: str = Field(primary_key=True)

        @post
        @staticmethod
        def brands(items: list[Brand], by_key: dict[str, Brand] | None = None) -> int:
            seen["items"], seen["by_key"] = items, by_key
            return len(items)

        @post
        @staticmethod
        def changes(items: list[Partial[Inner]], one: Partial[Inner] | None = None) -> int:
            seen["changes"], seen["one"] = items, one
            return len(items)

    client = serve(Group, Brand)
    body = {"items": [{"id": "b1", "name": "A"}], "by_key": {"k": {"id": "b2", "name": "B"}}}
    assert client.post("/Group/brands", json=body).json() == 1
    assert [type(b) for b in seen["items"]] == [Brand]
    assert seen["items"][0].name == "A"
    assert isinstance(seen["by_key"]["k"], Brand)
    assert seen["by_key"]["k"].get_id() == "b2"
    body = {"items": [{"a": 1}, {}], "one": {"b": "x"}}
    assert client.post("/Group/changes", json=body).json() == 2
    assert seen["changes"] == [{"a": 1}, {}]
    assert seen["one"] == {"b": "x"}


def test_partial_makes_every_field_optional_recursively(serve):
    seen = {}

    class Doc(Table):
        id: str = Field(primary_key=True)
        title: str
        outer: Outer | None = None

        @patch
        async def update(self, changes: Partial[Outer]) -> list[str]:
            seen["changes"] = changes
            return sorted(changes)

        @post
        @staticmethod
        def edit_brand(changes: Partial[Brand]) -> dict[str, Any]:
            seen["brand"] = changes
            return changes

    client = serve(Doc, Brand)
    assert client.put("/Doc/d1", json={"title": "t"}).status_code == 204
    response = client.patch("/Doc/d1/update", json={"changes": {"inner": {"b": "x"}}})
    assert response.status_code == 200, response.content
    assert response.json() == ["inner"]
    assert seen["changes"] == {"inner": {"b": "x"}}
    assert type(seen["changes"]) is dict
    assert client.patch("/Doc/d1/update", json={"changes": {}}).json() == []
    bad = client.patch("/Doc/d1/update", json={"changes": {"inner": {"a": "1"}}})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["loc"] == ["body", "changes", "inner", "a"]
    unknown = client.patch("/Doc/d1/update", json={"changes": {"nope": 1}})
    assert unknown.status_code == 422
    assert client.post("/Doc/edit_brand", json={"changes": {"country": "DE"}}).json() == {
        "country": "DE"
    }
    assert seen["brand"] == {"country": "DE"}


BYTES = b"\x00\x01binary\xff"


def test_bytes_are_base64_in_json_and_raw_in_msgpack_and_cbor(echo):
    text = base64.b64encode(BYTES).decode()
    response = echo.post("/Echo/echo_bytes", json={"value": text})
    assert response.json() == text
    assert SEEN["bytes"] == BYTES
    for media_type, encode, decode in [
        ("application/msgpack", msgspec.msgpack.encode, msgspec.msgpack.decode),
        ("application/cbor", cbor2.dumps, cbor2.loads),
    ]:
        SEEN.clear()
        headers = {"content-type": media_type, "accept": media_type}
        response = echo.post("/Echo/echo_bytes", content=encode({"value": BYTES}), headers=headers)
        assert response.status_code == 200, response.content
        assert SEEN["bytes"] == BYTES
        assert decode(response.content) == BYTES


def test_rich_results_are_encoded_in_every_format(echo):
    response = echo.post(
        "/Echo/echo_datetime",
        content=cbor2.dumps({"value": NOW}),
        headers={"content-type": "application/cbor", "accept": "application/cbor"},
    )
    assert response.status_code == 200, response.content
    assert cbor2.loads(response.content) == NOW
    assert echo.post("/Echo/echo_uuid", json={"value": str(UID)}).json() == str(UID)
    assert echo.post("/Echo/echo_decimal", json={"value": "1.25"}).json() == "1.25"


class Checked(Table):
    id: str = Field(primary_key=True)

    @get
    @staticmethod
    def wrong_int() -> int:
        return "not an int"  # type: ignore[return-value]

    @get
    @staticmethod
    async def wrong_struct() -> Size:
        return {"width": "secret-internal-value"}  # type: ignore[return-value]

    @get
    @staticmethod
    def wrong_list() -> list[int]:
        return [1, "2"]  # type: ignore[list-item]

    @get
    @staticmethod
    def right_struct() -> Size:
        return Size(1.0, 2.0)

    @get
    @staticmethod
    def wrong_optional() -> int | None:
        return 1.5  # type: ignore[return-value]


@pytest.mark.parametrize("name", ["wrong_int", "wrong_struct", "wrong_list", "wrong_optional"])
def test_an_invalid_result_is_500_and_logged(serve, caplog, name):
    client = serve(Checked)
    with caplog.at_level(logging.ERROR):
        response = client.get(f"/Checked/{name}")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "INVALID_RESPONSE"
    assert "secret-internal-value" not in response.text
    assert "Checked" not in error["message"]
    assert any(name in r.getMessage() and r.levelno >= logging.ERROR for r in caplog.records)


def test_a_method_declared_to_return_none_must_return_none(serve, caplog):
    class Quiet(Table):
        id: str = Field(primary_key=True)

        @post
        @staticmethod
        def chatty() -> None:
            return 5  # type: ignore[return-value]

    client = serve(Quiet)
    with caplog.at_level(logging.ERROR):
        response = client.post("/Quiet/chatty")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INVALID_RESPONSE"
    assert any("chatty" in r.getMessage() for r in caplog.records)


def test_a_valid_result_passes(serve):
    client = serve(Checked)
    assert client.get("/Checked/right_struct").json() == {"width": 1.0, "height": 2.0}


def test_results_are_validated_even_without_the_test_client_default(database):
    app = App(tables=[Checked], database=database, validate_responses=False)
    with TestClient(app) as client:
        response = client.get("/Checked/wrong_int")
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "INVALID_RESPONSE"
        assert client.get("/Checked/right_struct").status_code == 200


class Secretive(Table):
    id: str = Field(primary_key=True)
    name: str
    secret: str = Field(default="", returned=False)

    @get
    def me(self) -> "Secretive":
        return self

    @get
    def all_of_me(self) -> list["Secretive"]:
        return [self, self]


def test_returning_a_record_sends_its_public_view(serve):
    client = serve(Secretive)
    assert client.put("/Secretive/s1", json={"name": "n", "secret": "x"}).status_code == 204
    assert client.get("/Secretive/s1/me").json() == {"id": "s1", "name": "n"}
    assert client.get("/Secretive/s1/all_of_me").json() == [{"id": "s1", "name": "n"}] * 2


# -- 3. HttpResult and HttpResp ----------------------------------------------------------------


class Results(Table):
    id: str = Field(primary_key=True)

    @post
    @staticmethod
    def created(name: str) -> HttpResult[dict[str, str]]:
        return HttpResp.created({"name": name}, location=f"/Results/{name}")

    @get
    @staticmethod
    def ok() -> HttpResult[int]:
        return HttpResp.ok(7, headers={"X-Extra": "yes"})

    @get
    @staticmethod
    def custom() -> HttpResult[str]:
        return HttpResult("teapot", status=418, headers={"X-Brew": "tea"})

    @delete
    @staticmethod
    def nothing() -> HttpResult[None]:
        return HttpResp.no_content(headers={"X-Done": "1"})

    @get
    @staticmethod
    def moved(permanent: bool = False) -> HttpResult[None]:
        return HttpResp.redirect("/Results/elsewhere", permanent=permanent)

    @post
    @staticmethod
    async def void() -> None:
        return None

    @get
    @staticmethod
    def wrong() -> HttpResult[int]:
        return HttpResp.ok("seven")

    @get
    @staticmethod
    def maybe(give: bool) -> int | None:
        return 1 if give else None


@pytest.fixture
def results(serve):
    return serve(Results)


def test_created_sets_201_and_location(results):
    response = results.post("/Results/created", json={"name": "n1"})
    assert response.status_code == 201
    assert response.headers["location"] == "/Results/n1"
    assert response.json() == {"name": "n1"}


def test_ok_and_custom_results_set_status_and_headers(results):
    ok = results.get("/Results/ok")
    assert ok.status_code == 200
    assert ok.headers["x-extra"] == "yes"
    assert ok.json() == 7
    custom = results.get("/Results/custom")
    assert custom.status_code == 418
    assert custom.headers["x-brew"] == "tea"
    assert custom.json() == "teapot"


def test_no_content_and_none_are_204(results):
    nothing = results.delete("/Results/nothing")
    assert nothing.status_code == 204
    assert nothing.headers["x-done"] == "1"
    assert nothing.content == b""
    void = results.post("/Results/void")
    assert void.status_code == 204
    assert void.content == b""
    assert results.get("/Results/maybe?give=false").status_code == 204
    assert results.get("/Results/maybe?give=true").json() == 1


def test_redirects(results):
    temporary = results.get("/Results/moved", follow_redirects=False)
    assert temporary.status_code == 307
    assert temporary.headers["location"] == "/Results/elsewhere"
    permanent = results.get("/Results/moved?permanent=true", follow_redirects=False)
    assert permanent.status_code == 308
    assert permanent.headers["location"] == "/Results/elsewhere"


def test_an_http_result_body_is_validated(results, caplog):
    with caplog.at_level(logging.ERROR):
        response = results.get("/Results/wrong")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INVALID_RESPONSE"
    assert any("wrong" in r.getMessage() for r in caplog.records)


# -- streams -----------------------------------------------------------------------------------


class Files(Table):
    id: str = Field(primary_key=True)

    @post
    @staticmethod
    async def upload(data: AsyncIterator[bytes]) -> int:
        size = 0
        async for chunk in data:
            size += len(chunk)
        return size

    @get
    @staticmethod
    async def download(n: int) -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"chunk{i};".encode()


def test_streams_in_and_out(serve):
    client = serve(Files)
    response = client.post("/Files/upload", content=b"x" * 100_000)
    assert response.status_code == 200
    assert response.json() == 100_000
    download = client.get("/Files/download?n=3")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.content == b"chunk0;chunk1;chunk2;"


def test_the_methods_page_runs():
    # docs/methods.md: its Python blocks form one program that ends by asserting what it serves.
    text = (Path(__file__).resolve().parent.parent / "docs" / "methods.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))
    assert "TestClient(app)" in code
    exec(compile(code, "docs/methods.md", "exec"), {"__name__": "docs_methods"})
