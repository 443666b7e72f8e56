"""Declaring tables (fields, types, options) and the Python API of a table class."""

import asyncio
import base64
import dataclasses
import datetime as dt
import decimal
import enum
import time
import uuid
from typing import Annotated, Any, Literal, TypedDict

import msgspec
import pytest

from charter import App, CharterError, Field, NotFound, Query, Table, perms, relationship
from charter import get as get_method
from charter.query import Condition
from charter.testing import TestClient


class Brand(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True, description="what the customer sees")
    price: float = Field(indexed=True, ge=0)
    stock: int = 0
    tags: list[str] = []
    brand_id: str | None = Field(default=None, indexed=True)
    brand: Brand | None = relationship(from_="brand_id")
    cost: float = Field(default=0, returned=False)
    owner: str | None = Field(default=None, input=False)
    views: int = Field(default=0, perm=perms.R__)


# -- field options ----------------------------------------------------------------------------


def test_primary_key_is_generated_as_a_uuid_string_when_omitted(serve):
    client = serve(Brand, Product)
    response = client.post("/Product/", json={"name": "Air", "price": 10})
    assert response.status_code == 201
    key = response.json()["id"]
    assert str(uuid.UUID(key)) == key
    assert client.get(f"/Product/{key}").json()["name"] == "Air"


def test_generated_keys_are_distinct_random_version_4_uuids(serve):
    client = serve(Brand, Product)
    made = [client.post("/Product/", json={"name": "A", "price": 1}) for _ in range(64)]
    keys = [response.json()["id"] for response in made]
    parsed = [uuid.UUID(key) for key in keys]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert [str(u) for u in parsed] == keys  # canonical: lower case, hyphenated
    assert len(set(keys)) == 64
    assert {key[19] for key in keys} == set("89ab")  # the variant digit keeps two random bits


def test_given_primary_key_is_kept(serve):
    client = serve(Brand, Product)
    response = client.post("/Product/", json={"id": "p1", "name": "Air", "price": 10})
    assert response.json()["id"] == "p1"
    assert response.headers["location"] == "/Product/p1"


def test_defaults_are_applied_and_mutable_defaults_not_shared(serve):
    client = serve(Brand, Product)
    client.post("/Product/", json={"id": "a", "name": "A", "price": 1})
    client.post("/Product/", json={"id": "b", "name": "B", "price": 1})
    client.patch("/Product/a", json={"tags": ["x"]})
    a, b = client.get("/Product/a").json(), client.get("/Product/b").json()
    assert a == {
        "id": "a",
        "name": "A",
        "price": 1,
        "stock": 0,
        "tags": ["x"],
        "brand_id": None,
        "owner": None,
        "views": 0,
    }
    assert b["tags"] == []
    assert b["stock"] == 0


def test_returned_false_is_stored_but_never_in_a_response(serve):
    client = serve(Brand, Product)
    created = client.post("/Product/", json={"id": "p", "name": "A", "price": 1, "cost": 7.5})
    assert "cost" not in created.json()
    assert "cost" not in client.get("/Product/p").json()
    assert "cost" not in client.get("/Product/?id=p").json()[0]
    packed = client.get("/Product/p", headers={"accept": "application/msgpack"}).content
    assert "cost" not in msgspec.msgpack.decode(packed)
    put = client.put(
        "/Product/p",
        json={"name": "A", "price": 1, "cost": 8},
        headers={"prefer": "return=representation"},
    )
    assert put.status_code == 200
    assert "cost" not in put.json()
    assert client.get("/Product/p.cost").status_code == 404
    assert "cost" not in client.get("/Product/.csv").text.splitlines()[0].split(",")
    assert "cost" not in client.get("/Product").json()["properties"]


async def test_returned_false_is_readable_by_server_code(database):
    app = App(tables=[Brand, Product], database=database)
    async with TestClient(app) as client:
        await client.post("/Product/", json={"id": "p", "name": "A", "price": 1, "cost": 7.5})
        assert (await Product.get("p")).cost == 7.5
        assert "cost" not in (await client.get("/Product/p")).json()


