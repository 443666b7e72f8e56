"""Hostile bodies and values (issue 8, point 5): every one is a 4xx envelope and changes nothing.

Bodies nested past ``MAX_BODY_DEPTH`` on every endpoint kind and in every body format;
integers beyond 64 bits anywhere in a record; string keys and indexed values past what a
PostgreSQL B-tree entry holds. Each limit is documented in docs/limits.md; each test also shows
that a value at the limit is stored and read back whole, on both backends.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

import cbor2
import msgspec
import pytest

from charter import Contract, Field, Service, Table, post, route, rpc
from charter.limits import INT_MAX, INT_MIN, MAX_BODY_DEPTH, MAX_INDEXED_BYTES, MAX_KEY_BYTES

CALLS: list[str] = []


class Item(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    stock: int = 0
    counts: list[int] = []
    by_day: dict[str, int] = {}
    extra: Any = None
    labels: list[str] = Field(default=[], indexed=True)

    @post  # POST /Item/touch
    @staticmethod
    async def touch(value: Any = None) -> int:
        CALLS.append("touch")
        return 1


class Numbered(Table):
    id: int = Field(primary_key=True)
    n: int = 0


class Tools(Service):
    @rpc
    async def keep(self, value: Any = None) -> int:
        CALLS.append("keep")
        return 1


class Payload(msgspec.Struct):
    value: Any = None


@route("POST", "/store", contract=Contract(payload=Payload))
async def store(payload: Payload) -> dict[str, int]:
    CALLS.append("store")
    return {"ok": 1}


@pytest.fixture
def client(serve):
    CALLS.clear()
    client = serve(Item, Numbered, services=[Tools], routes=[store])
    response = client.put("/Item/i1", json={"name": "first", "stock": 1})
    assert response.status_code == 204
    return client


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _encode(kind: str, value: Any) -> tuple[bytes, str]:
    if kind == "json":
        return msgspec.json.encode(value), "application/json"
    if kind == "msgpack":
        return msgspec.msgpack.encode(value), "application/msgpack"
    return cbor2.dumps(value), "application/cbor"


def _deep_body(kind: str, depth: int, name: str = "value") -> tuple[bytes, str]:
    """``{"name": "x", name: [[[...1...]]]}`` nested ``depth`` deep, built as bytes: no encoder
    recurses that deep."""
    if kind == "json":
        inner = b"[" * depth + b"1" + b"]" * depth
        return b'{"name":"x","' + name.encode() + b'":' + inner + b"}", "application/json"
    if kind == "msgpack":
        head = b"\x82\xa4name\xa1x" + msgspec.msgpack.encode(name)
        return head + b"\x91" * depth + b"\x01", "application/msgpack"
    head = b"\xa2\x64name\x61x" + cbor2.dumps(name)
    return head + b"\x81" * depth + b"\x01", "application/cbor"


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status
    assert error["code"] == code
    return error  # type: ignore[no-any-return]


def _unchanged(client: Any) -> None:
    assert client.get("/Item/i1").json() == {
        "id": "i1", "name": "first", "stock": 1, "counts": [], "by_day": {}, "extra": None,
        "labels": [],
    }  # fmt: skip
    assert [r["id"] for r in client.get("/Item/").json()] == ["i1"]
    assert CALLS == []


# -- nesting ---------------------------------------------------------------------------------

ENDPOINTS = [
    ("POST", "/Item/", "extra"),
    ("PUT", "/Item/i1", "extra"),
    ("PATCH", "/Item/i1", "extra"),
    ("POST", "/Item/touch", "value"),
    ("POST", "/rpc/keep", "value"),
    ("POST", "/store", "value"),
]


@pytest.mark.parametrize("kind", ["json", "msgpack", "cbor"])
@pytest.mark.parametrize("depth", [MAX_BODY_DEPTH + 1, 100_000])
def test_a_body_nested_too_deep_is_400_on_every_endpoint(client, kind, depth):
    for method, path, attribute in ENDPOINTS:
        body, media = _deep_body(kind, depth, attribute)
        response = client.request(method, path, content=body, headers={"content-type": media})
        error = _error(response, 400, "MALFORMED_INPUT")
        assert str(MAX_BODY_DEPTH) in error["message"] or kind == "cbor", error
    _unchanged(client)


def test_a_method_parameter_in_the_query_string_nested_too_deep_is_refused(serve):
    class Finder(Table):
        id: str = Field(primary_key=True)

        from charter import get

        @get
        @staticmethod
        def find(filter: dict[str, Any]) -> int:
            return 1

    client = serve(Finder)
    deep = "[" * 2000 + "]" * 2000
    response = client.get("/Finder/find", params={"filter": '{"a":' + deep + "}"})
    assert 400 <= response.status_code < 500, response.text
    assert client.get("/Finder/find", params={"filter": '{"a":[[1]]}'}).json() == 1


@pytest.mark.parametrize("kind", ["json", "msgpack", "cbor"])
def test_a_body_at_the_nesting_limit_is_stored_and_read_back(client, kind):
    value = _nested(MAX_BODY_DEPTH - 1)  # the record object is the first level
    body, media = _encode(kind, {"name": "deep", "extra": value})
    response = client.put("/Item/deep", content=body, headers={"content-type": media})
    assert response.status_code == 204, response.text
    assert client.get("/Item/deep").json()["extra"] == value
    assert client.get("/Item/deep", headers={"accept": "application/msgpack"}).status_code == 200


# -- integers --------------------------------------------------------------------------------

BIG = [2**63, -(2**63) - 1, 2**70, 10**30]


@pytest.mark.parametrize("big", BIG)
def test_integers_beyond_64_bits_are_422_wherever_they_are(client, big):
    for body in (
        {"name": "x", "stock": big},
        {"name": "x", "counts": [1, big]},
        {"name": "x", "by_day": {"mon": big}},
        {"name": "x", "extra": big},
        {"name": "x", "extra": {"deep": [[{"n": big}]]}},
        {"name": "x", "extra": [big]},
    ):
        attribute = next(k for k in body if k != "name")
        for method, path in (("POST", "/Item/"), ("PUT", "/Item/i1"), ("PATCH", "/Item/i1")):
            response = client.request(method, path, json=body)
            error = _error(response, 422, "INVALID_PROPERTIES")
            assert error["details"][0]["loc"] == ["body", attribute], error
            assert error["details"][0]["code"] == "NUMERIC_CONSTRAINT"
        packs = 0 <= big < 2**64  # MessagePack holds up to 2**64 - 1; CBOR any integer
        content, media = _encode("msgpack" if packs else "cbor", body)
        response = client.put("/Item/i1", content=content, headers={"content-type": media})
        _error(response, 422, "INVALID_PROPERTIES")
    response = client.put(f"/Numbered/{big}", json={"n": 1})
    _error(response, 422, "INVALID_PROPERTIES")
    response = client.post("/Numbered/", json={"id": big, "n": 1})
    _error(response, 422, "INVALID_PROPERTIES")
    _unchanged(client)
    assert client.get("/Numbered/").json() == []
    # Every format still reads the whole collection.
    for accept in ("application/json", "application/msgpack", "application/cbor", "text/csv"):
        assert client.get("/Item/", headers={"accept": accept}).status_code == 200


def test_the_64_bit_bounds_are_stored_and_read_back_in_every_format(client):
    record = {
        "name": "edge", "stock": INT_MAX, "counts": [INT_MIN, INT_MAX],
        "by_day": {"mon": INT_MIN}, "extra": {"n": [INT_MAX]}, "labels": [],
    }  # fmt: skip
    assert client.put("/Item/edge", json=record).status_code == 204
    assert client.put(f"/Numbered/{INT_MAX}", json={"n": INT_MIN}).status_code == 204
    assert client.get("/Item/edge").json() == {"id": "edge", **record}
    packed = client.get("/Item/?id=edge", headers={"accept": "application/msgpack"})
    assert packed.status_code == 200
    assert msgspec.msgpack.decode(packed.content) == [{"id": "edge", **record}]
    assert cbor2.loads(client.get("/Item/edge.cbor").content) == {"id": "edge", **record}
    assert client.get(f"/Numbered/{INT_MAX}").json() == {"id": INT_MAX, "n": INT_MIN}
    assert len(client.get("/Item/").json()) == 2


# -- keys and indexed values -----------------------------------------------------------------


def _random_text(size: int) -> str:
    """Text that does not compress (PostgreSQL compresses index entries that do)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(size))


