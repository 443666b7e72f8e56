"""Routes with contracts (SPEC section 5): payload, query and response schemas given as types or
JSON Schema, response validation, returned errors, roles and path parameters."""

import dataclasses
import logging
from typing import Any, TypedDict

import msgspec
import pytest

from charter import (
    App,
    CharterError,
    Contract,
    HttpError,
    HttpResp,
    Request,
    RequestContext,
    endpoint_error_schema,
    route,
)
from charter.testing import TestClient


@dataclasses.dataclass
class KeyCheck:
    key: str
    attempts: int = 0


class KeyResult(msgspec.Struct):
    valid: bool
    key: str


class Page(TypedDict):
    page: int
    tag: str


NOT_FOUND = endpoint_error_schema(http_status=[404], code=["RESOURCE_NOT_FOUND"])


@route(
    "POST",
    "/checkKey",
    contract=Contract(
        payload=KeyCheck, query=Page, response=[KeyResult, NOT_FOUND], roles=["admin"]
    ),
)
async def check_key(payload: KeyCheck, query: Page, ctx: RequestContext) -> Any:
    assert isinstance(payload, KeyCheck)
    assert isinstance(ctx, RequestContext)
    if payload.key == "missing":
        return HttpError(404, "no such key", code="RESOURCE_NOT_FOUND")
    if payload.key == "undeclared-error":
        return HttpError(409, "taken", code="CONFLICT")
    if payload.key == "raised":
        raise HttpError(409, "taken", code="CONFLICT")
    if payload.key == "wrong":
        return {"valid": "yes", "key": "internal-detail"}
    return KeyResult(valid=query["page"] == 2, key=payload.key)


SHAPE = {
    "type": "object",
    "properties": {
        "a": {"type": "integer", "minimum": 0},
        "b": {"type": "string", "maxLength": 3},
        "when": {"type": "string", "format": "date"},
    },
    "required": ["a"],
    "additionalProperties": False,
}
QUERY = {
    "type": "object",
    "properties": {
        "n": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "integer"}},
    },
}
RESPONSE = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}


@route("POST", "/sum", contract=Contract(payload=SHAPE, query=QUERY, response=RESPONSE))
def sum_route(payload: dict[str, Any], query: dict[str, Any]) -> Any:
    if payload.get("b") == "bad":
        return {"sum": "not a number"}
    return {"sum": payload["a"] + query.get("n", 0) + sum(query.get("tags", [])), "echo": payload}


@route("GET", "/items/{item_id}/{slug}", contract=Contract(roles=True))
async def item(item_id: str, slug: str, request: Request) -> dict[str, str]:
    return {"item_id": item_id, "slug": slug, "method": request.method}


@route("GET", "/square/{n}")
def square(n: int) -> int:
    return n * n


@route("DELETE", "/things/{id}", contract=Contract(roles="unauthenticated"))
def remove(id: str) -> Any:
    return None


@route("POST", "/made", contract=Contract(response=[KeyResult]))
def made() -> Any:
    return HttpResp.created({"valid": True, "key": "k"}, location="/made/k")


@route("GET", "/nothing", contract=Contract(response=KeyResult))
def nothing() -> Any:
    return None


ROUTES = [check_key, sum_route, item, square, remove, made, nothing]


@pytest.fixture
def client(serve):
    return serve(routes=ROUTES)


# -- payload and query -------------------------------------------------------------------------


def test_a_valid_request(client):
    response = client.post("/checkKey?page=2&tag=x", json={"key": "k"})
    assert response.status_code == 200, response.content
    assert response.json() == {"valid": True, "key": "k"}


