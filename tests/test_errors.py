"""Errors (SPEC section 2): one envelope, the codes, details, and no internals leaked."""

import logging

import cbor2
import msgspec
import pytest

from charter import (
    Conflict,
    Field,
    Forbidden,
    HttpError,
    NotFound,
    Table,
    Unauthorized,
    ValidationError,
)


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    price: float = Field(indexed=True, ge=0)
    stock: int = 0
    code: str = Field(default="aa", min_length=2, max_length=4)
    tags: list[str] = Field(default_factory=list, max_length=2)
    pair: list[int] = Field(default_factory=lambda: [0, 0], min_length=2)


ORIGINAL = {
    "id": "p",
    "name": "Air",
    "price": 10,
    "stock": 3,
    "code": "aa",
    "tags": [],
    "pair": [0, 0],
}


@pytest.fixture
def client(serve):
    client = serve(Product)
    assert client.post("/Product/", json=ORIGINAL).status_code == 201
    return client


def error_of(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


def test_error_shape(client):
    """The envelope, pinned: exactly these keys, in this order."""
    response = client.post("/Product/", json={"name": 5, "price": 1})
    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "status": 422,
            "code": "INVALID_PROPERTIES",
            "message": "payload is invalid",
            "details": [
                {
                    "loc": ["body", "name"],
                    "code": "UNMATCHING_PROPERTIES",
                    "expected": "string",
                    "got": "number",
                    "message": "Expected `str`, got `int`",
                }
            ],
        }
    }
    assert list(response.json()["error"]) == ["status", "code", "message", "details"]
    not_found = client.get("/Product/nope").json()
    assert list(not_found["error"]) == ["status", "code", "message"]
    assert not_found["error"]["status"] == 404
    assert not_found["error"]["code"] == "NOT_FOUND"
    assert isinstance(not_found["error"]["message"], str)


# -- MALFORMED_INPUT --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"name": "x", '),
        ("application/json", b"\xff\xfe"),
        ("application/msgpack", b"\xc1"),
        ("application/x-msgpack", b"\x92\x01"),
        ("application/cbor", b"\xbf\x61"),
    ],
)
def test_unparseable_bodies_are_400_malformed_input(client, content_type, body):
    response = client.post("/Product/", content=body, headers={"content-type": content_type})
    error = error_of(response, 400)
    assert error["code"] == "MALFORMED_INPUT"
    assert error["status"] == 400


def test_an_empty_body_is_400(client):
    response = client.post("/Product/", content=b"", headers={"content-type": "application/json"})
    assert error_of(response, 400)["code"] == "MALFORMED_INPUT"


def test_unsupported_content_type_is_415(client):
    for content_type in ("text/plain", "application/xml", "text/csv"):
        response = client.post(
            "/Product/", content=b"name=x", headers={"content-type": content_type}
        )
        assert error_of(response, 415)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    response = client.put("/Product/p", content=b"x", headers={"content-type": "text/plain"})
    assert error_of(response, 415)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert client.get("/Product/p").json() == ORIGINAL


# -- INVALID_PROPERTIES -----------------------------------------------------------------------


def detail_codes(response):
    error = error_of(response, 422)
    assert error["code"] == "INVALID_PROPERTIES"
    for detail in error["details"]:
        assert detail["loc"][0] == "body"
        assert isinstance(detail["message"], str)
    return {(d["code"], tuple(d["loc"])) for d in error["details"]}


def test_missing_property(client):
    response = client.post("/Product/", json={"price": 1})
    assert detail_codes(response) == {("MISSING_PROPERTY", ("body", "name"))}


def test_every_missing_property_is_reported(client):
    response = client.post("/Product/", json={})
    assert detail_codes(response) == {
        ("MISSING_PROPERTY", ("body", "name")),
        ("MISSING_PROPERTY", ("body", "price")),
    }


def test_extraneous_property(client):
    response = client.post("/Product/", json={"name": "x", "price": 1, "colour": "red"})
    assert detail_codes(response) == {("EXTRANEOUS_PROPERTY", ("body", "colour"))}


def test_unmatching_property_says_expected_and_got(client):
    response = client.post("/Product/", json={"name": "x", "price": "cheap"})
    (detail,) = error_of(response, 422)["details"]
    assert detail["code"] == "UNMATCHING_PROPERTIES"
    assert detail["loc"] == ["body", "price"]
    assert detail["expected"] == "number"
    assert detail["got"] == "string"


def test_bodies_are_not_coerced(client):
    response = client.post("/Product/", json={"name": "x", "price": 1, "stock": "5"})
    (detail,) = error_of(response, 422)["details"]
    assert detail["code"] == "UNMATCHING_PROPERTIES"
    assert detail["loc"] == ["body", "stock"]
    assert (detail["expected"], detail["got"]) == ("integer", "string")
    response = client.post("/Product/", json={"name": "x", "price": 1, "stock": 5.5})
    assert detail_codes(response) == {("UNMATCHING_PROPERTIES", ("body", "stock"))}
    response = client.post("/Product/", json={"name": True, "price": 1})
    assert detail_codes(response) == {("UNMATCHING_PROPERTIES", ("body", "name"))}