def test_an_indexed_string_past_the_limit_is_422_naming_the_attribute(client):
    for size in (MAX_INDEXED_BYTES + 1, 3000, 100_000):
        name = _random_text(size)
        for method, path in (("POST", "/Item/"), ("PUT", "/Item/i1"), ("PATCH", "/Item/i1")):
            error = _error(client.request(method, path, json={"name": name}), 422,
                           "INVALID_PROPERTIES")  # fmt: skip
            assert error["details"][0]["loc"] == ["body", "name"], error
            assert str(MAX_INDEXED_BYTES) in error["details"][0]["message"]
    # Bytes of UTF-8, not characters: 700 three-byte characters are 2100 bytes.
    error = _error(client.put("/Item/i1", json={"name": "€" * 700}), 422, "INVALID_PROPERTIES")
    assert error["details"][0]["loc"] == ["body", "name"]
    # An indexed list counts what it holds.
    labels = [_random_text(100) for _ in range(30)]
    error = _error(client.put("/Item/i1", json={"name": "x", "labels": labels}), 422,
                   "INVALID_PROPERTIES")  # fmt: skip
    assert error["details"][0]["loc"] == ["body", "labels"]
    _unchanged(client)


def test_an_indexed_string_at_the_limit_is_stored_and_found(client):
    name = _random_text(MAX_INDEXED_BYTES - 3) + "€"  # exactly the limit, in bytes
    assert len(name.encode()) == MAX_INDEXED_BYTES
    assert client.put("/Item/long", json={"name": name}).status_code == 204
    assert client.get(f"/Item/?name={name}&select(id)").json() == ["long"]
    labels = [_random_text(50) for _ in range(20)]
    assert client.put("/Item/listed", json={"name": "l", "labels": labels}).status_code == 204
    assert client.get("/Item/listed").json()["labels"] == labels


def test_a_key_past_the_limit_is_422_in_a_body_or_a_path(client):
    for size in (MAX_KEY_BYTES + 1, 4096, 1 << 20):
        key = _random_text(size)
        error = _error(client.post("/Item/", json={"id": key, "name": "x"}), 422,
                       "INVALID_PROPERTIES")  # fmt: skip
        assert error["details"][0]["loc"] == ["body", "id"]
        if size < 10_000:  # a path this long is refused by the HTTP layer before Charter
            for method, body in (("PUT", {"name": "x"}), ("PATCH", {"name": "x"}), ("GET", None)):
                response = client.request(method, f"/Item/{key}", json=body)
                _error(response, 422, "INVALID_PROPERTIES")
    _unchanged(client)


def test_a_key_at_the_limit_gets_a_location_that_resolves(client):
    key = "é" * (MAX_KEY_BYTES // 2)  # two bytes each: exactly the limit
    response = client.post("/Item/", json={"id": key, "name": "x"})
    assert response.status_code == 201, response.text
    fetched = client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json()["id"] == key
    assert client.delete(response.headers["location"]).status_code == 204
