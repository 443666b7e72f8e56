"""Content negotiation: JSON, MessagePack, CBOR both ways; CSV responses; path suffixes."""

import csv
import datetime as dt
import io

import cbor2
import msgspec
import pytest

from charter import Field, Table


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    price: float = 0
    tags: list[str] = []
    blob: bytes = b""
    at: dt.datetime | None = None
    secret: str = Field(default="", returned=False)


RECORD = {"id": "p1", "name": 'Air, "Max"', "price": 9.5, "tags": ["a", "b"]}
STORED = {**RECORD, "blob": "", "at": None}

FORMATS = [
    ("application/json", msgspec.json.encode, msgspec.json.decode),
    ("application/msgpack", msgspec.msgpack.encode, msgspec.msgpack.decode),
    ("application/x-msgpack", msgspec.msgpack.encode, msgspec.msgpack.decode),
    ("application/cbor", cbor2.dumps, cbor2.loads),
]


@pytest.fixture
def client(serve):
    client = serve(Product)
    assert client.put("/Product/p1", json=RECORD).status_code == 204
    assert client.put("/Product/p2", json={"name": "Cap", "price": 3}).status_code == 204
    return client


def expected(media_type, value):
    # Bytes are base64 text in JSON and native in the binary formats.
    if media_type != "application/json":
        return {**value, "blob": b""}
    return value


@pytest.mark.parametrize(("media_type", "encode", "decode"), FORMATS)
def test_request_and_response_bodies_in_every_format(serve, media_type, encode, decode):
    client = serve(Product)
    headers = {"content-type": media_type, "accept": media_type}
    created = client.post("/Product/", content=encode(RECORD), headers=headers)
    assert created.status_code == 201, created.content
    response_type = media_type.replace("x-msgpack", "msgpack")
    assert created.headers["content-type"] == response_type
    assert decode(created.content) == expected(media_type, STORED)
    got = client.get("/Product/p1", headers={"accept": media_type})
    assert got.headers["content-type"] == response_type
    assert decode(got.content) == expected(media_type, STORED)
    listed = client.get("/Product/", headers={"accept": media_type})
    assert decode(listed.content) == [expected(media_type, STORED)]
    patched = client.patch(
        "/Product/p1",
        content=encode({"price": 11}),
        headers={**headers, "prefer": "return=representation"},
    )
    assert patched.status_code == 200
    assert decode(patched.content)["price"] == 11


def test_binary_formats_carry_native_bytes_and_timestamps(client):
    at = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    body = cbor2.dumps({"name": "b", "blob": b"\x00\xff", "at": at})
    response = client.put("/Product/b", content=body, headers={"content-type": "application/cbor"})
    assert response.status_code == 204, response.content
    as_cbor = cbor2.loads(client.get("/Product/b.cbor").content)
    assert as_cbor["blob"] == b"\x00\xff"
    assert as_cbor["at"] == at
    as_msgpack = msgspec.msgpack.decode(client.get("/Product/b.msgpack").content)
    assert as_msgpack["blob"] == b"\x00\xff"
    as_json = client.get("/Product/b.json").json()
    assert as_json["blob"] == "AP8="
    assert as_json["at"] == "2024-01-02T03:04:05Z"


def test_json_is_the_default(client):
    for accept in (None, "*/*", "application/*", "text/html,*/*;q=0.8"):
        headers = {"accept": accept} if accept else {}
        response = client.get("/Product/p1", headers=headers)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["name"] == RECORD["name"]


def test_accept_quality_values_are_honoured(client):
    response = client.get(
        "/Product/p1", headers={"accept": "application/json;q=0.5, application/cbor"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/cbor"
    assert cbor2.loads(response.content)["name"] == RECORD["name"]


def test_a_format_that_cannot_be_produced_is_406(client):
    response = client.get("/Product/p1", headers={"accept": "image/png"})
    assert response.status_code == 406
    assert response.json()["error"]["status"] == 406


@pytest.mark.parametrize(
    ("suffix", "media_type", "decode"),
    [
        (".json", "application/json", msgspec.json.decode),
        (".msgpack", "application/msgpack", msgspec.msgpack.decode),
        (".cbor", "application/cbor", cbor2.loads),
    ],
)
def test_path_suffixes_pick_the_format(client, suffix, media_type, decode):
    # The suffix wins over Accept.
    response = client.get(f"/Product/p2{suffix}", headers={"accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert decode(response.content)["name"] == "Cap"
    listed = client.get(f"/Product/{suffix}")
    assert listed.headers["content-type"] == media_type
    assert sorted(r["id"] for r in decode(listed.content)) == ["p1", "p2"]
    one = client.get(f"/Product/p2.name{suffix}")
    assert decode(one.content) == "Cap"


def test_suffix_on_a_write_picks_the_response_format(client):
    response = client.put(
        "/Product/p2.cbor",
        json={"name": "Cap 2"},
        headers={"prefer": "return=representation"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/cbor"
    assert cbor2.loads(response.content)["name"] == "Cap 2"
    assert client.get("/Product/p2").json()["name"] == "Cap 2"


def read_csv(response):
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_csv_collection(client):
    rows = read_csv(client.get("/Product/?sort(name)", headers={"accept": "text/csv"}))
    assert [r["id"] for r in rows] == ["p1", "p2"]
    assert rows[0]["name"] == RECORD["name"]
    assert rows[0]["price"] == "9.5"
    assert msgspec.json.decode(rows[0]["tags"]) == ["a", "b"]
    assert rows[1]["at"] == ""
    assert list(rows[0]) == ["id", "name", "price", "tags", "blob", "at"]
    assert read_csv(client.get("/Product/.csv?sort(name)")) == rows


def test_csv_record_and_empty_collection(client):
    (row,) = read_csv(client.get("/Product/p2.csv"))
    assert row["name"] == "Cap"
    assert "secret" not in row
    empty = client.get("/Product/.csv?name=none")
    assert empty.text.strip() == "id,name,price,tags,blob,at"


def test_csv_is_not_accepted_as_a_request_body(client):
    response = client.post(
        "/Product/", content=b"id,name\nx,y\n", headers={"content-type": "text/csv"}
    )
    assert response.status_code == 415


def test_an_unknown_suffix_is_part_of_the_key(client):
    assert client.put("/Product/file.txt", json={"name": "t"}).status_code == 204
    assert client.get("/Product/file.txt").json()["id"] == "file.txt"
    assert client.get("/Product/file.txt.json").json()["id"] == "file.txt"