def test_input_false_is_dropped_from_client_input(serve):
    client = serve(Brand, Product)
    created = client.post("/Product/", json={"id": "p", "name": "A", "price": 1, "owner": "eve"})
    assert created.status_code == 201
    assert created.json()["owner"] is None
    client.patch("/Product/p", json={"owner": "eve"})
    assert client.get("/Product/p").json()["owner"] is None
    client.put("/Product/p", json={"name": "A", "price": 1, "owner": "eve"})
    assert client.get("/Product/p").json()["owner"] is None


async def test_server_sets_input_false_fields_and_put_keeps_them(database):
    app = App(tables=[Brand, Product], database=database)
    async with TestClient(app) as client:
        await client.post("/Product/", json={"id": "p", "name": "A", "price": 1})
        async with app.transaction():
            record = await Product.get("p")
            await Product.put({**record.to_dict(), "owner": "admin"})
        assert (await client.get("/Product/p")).json()["owner"] == "admin"
        await client.put("/Product/p", json={"name": "B", "price": 2})
        assert (await client.get("/Product/p")).json() == {
            "id": "p",
            "name": "B",
            "price": 2,
            "stock": 0,
            "tags": [],
            "brand_id": None,
            "owner": "admin",
            "views": 0,
        }


def test_perm_read_only_field_is_readable_not_writable(serve):
    """Read-only and ``input=False`` attributes sent by a client are dropped (SPEC section 1);
    the rest of the write applies."""
    client = serve(Brand, Product)
    created = client.post(
        "/Product/", json={"id": "p", "name": "A", "price": 1, "views": 99, "owner": "eve"}
    )
    assert created.status_code == 201
    assert created.json()["views"] == 0 and created.json()["owner"] is None
    assert client.get("/Product/p").json()["views"] == 0
    patched = client.patch("/Product/p", json={"views": 50, "owner": "eve", "stock": 3})
    assert patched.status_code == 204
    assert client.get("/Product/p.views").json() == 0
    assert client.get("/Product/p").json()["stock"] == 3
    assert client.get("/Product/p").json()["owner"] is None
    put = client.put("/Product/p", json={"name": "B", "price": 1, "views": 5, "owner": "eve"})
    assert put.status_code == 204
    after = client.get("/Product/p").json()
    assert (after["views"], after["owner"], after["name"]) == (0, None, "B")
    assert client.get("/Product").json()["properties"]["views"]["readOnly"] is True


class Limits(Table):
    id: int = Field(primary_key=True)
    ge0: int = Field(default=0, ge=0)
    gt0: float = Field(default=1, gt=0)
    le9: int = Field(default=0, le=9)
    lt9: int = Field(default=0, lt=9)
    code: str = Field(default="ab", min_length=2, max_length=4, pattern="^[a-z]+$")
    pair: list[int] = Field(default_factory=lambda: [1, 2], min_length=2, max_length=3)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"ge0": -1}, "NUMERIC_CONSTRAINT"),
        ({"gt0": 0}, "NUMERIC_CONSTRAINT"),
        ({"le9": 10}, "NUMERIC_CONSTRAINT"),
        ({"lt9": 9}, "NUMERIC_CONSTRAINT"),
        ({"code": "a"}, "STRING_CONSTRAINT"),
        ({"code": "abcde"}, "STRING_CONSTRAINT"),
        ({"code": "AB"}, "STRING_CONSTRAINT"),
        ({"pair": [1]}, "MORE_ITEMS_EXPECTED"),
        ({"pair": [1, 2, 3, 4]}, "LESS_ITEMS_EXPECTED"),
    ],
)
def test_constraints_are_checked(serve, body, code):
    client = serve(Limits)
    response = client.post("/Limits/", json={"id": 1, **body})
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["code"] == code
    assert detail["loc"] == ["body", next(iter(body))]
    assert client.get("/Limits/1").status_code == 404


def test_constraints_at_their_bounds_are_accepted(serve):
    client = serve(Limits)
    body = {"id": 1, "ge0": 0, "gt0": 0.5, "le9": 9, "lt9": 8, "code": "abcd", "pair": [1, 2, 3]}
    assert client.post("/Limits/", json=body).status_code == 201
    assert client.get("/Limits/1").json() == body


def test_description_is_in_the_json_schema(serve):
    client = serve(Brand, Product)
    schema = client.get("/Product").json()
    assert schema["properties"]["name"]["description"] == "what the customer sees"


class Stamped(Table):
    id: str = Field(primary_key=True)
    note: str = ""
    created: int = Field(default=0, created_time=True)
    updated: dt.datetime | None = Field(default=None, updated_time=True)


