"""Values PostgreSQL stores differently from SQLite come back the same on both backends.

JSONB keeps numbers as ``numeric``, which has no exponent form: a float written as ``1e308``
was read back as a 309-digit JSON integer. And PostgreSQL text cannot hold a NUL character: a
key or query value with one failed the statement (a 500, or a cut stream). Through HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from charter import App, Field, Table
from charter.testing import TestClient


class Reading(Table):
    id: str = Field(primary_key=True)
    value: float = 0.0
    maybe: float | None = None
    series: list[float] = Field(default_factory=list)
    count: int = 0


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = Field(default="", indexed=True)


FLOATS = [1e308, 1.5e-7, 1e16, -2.5e20, 123456789.125, 0.1, 2.0]


def _same_floats(document: dict[str, Any], value: float) -> None:
    for got in (document["value"], document["maybe"], *document["series"]):
        assert type(got) is float, document
    assert document["value"] == value and document["maybe"] == value
    assert document["series"] == FLOATS


def test_floats_come_back_as_the_floats_they_were(serve: Any) -> None:
    client = serve(Reading)
    for i, value in enumerate(FLOATS):
        body = {"value": value, "maybe": value, "series": FLOATS, "count": 10**17 + i}
        assert client.put(f"/Reading/r{i}", json=body).status_code in (200, 201, 204)
    for i, value in enumerate(FLOATS):
        response = client.get(f"/Reading/r{i}")
        assert b"0" * 20 not in response.content  # no float written out as an integer
        document = response.json()
        _same_floats(document, value)
        assert document["count"] == 10**17 + i and type(document["count"]) is int
        packed = client.get(f"/Reading/r{i}", headers={"accept": "application/msgpack"})
        _same_floats(msgspec.msgpack.decode(packed.content), value)
    for path in (
        "/Reading/?sort(id)&limit(50)",
        "/Reading/?sort(id)",
        "/Reading/?sort(id)&limit(5000)",
    ):
        found = client.get(path).json()
        assert len(found) == len(FLOATS)
        for i, document in enumerate(found):
            _same_floats(document, FLOATS[i])


async def test_a_nul_in_a_key_is_a_404_and_spoils_no_other_read(database: str) -> None:
    async with TestClient(App(tables=[Product], database=database)) as client:
        assert (await client.put("/Product/p1", json={"name": "one"})).status_code < 300
        missing = await client.get("/Product/%00")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
        assert (await client.get("/Product/a%00b")).status_code == 404
        assert (await client.delete("/Product/%00")).status_code in (200, 204, 404)
        nul, found, other = await asyncio.gather(  # one batch of point reads on PostgreSQL
            client.get("/Product/%00"), client.get("/Product/p1"), client.get("/Product/x%00")
        )
        assert (nul.status_code, found.status_code, other.status_code) == (404, 200, 404)
        assert found.json() == {"id": "p1", "name": "one"}


@pytest.mark.parametrize(
    "query",
    [
        "name=a%00b",
        "name=a%00b&limit(5)",
        "name=ne=a%00b&limit(5)",
        "name=sw=%00",
        "name=gt=%00&sort(name)",
        "id=in=(p1,%00)",
    ],
)
def test_a_nul_in_a_query_value_is_a_400_or_matches_nothing(serve: Any, query: str) -> None:
    client = serve(Product)
    assert client.put("/Product/p1", json={"name": "one"}).status_code in (200, 201, 204)
    for accept in ("application/json", "application/msgpack"):
        for prefer in ({}, {"prefer": "count=exact"}):
            response = client.get(f"/Product/?{query}", headers={"accept": accept, **prefer})
            assert response.status_code in (200, 400), response.text
            decode = msgspec.msgpack.decode if "msgpack" in accept else msgspec.json.decode
            found = decode(response.content)  # a whole document, never a cut one
            if response.status_code == 400:
                assert found["error"]["code"] == "INVALID_QUERY"
            else:  # nothing that cannot exist, or everything that is not it
                assert all(p["id"] == "p1" for p in found)
    assert client.get("/Product/p1").status_code == 200