def test_query_strings_are_coerced(client):
    assert [r["id"] for r in client.get("/Product/?stock=3").json()] == ["p"]
    assert [r["id"] for r in client.get("/Product/?price=10").json()] == ["p"]


def test_numeric_and_string_constraints(client):
    response = client.post("/Product/", json={"name": "x", "price": -1, "code": "a"})
    assert detail_codes(response) == {
        ("NUMERIC_CONSTRAINT", ("body", "price")),
        ("STRING_CONSTRAINT", ("body", "code")),
    }
    response = client.post("/Product/", json={"name": "x", "price": 1, "code": "abcde"})
    assert detail_codes(response) == {("STRING_CONSTRAINT", ("body", "code"))}


def test_item_count_constraints(client):
    response = client.post("/Product/", json={"name": "x", "price": 1, "pair": [1]})
    assert detail_codes(response) == {("MORE_ITEMS_EXPECTED", ("body", "pair"))}
    response = client.post("/Product/", json={"name": "x", "price": 1, "tags": ["a", "b", "c"]})
    assert detail_codes(response) == {("LESS_ITEMS_EXPECTED", ("body", "tags"))}


def test_nested_locations(client):
    response = client.post("/Product/", json={"name": "x", "price": 1, "tags": ["a", 2]})
    (detail,) = error_of(response, 422)["details"]
    assert detail["loc"] == ["body", "tags", 1]
    assert detail["code"] == "UNMATCHING_PROPERTIES"


def test_several_problems_are_reported_together(client):
    response = client.post(
        "/Product/", json={"price": "x", "stock": "5", "extra": 1, "code": "abcdef"}
    )
    assert detail_codes(response) == {
        ("MISSING_PROPERTY", ("body", "name")),
        ("UNMATCHING_PROPERTIES", ("body", "price")),
        ("UNMATCHING_PROPERTIES", ("body", "stock")),
        ("EXTRANEOUS_PROPERTY", ("body", "extra")),
        ("STRING_CONSTRAINT", ("body", "code")),
    }


def test_a_body_that_is_not_an_object(client):
    for body in (b"[1, 2]", b'"text"', b"5", b"null"):
        response = client.post(
            "/Product/", content=body, headers={"content-type": "application/json"}
        )
        (detail,) = error_of(response, 422)["details"]
        assert detail["code"] == "UNMATCHING_PROPERTIES"
        assert detail["loc"] == ["body"]
        assert detail["expected"] == "object"


def test_msgpack_and_cbor_bodies_are_validated_the_same_way(client):
    for content_type, encode in (
        ("application/msgpack", msgspec.msgpack.encode),
        ("application/cbor", cbor2.dumps),
    ):
        response = client.post(
            "/Product/",
            content=encode({"name": "x", "price": 1, "stock": "5"}),
            headers={"content-type": content_type},
        )
        assert detail_codes(response) == {("UNMATCHING_PROPERTIES", ("body", "stock"))}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "price": -5},
        {"name": 1, "price": 1},
        {"price": 1},
        {"name": "x", "price": 1, "unknown": True},
        {"name": "x", "price": 1, "stock": "7"},
    ],
)
def test_rejected_put_leaves_the_record_untouched(client, body):
    response = client.put("/Product/p", json=body)
    assert response.status_code == 422
    assert client.get("/Product/p").json() == ORIGINAL


@pytest.mark.parametrize(
    "body",
    [
        {"price": -5},
        {"name": None},
        {"unknown": True},
        {"stock": "7"},
        {"tags": ["a", "b", "c"]},
        {"stock": 4, "price": "x"},
    ],
)
def test_rejected_patch_leaves_the_record_untouched(client, body):
    response = client.patch("/Product/p", json=body)
    assert response.status_code == 422
    assert client.get("/Product/p").json() == ORIGINAL


def test_malformed_put_and_patch_leave_the_record_untouched(client):
    bad = {"content-type": "application/json"}
    assert client.put("/Product/p", content=b"{", headers=bad).status_code == 400
    assert client.patch("/Product/p", content=b"{", headers=bad).status_code == 400
    assert client.get("/Product/p").json() == ORIGINAL


# -- INVALID_QUERY ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "nothing=1",
        "stock=many",
        "sort(nothing)",
        "limit(x)",
        "limit(1,2,3)",
        "unknown(1)",
        "price=zz=1",
        "(((",
    ],
)
def test_invalid_queries_are_400(client, query):
    error = error_of(client.get(f"/Product/?{query}"), 400)
    assert error["code"] == "INVALID_QUERY"
    assert error["message"]


