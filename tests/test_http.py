"""The HTTP layer: body limit, HEAD, CORS, 405 and OPTIONS with Allow, unknown paths."""

import pytest

from charter import CORS, Field, Table


class Note(Table):
    id: str = Field(primary_key=True)
    text: str = ""


@pytest.fixture
def client(serve):
    client = serve(Note)
    assert client.put("/Note/n1", json={"text": "hello"}).status_code == 204
    return client


# -- body limit -------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413(serve):
    client = serve(Note, max_body_size=100)
    small = client.post("/Note/", json={"text": "x" * 50})
    assert small.status_code == 201
    response = client.post("/Note/", json={"text": "x" * 200})
    assert response.status_code == 413
    assert response.json()["error"] == {
        "status": 413,
        "code": "PAYLOAD_TOO_LARGE",
        "message": "body is larger than 100 bytes",
    }
    assert len(client.get("/Note/").json()) == 1


def test_a_streamed_body_over_the_limit_is_413(serve):
    client = serve(Note, max_body_size=100)

    def chunks():
        for _ in range(10):
            yield b'{"text": "' + b"x" * 20 + b'"}'

    response = client.post("/Note/", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert client.get("/Note/").json() == []


def test_a_put_over_the_limit_leaves_the_record(serve):
    client = serve(Note, max_body_size=64)
    client.put("/Note/n", json={"text": "short"})
    assert client.put("/Note/n", json={"text": "y" * 100}).status_code == 413
    assert client.get("/Note/n").json() == {"id": "n", "text": "short"}


# -- HEAD -------------------------------------------------------------------------------------


def test_head_has_the_headers_of_get_and_no_body(client):
    got = client.get("/Note/n1")
    head = client.head("/Note/n1")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == got.headers["etag"]
    assert head.headers["content-type"] == "application/json"
    assert head.headers["content-length"] == str(len(got.content))
    assert client.head("/Note/missing").status_code == 404
    collection = client.head("/Note/")
    assert collection.status_code == 200
    assert collection.content == b""


# -- 405 and 404 ------------------------------------------------------------------------------


def test_405_has_an_allow_header(client):
    response = client.request("TRACE", "/Note/n1")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "PUT", "PATCH", "DELETE", "POST"} <= allowed  # POST publishes (section 8)

    response = client.put("/Note/", json={})
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "POST", "DELETE"} <= allowed
    assert "PUT" not in allowed

    response = client.delete("/Note")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]


def test_options_answers_204_with_allow(client):
    # Issue 8 point 9: OPTIONS used to be a 405; it says what the path answers.
    response = client.options("/Note/n1")
    assert response.status_code == 204
    assert response.content == b""
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "HEAD", "PUT", "PATCH", "DELETE", "POST", "OPTIONS"} <= allowed
    collection = client.options("/Note/")
    assert collection.status_code == 204
    allowed = {m.strip() for m in collection.headers["allow"].split(",")}
    assert {"GET", "HEAD", "POST", "OPTIONS"} <= allowed
    assert client.options("/Nothing/1").status_code == 404


def test_head_and_options_are_in_every_allow_with_get(client):
    response = client.request("TRACE", "/Note/n1")
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "HEAD", "OPTIONS"} <= allowed


def test_unknown_paths_are_404(client):
    for path in ("/", "/Nothing", "/Nothing/1", "/Note/n1/deeper"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "NOT_FOUND"


# -- CORS -------------------------------------------------------------------------------------


def test_cors_true_allows_any_origin(serve):
    client = serve(Note, cors=True)
    client.put("/Note/n1", json={"text": "hi"})
    response = client.get("/Note/n1", headers={"origin": "https://a.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "etag" in exposed
    assert "location" in exposed


def test_cors_preflight(serve):
    client = serve(Note, cors=True)
    response = client.options(
        "/Note/n1",
        headers={
            "origin": "https://a.example",
            "access-control-request-method": "PATCH",
            "access-control-request-headers": "content-type, if-match",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "PATCH" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "content-type, if-match"
    assert int(response.headers["access-control-max-age"]) > 0


def test_cors_with_listed_origins(serve):
    client = serve(Note, cors=CORS(allow_origins=["https://good.example"]))
    client.put("/Note/n1", json={"text": "hi"})
    good = client.get("/Note/n1", headers={"origin": "https://good.example"})
    assert good.headers["access-control-allow-origin"] == "https://good.example"
    assert "origin" in good.headers["vary"].lower()
    bad = client.get("/Note/n1", headers={"origin": "https://evil.example"})
    assert bad.status_code == 200
    assert "access-control-allow-origin" not in bad.headers

    preflight = {"access-control-request-method": "DELETE"}
    allowed = client.options("/Note/n1", headers={"origin": "https://good.example", **preflight})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://good.example"
    refused = client.options("/Note/n1", headers={"origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in refused.headers


def test_cors_headers_are_on_errors_too(serve):
    client = serve(Note, cors=True)
    response = client.get("/Note/missing", headers={"origin": "https://a.example"})
    assert response.status_code == 404
    assert response.headers["access-control-allow-origin"] == "*"


def test_no_cors_headers_without_cors(client):
    response = client.get("/Note/n1", headers={"origin": "https://a.example"})
    assert "access-control-allow-origin" not in response.headers
