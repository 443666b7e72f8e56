"""Points 6, 8 and 9 of the hardening issue, on the REST side.

A collection read that fails is an error response, never a 200 with an empty or cut body: the
query runs up to its first chunk before the status line is sent. Keys that look like a format
suffix or a property have a ``Location`` that resolves; hidden attributes are not properties.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from charter import Field, Forbidden, Table
from charter.testing import TestClient

Serve = Callable[..., TestClient]


class Failing(Table):
    id: str = Field(primary_key=True)
    name: str = ""

    async def search(self, query: Any = None) -> AsyncIterator[Any]:
        if query is not None and getattr(query, "limit", None) == 7:
            raise Forbidden("not this page")
        async for record in super().search(query):
            if record.name == "boom":
                raise RuntimeError("the source broke")
            yield record


@pytest.mark.parametrize("suffix", ["", ".json", ".csv", ".cbor", ".msgpack"])
def test_a_collection_that_fails_first_is_an_error_response(serve: Serve, suffix: str) -> None:
    client = serve(Failing)
    assert client.put("/Failing/a", json={"name": "boom"}).status_code == 204
    response = client.get(f"/Failing/{suffix}?name=boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith(("application/json", "application/"))
    if suffix in ("", ".json", ".csv"):
        assert response.json()["error"]["code"] == "INTERNAL"
    denied = client.get(f"/Failing/{suffix}?limit(7)")
    assert denied.status_code == 403


def test_head_on_a_collection_sends_no_zero_length(serve: Serve) -> None:
    client = serve(Failing)
    client.put("/Failing/a", json={"name": "x"})
    response = client.head("/Failing/")
    assert response.status_code == 200
    assert response.headers.get("content-length") != "0"
    assert response.headers["content-type"] == "application/json"


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = ""
    cost: float = Field(default=0, returned=False)


@pytest.mark.parametrize(
    "key", ["a.csv", "b.JSON", "c.name", "d.msgpack", "e.cost", ".cbor", "f.x.json", "g.", "h.id"]
)
def test_every_location_resolves(serve: Serve, key: str) -> None:
    client = serve(Product)
    created = client.post("/Product/", json={"id": key, "name": "n"})
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    fetched = client.get(location)
    assert fetched.status_code == 200, (location, fetched.text)
    assert fetched.json()["id"] == key
    assert client.patch(location, json={"name": "m"}).status_code == 204
    assert client.get(location).json()["name"] == "m"
    assert client.delete(location).status_code == 204
    assert client.get(location).status_code == 404


def test_suffix_and_property_still_work_on_plain_keys(serve: Serve) -> None:
    client = serve(Product)
    client.put("/Product/p1", json={"name": "anvil", "cost": 3})
    assert client.get("/Product/p1.name").json() == "anvil"
    assert client.get("/Product/p1.csv").text.splitlines()[0] == "id,name"


def test_hidden_and_unknown_properties_answer_alike(serve: Serve) -> None:
    client = serve(Product)
    client.put("/Product/p1", json={"name": "anvil", "cost": 3})
    hidden = client.get("/Product/p1.cost")
    unknown = client.get("/Product/p1.nosuch")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["code"] == unknown.json()["error"]["code"] == "NOT_FOUND"
    assert hidden.json()["error"]["message"].replace("cost", "X") == unknown.json()["error"][
        "message"
    ].replace("nosuch", "X")


def test_invalid_utf8_in_a_key_is_a_400(serve: Serve) -> None:
    client = serve(Product)
    client.put("/Product/%EF%BF%BD", json={"name": "replacement char"})
    for raw in ("%ff", "%fe", "%c3"):
        response = client.get(f"/Product/{raw}")
        assert response.status_code == 400, raw
        assert response.json()["error"]["code"] == "MALFORMED_INPUT"
        assert client.put(f"/Product/{raw}", json={"name": "x"}).status_code == 400
    assert client.get("/Product/%EF%BF%BD").json()["name"] == "replacement char"