def test_invalid_query_message_gives_the_position(client):
    error = error_of(client.get("/Product/?stock=1&limit(x)"), 400)
    assert "position 8" in error["message"]


# -- exceptions raised by application code -----------------------------------------------------


class Teapot(Exception):
    status_code = 418


class Boom(Exception):
    pass


class Raising(Table):
    id: str = Field(primary_key=True)
    kind: str = ""

    async def get(self, query):
        raisers = {
            "notfound": lambda: NotFound("no such thing"),
            "forbidden": lambda: Forbidden(),
            "unauthorized": lambda: Unauthorized(),
            "conflict": lambda: Conflict("taken"),
            "invalid": lambda: ValidationError(
                details=[{"loc": ["body", "x"], "code": "MISSING_PROPERTY", "message": "required"}]
            ),
            "http": lambda: HttpError(402, "pay first", code="PAYMENT_REQUIRED"),
            "bare422": lambda: ValidationError("not a valid thing"),
            "teapot": lambda: Teapot("short and stout"),
            "boom": lambda: Boom("SELECT secret FROM users -- password=hunter2"),
            "keyerror": lambda: KeyError("internal_key"),
        }
        raise raisers[self.get_id()]()


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        ("notfound", 404, "NOT_FOUND"),
        ("forbidden", 403, "FORBIDDEN"),
        ("unauthorized", 401, "UNAUTHORIZED"),
        ("conflict", 409, "CONFLICT"),
        ("invalid", 422, "INVALID_PROPERTIES"),
        ("http", 402, "PAYMENT_REQUIRED"),
    ],
)
def test_http_errors_raised_by_handlers(serve, key, status, code):
    client = serve(Raising)
    error = error_of(client.get(f"/Raising/{key}"), status)
    assert error["code"] == code
    assert error["status"] == status


def test_an_invalid_properties_error_always_carries_details(serve):
    client = serve(Raising)
    error = error_of(client.get("/Raising/bare422"), 422)
    assert error["code"] == "INVALID_PROPERTIES"
    assert error["details"] == [
        {"loc": [], "code": "UNMATCHING_PROPERTIES", "message": "not a valid thing"}
    ]
    assert client.post("/Raising/", json=[1]).json()["error"]["details"]


def test_unauthorized_has_www_authenticate(serve):
    client = serve(Raising)
    assert "www-authenticate" in client.get("/Raising/unauthorized").headers


def test_an_exception_with_status_code_becomes_that_status(serve):
    client = serve(Raising)
    error = error_of(client.get("/Raising/teapot"), 418)
    assert error["status"] == 418
    assert error["message"] == "short and stout"


@pytest.mark.parametrize("key", ["boom", "keyerror"])
def test_any_other_exception_is_a_500_revealing_nothing(serve, caplog, key):
    client = serve(Raising)
    with caplog.at_level(logging.ERROR, logger="charter"):
        response = client.get(f"/Raising/{key}")
    assert response.json() == {
        "error": {"status": 500, "code": "INTERNAL", "message": "internal server error"}
    }
    text = response.text
    for leak in ("Traceback", "SELECT", "hunter2", "internal_key", "Boom", "KeyError", "File "):
        assert leak not in text
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged
    assert any(r.exc_info and r.exc_info[0].__name__ in ("Boom", "KeyError") for r in logged)