def test_created_and_updated_time_are_maintained_by_the_server(serve):
    client = serve(Stamped)
    before = dt.datetime.now(dt.UTC)
    created = client.post(
        "/Stamped/", json={"id": "s", "created": 1, "updated": "2000-01-01T00:00:00Z"}
    )
    assert created.status_code == 201
    first = client.get("/Stamped/s").json()
    assert first["created"] >= int(before.timestamp() * 1000) - 1
    first_updated = dt.datetime.fromisoformat(first["updated"])
    assert first_updated >= before - dt.timedelta(milliseconds=1)
    time.sleep(0.005)  # stamps have millisecond resolution: each write below gets a later one
    assert client.put("/Stamped/s", json={"note": "x", "created": 5}).status_code == 204
    second = client.get("/Stamped/s").json()
    assert second["created"] == first["created"]
    assert dt.datetime.fromisoformat(second["updated"]) > first_updated
    time.sleep(0.005)
    patched = client.patch("/Stamped/s", json={"note": "y", "updated": "2000-01-01T00:00:00Z"})
    assert patched.status_code == 204
    third = client.get("/Stamped/s").json()
    assert third["created"] == first["created"]
    assert third["note"] == "y"
    assert dt.datetime.fromisoformat(third["updated"]) > dt.datetime.fromisoformat(
        second["updated"]
    )


# -- field types ------------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Size:
    width: float
    height: float


class Point(msgspec.Struct):
    x: int
    y: int


class Meta(TypedDict):
    source: str
    rank: int


class Everything(Table):
    id: str = Field(primary_key=True)
    text: str = ""
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    blob: bytes = b""
    at: dt.datetime | None = None
    day: dt.date | None = None
    uid: uuid.UUID | None = None
    amount: decimal.Decimal | None = None
    anything: Any = None
    numbers: list[int] = []
    scores: dict[str, float] = {}
    maybe: int | None = None
    size: Literal["S", "M", "L"] = "M"
    color: Color = Color.RED
    level: Level = Level.LOW
    box: Size | None = None
    point: Point | None = None
    meta: Meta | None = None
    rating: Annotated[int, Field(ge=1, le=5)] = 3
    points: list[Point] = []


FULL = {
    "id": "e1",
    "text": "héllo",
    "count": -3,
    "ratio": 0.25,
    "flag": True,
    "blob": base64.b64encode(b"\x00\x01bytes").decode(),
    "at": "2024-05-01T12:30:00Z",
    "day": "2024-05-01",
    "uid": "6f1c1a9e-4b53-4b59-9f51-8a6c2b1f3c11",
    "amount": "12.50",
    "anything": {"nested": [1, "two", None, {"three": 3.5}]},
    "numbers": [1, 2, 3],
    "scores": {"a": 1.5, "b": -2.0},
    "maybe": None,
    "size": "L",
    "color": "blue",
    "level": 2,
    "box": {"width": 1.5, "height": 2.5},
    "point": {"x": 1, "y": 2},
    "meta": {"source": "import", "rank": 4},
    "rating": 5,
    "points": [{"x": 0, "y": 0}, {"x": 3, "y": 4}],
}


def test_every_field_type_round_trips_through_post_then_get(serve):
    client = serve(Everything)
    created = client.post("/Everything/", json=FULL)
    assert created.status_code == 201, created.text
    assert created.json() == FULL
    assert client.get("/Everything/e1").json() == FULL
    assert client.get("/Everything/").json() == [FULL]


def test_every_field_type_round_trips_through_msgpack(serve):
    client = serve(Everything)
    body = {**FULL, "blob": b"\x00\x01bytes"}
    created = client.post(
        "/Everything/",
        content=msgspec.msgpack.encode(body),
        headers={"content-type": "application/msgpack", "accept": "application/msgpack"},
    )
    assert created.status_code == 201, created.text
    back = msgspec.msgpack.decode(client.get("/Everything/e1.msgpack").content)
    # MessagePack has a native timestamp type: datetimes come back as one.
    assert back == {**body, "at": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)}


def test_defaults_of_every_field_type(serve):
    client = serve(Everything)
    client.post("/Everything/", json={"id": "e"})
    record = client.get("/Everything/e").json()
    assert record["color"] == "red"
    assert record["level"] == 1
    assert record["size"] == "M"
    assert record["rating"] == 3
    assert record["at"] is None
    assert record["numbers"] == []


