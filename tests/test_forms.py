"""Form bodies (``application/x-www-form-urlencoded``, ``multipart/form-data``) and JSON sent with
a form's content type (curl's ``-d``), for table writes, model methods, RPC and routes (issue 9,
part 3). Form values are text, typed by the declared types as query strings are."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from charter import Contract, Field, Service, Table, post, route, rpc
from charter.limits import MAX_FORM_FIELDS

FORM = {"content-type": "application/x-www-form-urlencoded"}


class Item(Table):
    id: str = Field(primary_key=True)
    name: str = ""
    price: float = 0
    stock: int = 0
    active: bool = True
    tags: list[str] = []
    sizes: list[int] = []
    note: str | None = None

    @post
    async def restock(self, amount: int, reasons: list[str] | None = None) -> list[Any]:
        return [self.stock + amount, reasons]


class Shop(Service):
    @rpc
    def add(self, a: int, b: float = 0.5, flags: list[bool] | None = None) -> list[Any]:
        return [a + b, flags]


class Order(msgspec.Struct):
    sku: str
    qty: int


@route("POST", "/orders", contract=Contract(payload=Order))
async def order(payload: Order) -> dict[str, Any]:
    return {"sku": payload.sku, "qty": payload.qty}


@pytest.fixture
def client(serve):
    return serve(Item, services=[Shop], routes=[order])


def stored(client: Any, key: str) -> dict[str, Any]:
    response = client.get(f"/Item/{key}")
    assert response.status_code == 200, response.text
    return dict(response.json())


# -- tables --------------------------------------------------------------------------------------


def test_a_urlencoded_post_is_typed_by_the_fields(client):
    body = "id=a&name=Air+Max&price=9.5&stock=3&active=false&tags=run&tags=red&sizes[]=42"
    response = client.post("/Item/", content=body, headers=FORM)
    assert response.status_code == 201, response.text
    assert stored(client, "a") == {
        "id": "a", "name": "Air Max", "price": 9.5, "stock": 3, "active": False,
        "tags": ["run", "red"], "sizes": [42], "note": None,
    }  # fmt: skip


def test_a_field_declared_a_list_is_a_list_when_sent_once(client):
    response = client.put("/Item/b", data={"tags": "solo", "sizes": "7"})
    assert response.status_code == 204, response.text
    assert stored(client, "b")["tags"] == ["solo"]
    assert stored(client, "b")["sizes"] == [7]


def test_a_multipart_put_and_a_urlencoded_patch(client):
    response = client.put(
        "/Item/c",
        data={"name": "Cap", "stock": "10"},
        files={"note": ("note.txt", b"handle with care", "text/plain")},
    )
    assert response.status_code == 204, response.text
    assert response.request.headers["content-type"].startswith("multipart/form-data")
    assert client.patch("/Item/c", content="price=20&stock=0", headers=FORM).status_code == 204
    assert stored(client, "c") == {
        "id": "c", "name": "Cap", "price": 20.0, "stock": 0, "active": True, "tags": [],
        "sizes": [], "note": "handle with care",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [("stock=many", "stock"), ("price=cheap", "price"), ("active=maybe", "active"),
     ("sizes=1&sizes=x", "sizes"), ("stock=1&stock=2", "stock"), ("colour=red", "colour")],
)  # fmt: skip
def test_a_form_value_that_does_not_fit_is_a_422_naming_it(client, body, field):
    response = client.put("/Item/d", content=body, headers=FORM)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_PROPERTIES"
    assert any(field in detail["loc"] for detail in error["details"]), error
    assert client.get("/Item/d").status_code == 404  # nothing written


def test_json_sent_as_a_form_is_json(client):
    """``curl -d '{"name": "x"}'`` labels the JSON application/x-www-form-urlencoded."""
    body = b'  {"name": "Sent by curl", "stock": 2}'
    response = client.put("/Item/e", content=body, headers=FORM)
    assert response.status_code == 204, response.text
    assert stored(client, "e")["name"] == "Sent by curl"
    # JSON stays strict: no coercion of "2" to 2, whatever the content type says.
    response = client.put("/Item/e", content=b'{"stock": "2"}', headers=FORM)
    assert response.status_code == 422
    # And without any content type at all.
    response = client.put("/Item/f", content=b'{"name": "bare"}')
    assert response.status_code == 204, response.text
    assert stored(client, "f")["name"] == "bare"


# -- methods, RPC, routes ------------------------------------------------------------------------


def test_a_model_method_takes_a_form(client):
    client.put("/Item/g", json={"stock": 5})
    response = client.post("/Item/g/restock", data={"amount": "3", "reasons": ["late", "lost"]})
    assert response.status_code == 200, response.text
    assert response.json() == [8, ["late", "lost"]]
    response = client.post("/Item/g/restock", data={"amount": "three"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body", "amount"]


def test_rpc_takes_a_form_and_multipart(client):
    response = client.post("/rpc/add", content="a=2&b=0.25&flags=true&flags=false", headers=FORM)
    assert response.status_code == 200, response.text
    assert response.json() == [2.25, [True, False]]
    response = client.post("/rpc/add", data={"a": "1"}, files={"b": ("b", b"2", "text/plain")})
    assert response.status_code == 200, response.text
    assert response.json() == [3, None]
    assert client.post("/rpc/add", content="b=1", headers=FORM).status_code == 422  # a missing


def test_a_route_payload_takes_a_form(client):
    response = client.post("/orders", content="sku=k1&qty=4", headers=FORM)
    assert response.status_code == 200, response.text
    assert response.json() == {"sku": "k1", "qty": 4}
    response = client.post("/orders", content="sku=k1&qty=four", headers=FORM)
    assert response.status_code == 422


# -- malformed forms and limits ------------------------------------------------------------------


def _malformed(response: Any) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "MALFORMED_INPUT"
    return str(error["message"])


def test_too_many_form_fields_is_a_400(client):
    body = "&".join(f"k{i}=1" for i in range(MAX_FORM_FIELDS + 1))
    assert "at most" in _malformed(client.put("/Item/h", content=body, headers=FORM))
    parts = "".join(
        f'--x\r\nContent-Disposition: form-data; name="k{i}"\r\n\r\n1\r\n'
        for i in range(MAX_FORM_FIELDS + 1)
    )
    multipart = {"content-type": "multipart/form-data; boundary=x"}
    response = client.put("/Item/h", content=parts + "--x--\r\n", headers=multipart)
    assert "at most" in _malformed(response)
    assert client.get("/Item/h").status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"name=%FF", "application/x-www-form-urlencoded"),
        (b"name=\xff", "application/x-www-form-urlencoded"),
        (b'--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nA\r\n--x--\r\n',
         "multipart/form-data"),  # no boundary
        (b'--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nA',
         "multipart/form-data; boundary=x"),  # cut short
        (b"--x\r\nContent-Disposition: attachment\r\n\r\nA\r\n--x--\r\n",
         "multipart/form-data; boundary=x"),  # a part without a name
        (b'--x\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xff\r\n--x--\r\n',
         "multipart/form-data; boundary=x"),  # not UTF-8
        (b"garbage", "multipart/form-data; boundary=x"),
    ],
)  # fmt: skip
def test_a_malformed_form_is_a_400_and_writes_nothing(client, body, content_type):
    _malformed(client.put("/Item/i", content=body, headers={"content-type": content_type}))
    assert client.get("/Item/i").status_code == 404


def test_the_body_size_limit_holds_for_forms(serve):
    client = serve(Item, max_body_size=1000)
    response = client.put("/Item/j", content="name=" + "x" * 2000, headers=FORM)
    assert response.status_code == 413
    assert client.get("/Item/j").status_code == 404