def test_the_payload_is_validated_without_coercion(client):
    response = client.post("/checkKey?page=2&tag=x", json={"key": 5, "attempts": "1"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "INVALID_PROPERTIES"
    assert [(d["loc"], d["code"]) for d in error["details"]] == [
        (["body", "key"], "UNMATCHING_PROPERTIES"),
        (["body", "attempts"], "UNMATCHING_PROPERTIES"),
    ]
    missing = client.post("/checkKey?page=2&tag=x", json={})
    assert missing.json()["error"]["details"][0] == {
        "loc": ["body", "key"], "code": "MISSING_PROPERTY", "message": "property is required"
    }  # fmt: skip
    absent = client.post("/checkKey?page=2&tag=x")
    assert absent.status_code == 422


def test_the_query_is_validated_with_coercion(client):
    wrong = client.post("/checkKey?page=two&tag=x", json={"key": "k"})
    assert wrong.status_code == 422
    (detail,) = wrong.json()["error"]["details"]
    assert detail["loc"] == ["query", "page"]
    missing = client.post("/checkKey?page=2", json={"key": "k"})
    assert missing.status_code == 422
    assert missing.json()["error"]["details"][0]["loc"] == ["query", "tag"]


def test_json_schema_contracts(client):
    response = client.post("/sum?n=3&tags=1&tags=2", json={"a": 1, "when": "2024-01-02"})
    assert response.status_code == 200, response.content
    assert response.json() == {"sum": 7, "echo": {"a": 1, "when": "2024-01-02"}}


def test_a_single_value_for_an_array_query_field_is_a_list(client):
    for query in ("tags=5", "tags[]=5"):
        assert client.post(f"/sum?{query}", json={"a": 1}).json()["sum"] == 6


@pytest.mark.parametrize(
    ("body", "loc", "code"),
    [
        ({"a": -1}, ["body", "a"], "NUMERIC_CONSTRAINT"),
        ({"a": "1"}, ["body", "a"], "UNMATCHING_PROPERTIES"),
        ({"a": 1, "b": "long"}, ["body", "b"], "STRING_CONSTRAINT"),
        ({"a": 1, "c": 1}, ["body", "c"], "EXTRANEOUS_PROPERTY"),
        ({}, ["body", "a"], "MISSING_PROPERTY"),
        ([1], ["body"], "UNMATCHING_PROPERTIES"),
    ],
)
def test_json_schema_payload_errors(client, body, loc, code):
    response = client.post("/sum", json=body)
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert (detail["loc"], detail["code"]) == (loc, code)


def test_json_schema_query_errors(client):
    response = client.post("/sum?n=x", json={"a": 1})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["query", "n"]


def test_malformed_body_is_400(client):
    response = client.post("/sum", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MALFORMED_INPUT"


# -- path parameters ---------------------------------------------------------------------------


def test_path_parameters_reach_the_handler(client):
    response = client.get("/items/a%20b/my-slug")
    assert response.status_code == 200
    assert response.json() == {"item_id": "a b", "slug": "my-slug", "method": "GET"}


def test_path_parameters_are_coerced_to_their_annotation(client):
    assert client.get("/square/7").json() == 49
    bad = client.get("/square/seven")
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["loc"] == ["path", "n"]


def test_a_handler_parameter_nothing_can_fill_is_an_error_at_build(database):
    @route("GET", "/x/{a}")
    def handler(a: str, b: int) -> int:
        return 1

    with pytest.raises(CharterError, match="'b'"):
        App(routes=[handler], database=database)


def test_a_function_without_route_is_refused(database):
    def plain() -> None:
        pass

    with pytest.raises(CharterError, match="@route"):
        App(routes=[plain], database=database)


def test_unknown_verbs_on_a_route_are_405(client):
    assert client.get("/checkKey").status_code == 405


# -- responses ---------------------------------------------------------------------------------


def test_returned_errors_answer_with_the_envelope(client):
    response = client.post("/checkKey?page=2&tag=x", json={"key": "missing"})
    assert response.status_code == 404
    assert response.json() == {
        "error": {"status": 404, "code": "RESOURCE_NOT_FOUND", "message": "no such key"}
    }


def test_a_returned_error_must_match_a_declared_error_shape(client, caplog):
    with caplog.at_level(logging.ERROR):
        response = client.post("/checkKey?page=2&tag=x", json={"key": "undeclared-error"})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INVALID_RESPONSE"
    assert any("check_key" in r.getMessage() for r in caplog.records)


def test_raised_errors_are_not_checked(client):
    response = client.post("/checkKey?page=2&tag=x", json={"key": "raised"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"


def test_an_invalid_response_is_500_and_logged(client, caplog):
    with caplog.at_level(logging.ERROR):
        response = client.post("/checkKey?page=2&tag=x", json={"key": "wrong"})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INVALID_RESPONSE"
    assert "internal-detail" not in response.text
    assert any("check_key" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    json_schema = client.post("/sum", json={"a": 1, "b": "bad"})
    assert json_schema.status_code == 500
    assert json_schema.json()["error"]["code"] == "INVALID_RESPONSE"


def test_no_body_must_be_allowed_by_the_contract(client):
    assert client.get("/nothing").status_code == 500
    assert client.delete("/things/1").status_code == 204


def test_http_results_set_status_and_headers(client):
    response = client.post("/made")
    assert response.status_code == 201
    assert response.headers["location"] == "/made/k"
    assert response.json() == {"valid": True, "key": "k"}


def test_the_test_client_turns_response_validation_on(database):
    app = App(routes=ROUTES, database=database)
    assert app.config.validate_responses is None
    with TestClient(app) as client:
        assert app.config.validate_responses is True
        assert client.post("/checkKey?page=2&tag=x", json={"key": "wrong"}).status_code == 500


def test_without_validation_an_invalid_response_is_sent_as_is(database):
    app = App(routes=ROUTES, database=database, validate_responses=False)
    with TestClient(app) as client:
        wrong = client.post("/checkKey?page=2&tag=x", json={"key": "wrong"})
        assert wrong.status_code == 200
        assert wrong.json() == {"valid": "yes", "key": "internal-detail"}
        error = client.post("/checkKey?page=2&tag=x", json={"key": "undeclared-error"})
        assert error.status_code == 409
        assert error.json()["error"]["code"] == "CONFLICT"
        # Inputs are still validated.
        assert client.post("/checkKey?page=2&tag=x", json={}).status_code == 422


def test_several_response_shapes(serve):
    class A(msgspec.Struct, forbid_unknown_fields=True):
        a: int

    class B(TypedDict):
        b: str

    @route("GET", "/shape/{which}", contract=Contract(response=[A, B, {"type": "null"}]))
    def shape(which: str) -> Any:
        return {"a": {"a": 1}, "b": {"b": "x"}, "c": {"c": 1}, "n": None}[which]

    client = serve(routes=[shape])
    assert client.get("/shape/a").json() == {"a": 1}
    assert client.get("/shape/b").json() == {"b": "x"}
    assert client.get("/shape/n").status_code == 204
    assert client.get("/shape/c").status_code == 500


def test_discriminated_json_schema_unions(serve):
    payload = {
        "oneOf": [
            {
                "type": "object",
                "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}},
                "required": ["kind", "r"],
            },
            {
                "type": "object",
                "properties": {"kind": {"const": "square"}, "side": {"type": "number"}},
                "required": ["kind", "side"],
            },
        ]
    }

    @route("POST", "/area", contract=Contract(payload=payload))
    def area(payload: dict[str, Any]) -> float:
        return payload["r"] ** 2 * 3 if payload["kind"] == "circle" else payload["side"] ** 2

    client = serve(routes=[area])
    assert client.post("/area", json={"kind": "circle", "r": 1}).json() == 3
    assert client.post("/area", json={"kind": "square", "side": 2}).json() == 4
    assert client.post("/area", json={"kind": "square", "r": 2}).status_code == 422
    assert client.post("/area", json={"kind": "triangle"}).status_code == 422


# -- roles -------------------------------------------------------------------------------------


def test_roles_are_recorded_on_the_route_and_in_openapi(client):
    routes = {r.path: r for r in client.app.router.routes if r.kind == "route"}
    assert routes["/checkKey"].meta["roles"] == ["admin"]
    assert routes["/items/{item_id}/{slug}"].meta["roles"] is True
    assert routes["/things/{id}"].meta["roles"] == "unauthenticated"
    assert routes["/square/{n}"].meta["roles"] is None
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/checkKey"]["post"]["x-roles"] == ["admin"]
    assert paths["/items/{item_id}/{slug}"]["get"]["x-roles"] is True
    assert paths["/things/{id}"]["delete"]["x-roles"] == "unauthenticated"
    assert "x-roles" not in paths["/square/{n}"]["get"]


def test_contract_schemas_are_in_openapi(client):
    operation = client.get("/openapi.json").json()["paths"]["/sum"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == SHAPE
    assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} == {"n", "tags"}