def test_error_bodies_follow_the_accepted_format(client):
    response = client.get("/Product/nope", headers={"accept": "application/msgpack"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/msgpack"
    assert msgspec.msgpack.decode(response.content)["error"]["code"] == "NOT_FOUND"
    as_csv = client.get("/Product/nope", headers={"accept": "text/csv"})
    assert as_csv.headers["content-type"] == "application/json"
    assert as_csv.json()["error"]["code"] == "NOT_FOUND"


# -- every status and code Charter answers with is in docs/errors.md (issue 9) -----------------

_ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
_DETAIL_CODES = {
    "MISSING_PROPERTY", "EXTRANEOUS_PROPERTY", "UNMATCHING_PROPERTIES", "NUMERIC_CONSTRAINT",
    "STRING_CONSTRAINT", "MORE_ITEMS_EXPECTED", "LESS_ITEMS_EXPECTED",
}  # fmt: skip


def _answered() -> tuple[set[str], set[int]]:
    """The error codes and statuses written in charter/: ``default_code = "X"``,
    ``code="X"``, the default codes by status, ``status_code = N``, ``HttpError(N`` and
    ``Response(N`` for N >= 400."""
    import re

    from charter import errors

    codes: set[str] = set(errors._DEFAULT_CODES.values()) | {"ERROR"}
    statuses: set[int] = set(errors._DEFAULT_CODES)
    for path in (_ROOT / "charter").rglob("*.py"):
        text = path.read_text()
        codes |= set(re.findall(r'\bcode\s*=\s*"([A-Z_]+)"', text))
        codes |= set(re.findall(r'\bdefault_code\s*=\s*"([A-Z_]+)"', text))
        numbers = re.findall(r"\bstatus_code\s*=\s*(\d{3})\b", text)
        numbers += re.findall(r"\b(?:HttpError|Response|error_body)\(\s*(\d{3})\b", text)
        statuses |= {int(n) for n in numbers if int(n) >= 400}
    return codes - _DETAIL_CODES, statuses


def test_every_error_code_and_status_is_documented():
    codes, statuses = _answered()
    assert {"NOT_ACCEPTABLE", "INVALID_RESPONSE", "URI_TOO_LONG", "NOT_IMPLEMENTED"} <= codes
    assert {406, 414, 499, 501} <= statuses
    doc = (_ROOT / "docs" / "errors.md").read_text()
    rows = {
        (cells[0].strip("` "), cells[1].strip())
        for line in doc.splitlines()
        if line.startswith("| `")
        for cells in [line.strip("|").split("|")]
    }
    documented_codes = {code for code, _ in rows}
    documented_statuses = {int(status) for _, status in rows if status.isdigit()}
    assert codes - documented_codes == set()
    assert statuses - documented_statuses == set()
    for detail in _DETAIL_CODES:
        assert f"`{detail}`" in doc, detail


def test_the_documented_codes_are_answered(serve):
    from charter import route

    @route("GET", "/lying")
    def lying() -> int:
        return "not a number"  # type: ignore[return-value]

    client = serve(Product, routes=[lying])
    response = client.get("/Product/", headers={"accept": "image/png"})
    assert response.status_code == 406
    assert response.json()["error"]["code"] == "NOT_ACCEPTABLE"
    response = client.get("/lying")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INVALID_RESPONSE"
    assert "not a number" not in response.text
    assert HttpError(501, "not here").code == "NOT_IMPLEMENTED"


# -- one error tree (issue 10) ---------------------------------------------------------------


def _charter_errors() -> dict[str, type]:
    """Every public exception class any charter module defines, by name."""
    import importlib
    import pkgutil

    import charter

    found: dict[str, type] = {}
    for module in pkgutil.walk_packages(charter.__path__, "charter."):
        for value in vars(importlib.import_module(module.name)).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__.startswith("charter")
                and not value.__name__.startswith("_")
            ):
                found[value.__name__] = value
    return found


def _drawn_tree(text: str) -> dict[str, str | None]:
    """Each class drawn in a box-drawing tree (``├── Name``) -> the class drawn above it."""
    import re

    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in text.splitlines():
        match = re.match(r"^((?:[│ ]   )*)(?:[├└]── )?([A-Z][A-Za-z]+)\b", line)
        if match is None or not (line.startswith("CharterError") or "── " in line):
            continue
        depth = len(match.group(1)) // 4 + (1 if "── " in line else 0)
        del stack[depth:]
        parents[match.group(2)] = stack[-1] if stack else None
        stack.append(match.group(2))
    return parents


def test_the_drawn_tree_names_every_error_class_under_its_real_parent():
    from charter import errors

    classes = _charter_errors()
    drawn = _drawn_tree(errors.__doc__ or "")
    assert drawn["CharterError"] is None
    assert set(classes) == set(drawn), set(classes) ^ set(drawn)
    for name, parent in drawn.items():
        if parent is None:
            continue
        bases = [b for b in classes[name].__mro__[1:] if b.__name__ in classes]
        assert bases[0].__name__ == parent, (name, parent, bases)
    assert {"HttpError", "ClientDisconnected", "DuplicateKey", "StorageFull"} <= set(drawn)
    # docs/errors.md draws the same tree.
    assert _drawn_tree((_ROOT / "docs" / "errors.md").read_text()) == drawn


def test_every_http_error_subclass_takes_the_message_then_keywords():
    import inspect

    from charter.errors import HttpError
    from charter.storage import DuplicateKey, MissingRecord

    subclasses = [c for c in _charter_errors().values() if issubclass(c, HttpError)]
    assert len(subclasses) > 15
    for cls in subclasses:
        if cls is HttpError:
            continue
        parameters = list(inspect.signature(cls).parameters.values())
        positional = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
        keywords = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY}
        assert positional == ["message"], cls
        assert keywords == {"code", "details", "headers"}, cls
        error = cls("why", code="X", details=[{"a": 1}], headers={"h": "v"})
        assert (error.message, error.code, error.headers) == ("why", "X", {"h": "v"})
    assert inspect.signature(HttpError).parameters.keys() >= {"status", "message", "code"}
    assert DuplicateKey.for_key("T", "k").message == "T 'k' already exists"
    assert MissingRecord.for_key("T", 1).status_code == 404