async def test_python_values_of_every_field_type(database):
    app = App(tables=[Everything], database=database)
    async with TestClient(app) as client:
        assert (await client.post("/Everything/", json=FULL)).status_code == 201
        record = await Everything.get("e1")
    assert record.blob == b"\x00\x01bytes"
    assert record.at == dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    assert record.day == dt.date(2024, 5, 1)
    assert record.uid == uuid.UUID(FULL["uid"])
    assert record.amount == decimal.Decimal("12.50")
    assert record.color is Color.BLUE
    assert record.level is Level.HIGH
    assert record.box == Size(1.5, 2.5)
    assert record.point == Point(1, 2)
    assert record.meta == {"source": "import", "rank": 4}
    assert record.anything == FULL["anything"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("size", "XL"),
        ("color", "green"),
        ("level", 3),
        ("uid", "not-a-uuid"),
        ("at", "yesterday"),
        ("box", {"width": 1}),
        ("point", {"x": "1", "y": 2}),
        ("meta", {"source": "x", "rank": "high"}),
        ("rating", 6),
        ("scores", {"a": "high"}),
        ("numbers", [1, "2"]),
        ("flag", 1),
    ],
)
def test_invalid_values_of_rich_types_are_422(serve, field, value):
    client = serve(Everything)
    response = client.post("/Everything/", json={"id": "e", field: value})
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert details[0]["loc"][:2] == ["body", field]
    assert client.get("/Everything/e").status_code == 404


# -- table options ----------------------------------------------------------------------------


class Renamed(Table, name="weather"):
    id: str = Field(primary_key=True)
    city: str = Field(indexed=True)
    temperature: float = 0


class Loose(Table, extra="allow"):
    id: str = Field(primary_key=True)
    name: str = ""


class Strict(Table, strict_queries=True):
    id: str = Field(primary_key=True)
    indexed: str = Field(default="", indexed=True)
    plain: str = ""


def test_name_option_sets_the_resource_name(serve):
    client = serve(Renamed)
    assert client.post("/weather/", json={"id": "oslo", "city": "Oslo"}).status_code == 201
    assert client.get("/weather/oslo").json()["city"] == "Oslo"
    assert client.get("/Renamed/oslo").status_code == 404
    assert client.get("/weather").json()["title"] == "weather"


def test_extra_allow_keeps_unknown_properties(serve):
    client = serve(Loose)
    created = client.post("/Loose/", json={"id": "l", "name": "n", "colour": "red", "n": 2})
    assert created.status_code == 201
    assert client.get("/Loose/l").json() == {"id": "l", "name": "n", "colour": "red", "n": 2}
    client.patch("/Loose/l", json={"n": 3})
    assert client.get("/Loose/l").json()["n"] == 3
    assert client.get("/Loose").json()["additionalProperties"] is True


