"""REST resources (SPEC section 3): verbs, status codes, headers, conditional requests, queries."""

from email.utils import parsedate_to_datetime

import pytest

from charter import Field, Table, relationship


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    price: float = Field(indexed=True, ge=0)
    stock: int = 0
    category: str = Field(default="misc", indexed=True)
    tags: list[str] = []


class Counter(Table):
    id: int = Field(primary_key=True)
    n: int = 0


@pytest.fixture
def client(serve):
    client = serve(Product, Counter)
    for i, (name, price, category) in enumerate(
        [("Air", 30, "shoes"), ("Max", 10, "shoes"), ("Cap", 20, "hats"), ("Bag", 40, "bags")]
    ):
        response = client.put(
            f"/Product/p{i}", json={"name": name, "price": price, "category": category, "stock": i}
        )
        assert response.status_code == 204
    return client


# -- single records ---------------------------------------------------------------------------


def test_get_a_record(client):
    response = client.get("/Product/p0")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": "p0",
        "name": "Air",
        "price": 30,
        "stock": 0,
        "category": "shoes",
        "tags": [],
    }


def test_get_a_missing_record_is_404(client):
    response = client.get("/Product/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_integer_keys(client):
    assert client.put("/Counter/7", json={"n": 1}).status_code == 204
    assert client.get("/Counter/7").json() == {"id": 7, "n": 1}
    assert client.get("/Counter/seven").status_code == 404
    created = client.post("/Counter/", json={"id": 8})
    assert created.status_code == 201
    assert created.headers["location"] == "/Counter/8"
    missing_key = client.post("/Counter/", json={"n": 1})
    assert missing_key.status_code == 422
    assert missing_key.json()["error"]["details"][0]["code"] == "MISSING_PROPERTY"


def test_keys_are_url_decoded(client):
    assert client.put("/Product/a%20b%2Fc", json={"name": "x", "price": 1}).status_code == 204
    assert client.get("/Product/a%20b%2Fc").json()["id"] == "a b/c"
    created = client.post("/Product/", json={"id": "x y", "name": "x", "price": 1})
    assert created.headers["location"] == "/Product/x%20y"
    assert client.get(created.headers["location"]).json()["id"] == "x y"


def test_one_property(client):
    assert client.get("/Product/p0.name").json() == "Air"
    assert client.get("/Product/p0.price").json() == 30
    assert client.get("/Product/p0.tags").json() == []
    assert client.get("/Product/p0.nothing").status_code == 404
    assert client.get("/Product/nope.name").status_code == 404
    assert client.put("/Product/p0.name", json="x").status_code == 405


def test_etag_and_last_modified(client):
    response = client.get("/Product/p0")
    etag = response.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    modified = parsedate_to_datetime(response.headers["last-modified"])
    assert modified.tzinfo is not None
    again = client.get("/Product/p0")
    assert again.headers["etag"] == etag
    client.patch("/Product/p0", json={"stock": 9})
    assert client.get("/Product/p0").headers["etag"] != etag


def test_if_none_match_gives_304(client):
    etag = client.get("/Product/p0").headers["etag"]
    response = client.get("/Product/p0", headers={"if-none-match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert client.get("/Product/p0", headers={"if-none-match": f"W/{etag}"}).status_code == 304
    assert client.get("/Product/p0", headers={"if-none-match": '"1"'}).status_code == 200
    assert client.get("/Product/p0", headers={"if-none-match": "*"}).status_code == 304


# -- writes -----------------------------------------------------------------------------------


def test_post_creates_with_201_location_and_record(client):
    response = client.post("/Product/", json={"name": "New", "price": 5})
    assert response.status_code == 201
    record = response.json()
    assert response.headers["location"] == f"/Product/{record['id']}"
    assert record == {
        "id": record["id"],
        "name": "New",
        "price": 5,
        "stock": 0,
        "category": "misc",
        "tags": [],
    }
    assert response.headers["etag"] == client.get(response.headers["location"]).headers["etag"]


def test_post_with_an_existing_key_is_409(client):
    response = client.post("/Product/", json={"id": "p0", "name": "Dup", "price": 1})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"
    assert client.get("/Product/p0").json()["name"] == "Air"


def test_put_replaces_what_you_put_is_what_you_get(client):
    client.patch("/Product/p0", json={"tags": ["a"], "stock": 5})
    response = client.put("/Product/p0", json={"name": "Air 2", "price": 31})
    assert response.status_code == 204
    assert response.content == b""
    assert "etag" in response.headers
    assert client.get("/Product/p0").json() == {
        "id": "p0",
        "name": "Air 2",
        "price": 31,
        "stock": 0,
        "category": "misc",
        "tags": [],
    }
    assert client.get("/Product/p0").headers["etag"] == response.headers["etag"]


def test_put_creates_when_absent(client):
    assert client.put("/Product/fresh", json={"name": "F", "price": 1}).status_code == 204
    assert client.get("/Product/fresh").json()["name"] == "F"


def test_put_with_prefer_return_representation(client):
    response = client.put(
        "/Product/p0",
        json={"name": "Air", "price": 1, "id": "p0"},
        headers={"prefer": "return=representation"},
    )
    assert response.status_code == 200
    assert response.json() == client.get("/Product/p0").json()
    assert response.headers["etag"] == client.get("/Product/p0").headers["etag"]


def test_put_with_a_different_key_in_the_body_is_422(client):
    response = client.put("/Product/p0", json={"id": "other", "name": "x", "price": 1})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body", "id"]
    assert client.get("/Product/other").status_code == 404


def test_patch_merges(client):
    response = client.patch("/Product/p1", json={"stock": 42})
    assert response.status_code == 204
    assert client.get("/Product/p1").json() == {
        "id": "p1",
        "name": "Max",
        "price": 10,
        "stock": 42,
        "category": "shoes",
        "tags": [],
    }
    represented = client.patch(
        "/Product/p1", json={"tags": ["x"]}, headers={"prefer": "return=representation"}
    )
    assert represented.status_code == 200
    assert represented.json()["tags"] == ["x"]
    assert represented.json()["stock"] == 42


def test_patch_of_a_missing_record_is_404(client):
    response = client.patch("/Product/nope", json={"stock": 1})
    assert response.status_code == 404
    assert client.get("/Product/nope").status_code == 404


def test_delete(client):
    response = client.delete("/Product/p0")
    assert response.status_code == 204
    assert response.content == b""
    assert client.get("/Product/p0").status_code == 404
    assert client.delete("/Product/p0").status_code == 404


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match(client, method):
    etag = client.get("/Product/p0").headers["etag"]
    body = {"name": "Changed", "price": 1} if method != "DELETE" else None
    stale = client.request(method, "/Product/p0", json=body, headers={"if-match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "PRECONDITION_FAILED"
    assert client.get("/Product/p0").json()["name"] == "Air"
    fresh = client.request(method, "/Product/p0", json=body, headers={"if-match": etag})
    assert fresh.status_code == 204
    if method == "DELETE":
        assert client.get("/Product/p0").status_code == 404
    else:
        assert client.get("/Product/p0").json()["name"] == "Changed"


def test_if_match_on_a_missing_record_is_412(client):
    response = client.put(
        "/Product/nope", json={"name": "x", "price": 1}, headers={"if-match": "*"}
    )
    assert response.status_code == 412
    assert client.get("/Product/nope").status_code == 404


# -- collections and queries ------------------------------------------------------------------


def ids(response):
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()]


def test_collection_lists_every_record(client):
    response = client.get("/Product/")
    assert response.headers["content-type"] == "application/json"
    assert sorted(ids(response)) == ["p0", "p1", "p2", "p3"]


def test_empty_collection_is_an_empty_array(serve):
    client = serve(Product)
    assert client.get("/Product/").json() == []


def test_field_equals_value(client):
    assert sorted(ids(client.get("/Product/?category=shoes"))) == ["p0", "p1"]
    assert ids(client.get("/Product/?name=Cap")) == ["p2"]
    assert ids(client.get("/Product/?category=none")) == []


def test_query_values_are_coerced_to_the_declared_type(client):
    assert ids(client.get("/Product/?stock=2")) == ["p2"]
    assert ids(client.get("/Product/?price=20")) == ["p2"]
    assert ids(client.get("/Product/?price=20.0")) == ["p2"]
    assert ids(client.get("/Product/?stock=gt=1&sort(stock)")) == ["p2", "p3"]


def test_a_query_value_of_the_wrong_type_is_400(client):
    response = client.get("/Product/?stock=many")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_QUERY"


def test_sort_and_limit(client):
    assert ids(client.get("/Product/?sort(price)")) == ["p1", "p2", "p0", "p3"]
    assert ids(client.get("/Product/?sort(-price)")) == ["p3", "p0", "p2", "p1"]
    assert ids(client.get("/Product/?sort(-category,+price)")) == ["p1", "p0", "p2", "p3"]
    assert ids(client.get("/Product/?sort(price)&limit(2)")) == ["p1", "p2"]
    assert ids(client.get("/Product/?sort(price)&limit(1,3)")) == ["p2", "p0"]
    assert ids(client.get("/Product/?category=shoes&sort(-price)&limit(1)")) == ["p0"]


def test_prefer_count_exact_adds_content_range(client):
    response = client.get("/Product/?sort(price)&limit(2)", headers={"prefer": "count=exact"})
    assert response.headers["content-range"] == "items 0-1/4"
    assert len(response.json()) == 2
    paged = client.get("/Product/?sort(price)&limit(2,4)", headers={"prefer": "count=exact"})
    assert paged.headers["content-range"] == "items 2-3/4"
    filtered = client.get("/Product/?category=shoes", headers={"prefer": "count=exact"})
    assert filtered.headers["content-range"] == "items 0-1/2"
    empty = client.get("/Product/?category=none", headers={"prefer": "count=exact"})
    assert empty.headers["content-range"] == "items */0"
    assert "content-range" not in client.get("/Product/").headers


def test_delete_matching_returns_the_count(client):
    response = client.delete("/Product/?category=shoes")
    assert response.status_code == 200
    assert response.json() == 2
    assert sorted(ids(client.get("/Product/"))) == ["p2", "p3"]
    assert client.delete("/Product/?category=shoes").json() == 0


def test_delete_matching_with_a_bad_query_deletes_nothing(client):
    response = client.delete("/Product/?nothing=1")
    assert response.status_code == 400
    assert len(ids(client.get("/Product/"))) == 4


def test_large_collection_streams_as_one_json_array(serve):
    client = serve(Product)
    for i in range(450):
        client.put(f"/Product/k{i:03}", json={"name": f"n{i}", "price": i})
    rows = client.get("/Product/?sort(price)").json()
    assert [r["id"] for r in rows] == [f"k{i:03}" for i in range(450)]


# -- the table description ---------------------------------------------------------------------


def test_get_table_is_its_json_schema(client):
    response = client.get("/Product")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    schema = response.json()
    assert schema["title"] == "Product"
    assert schema["type"] == "object"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["x-primaryKey"] == "id"
    assert schema["x-indexes"] == ["id", "name", "price", "category"]
    assert schema["properties"]["price"] == {"type": "number", "minimum": 0}
    assert schema["properties"]["stock"] == {"type": "integer", "default": 0}
    assert schema["properties"]["tags"]["type"] == "array"
    assert set(schema["required"]) == {"id", "name", "price"}


class Maker(Table):
    id: str = Field(primary_key=True)
    name: str = ""
    secret: str = Field(default="", returned=False)


class Gadget(Table):
    id: str = Field(primary_key=True)
    maker_id: str | None = Field(default=None, indexed=True)
    maker: Maker | None = relationship(from_="maker_id")


def test_a_relationship_is_a_property_of_a_record(serve):
    client = serve(Maker, Gadget)
    client.put("/Maker/m", json={"name": "Acme", "secret": "s"})
    client.put("/Gadget/g", json={"maker_id": "m"})
    client.put("/Gadget/h", json={})
    assert client.get("/Gadget/g.maker").json() == {"id": "m", "name": "Acme"}
    assert client.get("/Gadget/h.maker").json() is None
    assert client.get("/Gadget/nope.maker").status_code == 404


def test_csv_of_a_selection_has_the_selected_columns(serve):
    client = serve(Maker, Gadget)
    client.put("/Maker/m", json={"name": "Acme", "secret": "s"})
    client.put("/Gadget/g", json={"maker_id": "m"})
    lines = client.get("/Gadget/.csv?select(id,maker)").text.splitlines()
    assert lines[0] == "id,maker"
    assert lines[1] == 'g,"{""id"":""m"",""name"":""Acme""}"'
    assert client.get("/Gadget/.csv?select(id)").text.splitlines() == ["id", "g"]
    assert client.get("/Gadget/.csv?select([id,maker_id])").text.splitlines() == [
        "id,maker_id",
        "g,m",
    ]