def test_extra_forbidden_by_default(serve):
    client = serve(Brand, Product)
    response = client.post("/Product/", json={"name": "A", "price": 1, "colour": "red"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["code"] == "EXTRANEOUS_PROPERTY"


def test_strict_queries_reject_unindexed_conditions(serve):
    client = serve(Strict)
    client.post("/Strict/", json={"id": "s", "indexed": "a", "plain": "b"})
    assert client.get("/Strict/?indexed=a").json() == [{"id": "s", "indexed": "a", "plain": "b"}]
    assert client.get("/Strict/?id=s").status_code == 200
    response = client.get("/Strict/?plain=b")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_QUERY"


def test_unindexed_conditions_scan_without_strict_queries(serve):
    client = serve(Brand, Product)
    client.post("/Product/", json={"id": "p", "name": "A", "price": 1, "stock": 4})
    assert [r["id"] for r in client.get("/Product/?stock=4").json()] == ["p"]


def test_relationship_is_accepted_and_described(serve):
    client = serve(Brand, Product)
    client.post("/Brand/", json={"id": "acme", "name": "Acme"})
    created = client.post(
        "/Product/", json={"id": "p", "name": "A", "price": 1, "brand_id": "acme"}
    )
    assert created.status_code == 201
    assert "brand" not in created.json()
    described = client.get("/Product").json()
    assert described["x-relationships"]["brand"] == {
        "target": "Brand",
        "many": False,
        "from": "brand_id",
        "to": None,
    }
    assert "brand" not in described["properties"]


def test_relationship_to_a_table_outside_the_app_is_rejected(database):
    with pytest.raises(Exception, match="Brand"):
        App(tables=[Product], database=database)


# -- the Python API of a table ----------------------------------------------------------------


async def test_static_helpers(database):
    app = App(tables=[Brand, Product], database=database)
    async with TestClient(app):
        assert Product.primary_key == "id"
        assert await Product.get("missing") is None
        await Product.put({"id": "p1", "name": "Air", "price": 10, "stock": 1})
        await Product.put(Product(id="p2", name="Max", price=20))
        record = await Product.get("p1")
        assert record.name == "Air"
        assert record.price == 10
        assert record.get_id() == "p1"
        assert record.get_updated_time() > 0
        assert record.to_dict()["stock"] == 1
        assert record.was_loaded_from_source() is False
        with pytest.raises(AttributeError):
            _ = record.nonexistent

        await Product.patch("p1", {"stock": 5})
        assert (await Product.get("p1")).stock == 5
        with pytest.raises(NotFound):
            await Product.patch("missing", {"stock": 5})

        await Product.add_to("p1", "stock", 3)
        await Product.add_to("p1", "stock", -1)
        assert (await Product.get("p1")).stock == 7

        assert await Product.delete("p2") is True
        assert await Product.get("p2") is None
        assert await Product.delete("p2") is False


async def test_search_takes_a_query_or_a_dict(database):
    app = App(tables=[Brand, Product], database=database)
    async with TestClient(app):
        for i in range(5):
            await Product.put({"id": f"p{i}", "name": f"n{i}", "price": i})
        query = Query(conditions=[Condition("price", "greater_than", 2)])
        assert sorted([r.get_id() async for r in Product.search(query)]) == ["p3", "p4"]
        as_dict = {
            "conditions": [{"attribute": "price", "comparator": "less_than", "value": 2}],
            "sort": {"attribute": "price", "descending": True},
        }
        assert [r.get_id() async for r in Product.search(as_dict)] == ["p1", "p0"]
        assert len([r async for r in Product.search()]) == 5


async def test_publish_emits_an_event(database):
    app = App(tables=[Brand, Product], database=database)
    heard: list[dict[str, Any]] = []
    app.events.subscribe("Product/p1", heard.append)
    async with TestClient(app):
        await Product.publish("p1", {"hello": "world"})
    assert [(e["type"], e["id"], e["value"]) for e in heard] == [
        ("publish", "p1", {"hello": "world"})
    ]


async def test_get_context_inside_a_request(database):
    seen: list[Any] = []

    class Probe(Table):
        id: str = Field(primary_key=True)

        async def get(self, query):
            seen.append(self.get_context())
            return await super().get(query)

    app = App(tables=[Probe], database=database)
    async with TestClient(app) as client:
        await Probe.put({"id": "x"})
        assert (await client.get("/Probe/x")).status_code == 200
    assert seen[-1] is not None
    assert seen[-1].request.path == "/Probe/x"


async def test_add_to_is_atomic_under_concurrency(database):
    app = App(tables=[Brand, Product], database=database)
    async with TestClient(app):
        await Product.put({"id": "p", "name": "A", "price": 1, "stock": 10})
        await asyncio.gather(*(Product.add_to("p", "stock", 1) for _ in range(50)))
        assert (await Product.get("p")).stock == 60


async def test_add_to_is_atomic_against_concurrent_http_writes(database):
    app = App(tables=[Brand, Product], database=database)
    async with TestClient(app) as client:
        await Product.put({"id": "p", "name": "A", "price": 1})
        bumps = [Product.add_to("p", "views", 1) for _ in range(50)]
        patches = [client.patch("/Product/p", json={"name": f"n{i}"}) for i in range(10)]
        results = await asyncio.gather(*bumps, *patches)
        assert all(r.status_code == 204 for r in results[50:])
        assert (await Product.get("p")).views == 50


async def test_add_to_rejects_a_missing_record_or_field(database):
    app = App(tables=[Brand, Product], database=database)
    async with TestClient(app):
        await Product.put({"id": "p", "name": "A", "price": 1})
        with pytest.raises(NotFound):
            await Product.add_to("missing", "stock", 1)
        with pytest.raises(Exception, match="nope"):
            await Product.add_to("p", "nope", 1)


# -- overriding resource methods --------------------------------------------------------------


class Shouty(Table):
    id: str = Field(primary_key=True)
    name: str = ""
    secret: bool = False

    async def get(self, query):
        record = await super().get(query)
        if record is not None and record.secret:
            return None
        return record

    async def post(self, data):
        data = {**data, "name": data.get("name", "").upper()}
        return await super().post(data)

    async def put(self, data):
        await super().put({**data, "name": data.get("name", "") + "!"})

    async def patch(self, data):
        if "name" in data:
            data = {**data, "name": data["name"] + "?"}
        await super().patch(data)

    async def delete(self):
        record = await super().get(None)
        if record is not None and record.name == "KEEP":
            return False
        return await super().delete()


def test_overrides_change_the_endpoints(serve):
    client = serve(Shouty)
    assert client.post("/Shouty/", json={"id": "a", "name": "hi"}).json()["name"] == "HI"
    assert client.get("/Shouty/a").json() == {"id": "a", "name": "HI", "secret": False}
    client.put("/Shouty/a", json={"name": "hey"})
    assert client.get("/Shouty/a").json()["name"] == "hey!"
    client.patch("/Shouty/a", json={"name": "yo"})
    assert client.get("/Shouty/a").json()["name"] == "yo?"
    client.patch("/Shouty/a", json={"secret": True})
    assert client.get("/Shouty/a").status_code == 404
    client.post("/Shouty/", json={"id": "k", "name": "keep"})
    assert client.delete("/Shouty/k").status_code == 404
    assert client.get("/Shouty/k").status_code == 200
    client.post("/Shouty/", json={"id": "d", "name": "drop"})
    assert client.delete("/Shouty/d").status_code == 204
    assert client.get("/Shouty/d").status_code == 404


async def test_overrides_change_the_static_helpers(database):
    app = App(tables=[Shouty], database=database)
    async with TestClient(app):
        created = await Shouty.post({"id": "a", "name": "hi"})
        assert created.name == "HI"
        await Shouty.put({"id": "a", "name": "x"})
        assert (await Shouty.get("a")).name == "x!"
        await Shouty.patch("a", {"secret": True})
        assert await Shouty.get("a") is None


def test_get_override_may_return_a_plain_value(serve):
    class Computed(Table):
        id: str = Field(primary_key=True)
        n: int = 0

        async def get(self, query):
            record = await super().get(query)
            return None if record is None else {"id": record.get_id(), "double": record.n * 2}

    client = serve(Computed)
    client.post("/Computed/", json={"id": "c", "n": 21})
    assert client.get("/Computed/c").json() == {"id": "c", "double": 42}
    assert client.get("/Computed/nope").status_code == 404


def test_a_table_outside_an_app_says_so():
    class Orphan(Table):
        id: str = Field(primary_key=True)

    with pytest.raises(Exception, match="App"):
        _ = Orphan.primary_key


class Locked(Table):
    id: str = Field(primary_key=True)
    text: str
    frozen: bool = False

    def allow_update(self, user: Any) -> bool:
        return not self.frozen

    def allow_create(self, user: Any) -> bool:
        return self.text != "forbidden"


def test_put_asks_allow_update_of_an_existing_record_and_allow_create_of_a_new_one(serve):
    client = serve(Locked)
    assert client.put("/Locked/a", json={"text": "one", "frozen": True}).status_code == 204
    denied = client.put("/Locked/a", json={"text": "two"})
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "FORBIDDEN"
    assert client.get("/Locked/a").json() == {"id": "a", "text": "one", "frozen": True}
    assert client.put("/Locked/b", json={"text": "forbidden"}).status_code == 403
    assert client.get("/Locked/b").status_code == 404
    assert client.put("/Locked/c", json={"text": "ok"}).status_code == 204
    assert client.put("/Locked/c", json={"text": "again"}).status_code == 204
    assert client.get("/Locked/c").json()["text"] == "again"


class Shared(Table):
    id: str = Field(primary_key=True)
    n: int = 0

    @get_method
    @staticmethod
    async def how_many() -> int:
        return len([r async for r in Shared.search()])


async def test_one_table_class_in_several_apps_uses_the_right_storage(tmp_path):
    """Each app keeps its own storage; the static API follows the request or transaction."""
    first = App(tables=[Shared], database=f"sqlite:///{tmp_path}/first.db")
    second = App(tables=[Shared], database=f"sqlite:///{tmp_path}/second.db")
    async with TestClient(first) as one, TestClient(second) as two:
        for i in range(3):
            assert (await one.put(f"/Shared/a{i}", json={})).status_code == 204
        assert (await two.put("/Shared/b", json={})).status_code == 204
        assert (await one.get("/Shared/how_many")).json() == 3
        assert (await two.get("/Shared/how_many")).json() == 1
        async with first.transaction():
            assert len([r async for r in Shared.search()]) == 3
            assert await Shared.get("b") is None
        async with second.transaction():
            assert [r.id async for r in Shared.search()] == ["b"]
        with pytest.raises(CharterError, match="running apps"):
            await Shared.get("b")
    async with TestClient(second):  # the only running app again: no ambiguity
        assert (await Shared.get("b")) is not None


class Ordered(Table):
    id: str = Field(primary_key=True)
    qty: int = Field(ge=1)
    total: float = Field(default=0, input=False)

    async def post(self, data):
        return await super().post({**data, "total": 2.5 * data["qty"]})

    async def put(self, data):
        await super().put({**data, "total": 2.5 * data["qty"]})

    async def patch(self, data):
        await super().patch({**data, "total": 2.5 * data.get("qty", 0)})


@pytest.mark.parametrize("body", [{}, {"qty": "3"}, {"qty": 0}, {"qty": 1, "nope": 1}])
def test_an_override_sees_validated_input_so_bad_bodies_are_422(serve, body):
    client = serve(Ordered)
    assert client.post("/Ordered/", json=body).status_code == 422
    assert client.put("/Ordered/o", json=body).status_code == 422
    client.put("/Ordered/o", json={"qty": 2})
    assert client.get("/Ordered/o").json()["total"] == 5.0
    if body:
        assert client.patch("/Ordered/o", json=body).status_code == 422
    assert client.get("/Ordered/o").json() == {"id": "o", "qty": 2, "total": 5.0}
    created = client.post("/Ordered/", json={"qty": 4})
    assert created.status_code == 201 and created.json()["total"] == 10.0


class Scripted(Table):
    id: str = Field(primary_key=True)
    n: int = 0


async def test_the_table_api_opens_storage_itself_in_a_script(database):
    """As ``app.storage`` and ``app.transaction()`` do: no ``await app.startup()`` needed."""
    app = App(tables=[Scripted], database=database)
    try:
        await Scripted.put({"id": "a", "n": 1})
        assert (await Scripted.get("a")).n == 1
        assert [r.id async for r in Scripted.search()] == ["a"]
        await app.shutdown()
        assert [r.id async for r in Scripted.search()] == ["a"]
        await app.shutdown()
        assert (await Scripted.get("a")).n == 1
        await app.shutdown()
        await Scripted.add_to("a", "n", 2)
        async with app.transaction():
            assert (await Scripted.get("a")).n == 3
    finally:
        await app.shutdown()


def test_a_failed_app_leaves_no_trace_on_its_tables(tmp_path):
    class Lonely(Table):
        id: str = Field(primary_key=True)
        other_id: str | None = None
        other: Brand | None = relationship(from_="other_id")

    with pytest.raises(CharterError):
        App(tables=[Lonely], database=f"sqlite:///{tmp_path}/a.db")  # Brand is not in it
    with pytest.raises(CharterError, match="not part of a built App"):
        Lonely.primary_key  # noqa: B018
    App(tables=[Brand, Lonely], database=f"sqlite:///{tmp_path}/b.db")
    assert Lonely.primary_key == "id"


def test_a_forked_worker_does_not_repeat_its_parents_keys(serve):
    import os

    client = serve(Brand, Product)
    client.post("/Product/", json={"name": "before the fork", "price": 1})  # draws randomness
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next key, to the parent
        try:
            from charter.schema.keys import new_uuid

            os.write(write, new_uuid().encode())
        finally:
            os._exit(0)
    os.close(write)
    childs = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    response = client.post("/Product/", json={"name": "after the fork", "price": 1})
    assert response.json()["id"] != childs
