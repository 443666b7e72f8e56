"""RPC services (SPEC section 5): ``POST /rpc/{name}`` with positional or named arguments,
validation, egroup and perm recorded on the route, in ``charter routes`` and in OpenAPI."""

import asyncio
import dataclasses
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cbor2
import msgspec
import pytest

from charter import (
    App,
    CharterError,
    Field,
    HttpResp,
    HttpResult,
    NotFound,
    RequestContext,
    Service,
    Table,
    perms,
    rpc,
)
from charter.testing import TestClient


class Product(Table):
    id: str = Field(primary_key=True)
    name: str
    stock: int = 0


@dataclasses.dataclass
class Line:
    product_id: str
    qty: int


class Orders(Service):
    @rpc(egroup="api-v1", perm=perms.RWX)
    async def place_order(self, product_id: str, qty: int = 1) -> dict[str, Any]:
        product = await Product.get(product_id)
        if product is None:
            raise NotFound(f"no product {product_id}")
        await Product.patch(product_id, {"stock": product.stock - qty})
        return {"product_id": product_id, "left": product.stock - qty}

    @rpc(egroup="api-v1", perm=perms.R__)
    def total(self, lines: list[Line]) -> int:  # a sync rpc: runs in a worker thread
        return sum(line.qty for line in lines)

    @rpc
    def ping(self) -> str:
        return "pong"

    @rpc(name="add")
    def plus(self, a: int, *, b: int = 2) -> int:
        return a + b

    @rpc
    async def whoami(self, context: RequestContext, tag: str) -> list[Any]:
        return [context.endpoint, context.egroup, tag, self.app is not None]

    @rpc(egroup="admin", perm=perms._W_)
    async def create(self, name: str) -> HttpResult[dict[str, str]]:
        return HttpResp.created({"name": name}, location=f"/Product/{name}")

    @rpc
    def broken(self) -> int:
        return "not a number"  # type: ignore[return-value]

    @rpc
    def nap(self) -> str:
        time.sleep(0.5)
        return "rested"

    @rpc
    async def quick(self) -> str:
        return "quick"

    async def helper(self) -> None:  # not an rpc: not served
        pass


@pytest.fixture
def client(serve):
    client = serve(Product, services=[Orders])
    assert client.put("/Product/p1", json={"name": "Air", "stock": 10}).status_code == 204
    return client


def test_positional_arguments(client):
    response = client.post("/rpc/place_order", json=["p1", 3])
    assert response.status_code == 200
    assert response.json() == {"product_id": "p1", "left": 7}
    assert client.get("/Product/p1").json()["stock"] == 7


def test_named_arguments_and_defaults(client):
    response = client.post("/rpc/place_order", json={"product_id": "p1"})
    assert response.status_code == 200
    assert response.json() == {"product_id": "p1", "left": 9}


def test_errors_raised_by_an_rpc_keep_their_status(client):
    response = client.post("/rpc/place_order", json=["nope"])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_too_many_positional_arguments_is_422(client):
    response = client.post("/rpc/place_order", json=["p1", 1, "extra"])
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["loc"] == ["body", 2]
    assert detail["code"] == "EXTRANEOUS_PROPERTY"


def test_missing_arguments_is_422(client):
    for body in ([], {}, {"qty": 1}):
        response = client.post("/rpc/place_order", json=body)
        assert response.status_code == 422, body
        (detail,) = response.json()["error"]["details"]
        assert detail["loc"] == ["body", "product_id"]
        assert detail["code"] == "MISSING_PROPERTY"


def test_unknown_names_are_422(client):
    response = client.post("/rpc/place_order", json={"product_id": "p1", "colour": "red"})
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["loc"] == ["body", "colour"]
    assert detail["code"] == "EXTRANEOUS_PROPERTY"


def test_arguments_to_an_rpc_without_parameters_are_422(client):
    assert client.post("/rpc/ping").json() == "pong"
    assert client.post("/rpc/ping", json=[]).json() == "pong"
    assert client.post("/rpc/ping", json={}).json() == "pong"
    positional = client.post("/rpc/ping", json=[1])
    assert positional.status_code == 422
    assert positional.json()["error"]["details"][0]["loc"] == ["body", 0]
    named = client.post("/rpc/ping", json={"a": 1})
    assert named.status_code == 422
    assert named.json()["error"]["details"][0]["loc"] == ["body", "a"]


def test_wrong_types_are_422_without_coercion(client):
    response = client.post("/rpc/place_order", json=["p1", "2"])
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["loc"] == ["body", "qty"]
    assert (detail["expected"], detail["got"]) == ("integer", "string")
    nested = client.post("/rpc/total", json=[[{"product_id": "p1", "qty": "x"}]])
    assert nested.status_code == 422
    assert nested.json()["error"]["details"][0]["loc"] == ["body", "lines", 0, "qty"]


def test_a_body_that_is_neither_array_nor_object_is_422(client):
    response = client.post("/rpc/place_order", json="p1")
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body"]


def test_sync_rpc_and_structured_arguments(client):
    lines = [{"product_id": "a", "qty": 2}, {"product_id": "b", "qty": 3}]
    assert client.post("/rpc/total", json=[lines]).json() == 5
    assert client.post("/rpc/total", json={"lines": lines}).json() == 5


def test_keyword_only_parameters_are_named_only(client):
    assert client.post("/rpc/add", json=[1]).json() == 3
    assert client.post("/rpc/add", json={"a": 1, "b": 5}).json() == 6
    response = client.post("/rpc/add", json=[1, 5])
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body", 1]


def test_the_rpc_name_overrides_the_method_name(client):
    assert client.post("/rpc/add", json=[1]).json() == 3  # ``plus`` is served as ``add``
    missing = client.post("/rpc/plus", json=[1])
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"


def test_only_rpc_methods_are_served(client):
    assert client.post("/rpc/helper").status_code == 404
    assert client.post("/rpc/rpc_methods").status_code == 404


def test_rpc_is_post_only(client):
    response = client.get("/rpc/ping")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_context_is_injected_and_the_service_knows_its_app(client):
    response = client.post("/rpc/whoami", json=["t"])
    assert response.status_code == 200
    assert response.json() == ["whoami", None, "t", True]


def test_an_rpc_controls_status_and_headers_with_http_result(client):
    response = client.post("/rpc/create", json=["n"])
    assert response.status_code == 201
    assert response.headers["location"] == "/Product/n"
    assert response.json() == {"name": "n"}


def test_an_invalid_rpc_result_is_500_and_logged(client, caplog):
    with caplog.at_level(logging.ERROR):
        response = client.post("/rpc/broken")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INVALID_RESPONSE"
    assert "not a number" not in response.text
    assert any("broken" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("media_type", "encode", "decode"),
    [
        ("application/msgpack", msgspec.msgpack.encode, msgspec.msgpack.decode),
        ("application/cbor", cbor2.dumps, cbor2.loads),
    ],
)
def test_binary_bodies(client, media_type, encode, decode):
    headers = {"content-type": media_type, "accept": media_type}
    response = client.post("/rpc/add", content=encode([1]), headers=headers)
    assert response.status_code == 200
    assert decode(response.content) == 3


async def test_a_sync_rpc_does_not_block_the_event_loop(database):
    app = App(services=[Orders], tables=[Product], database=database)
    async with TestClient(app) as client:
        slow = asyncio.ensure_future(client.post("/rpc/nap"))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        assert (await client.post("/rpc/quick")).json() == "quick"
        assert time.perf_counter() - started < 0.3
        assert not slow.done()
        assert (await slow).json() == "rested"


def test_a_service_instance_may_be_given(serve):
    class Counter(Service):
        def __init__(self, start: int) -> None:
            self.n = start

        @rpc
        def next(self) -> int:
            self.n += 1
            return self.n

    client = serve(services=[Counter(10)])
    assert client.post("/rpc/next").json() == 11
    assert client.post("/rpc/next").json() == 12


def test_services_must_be_services(database):
    class NotAService:
        @rpc
        def x(self) -> int:
            return 1

    with pytest.raises(CharterError, match="Service"):
        App(services=[NotAService], database=database)


# -- egroup and perm ---------------------------------------------------------------------------


def _rpc_routes(app):
    return {r.path: r for r in app.router.routes if r.kind == "rpc"}


def test_egroup_and_perm_are_recorded_on_the_route(client):
    routes = _rpc_routes(client.app)
    assert routes["/rpc/place_order"].method == "POST"
    assert routes["/rpc/place_order"].meta["egroup"] == "api-v1"
    assert routes["/rpc/place_order"].meta["perm"] == perms.RWX == 7
    assert routes["/rpc/total"].meta["perm"] == perms.R__ == 4
    assert routes["/rpc/create"].meta["egroup"] == "admin"
    assert routes["/rpc/create"].meta["perm"] == perms._W_ == 2
    assert routes["/rpc/ping"].meta["egroup"] is None
    assert "/rpc/add" in routes and "/rpc/plus" not in routes


def test_egroup_and_perm_are_in_openapi(client):
    paths = client.get("/openapi.json").json()["paths"]
    operation = paths["/rpc/place_order"]["post"]
    assert operation["x-egroup"] == "api-v1"
    assert operation["x-perm"] == 7
    assert paths["/rpc/create"]["post"]["x-egroup"] == "admin"
    assert paths["/rpc/create"]["post"]["x-perm"] == 2
    assert "/rpc/add" in paths


def test_charter_routes_shows_egroup_and_perm(tmp_path: Path):
    app_file = tmp_path / "orders.py"
    app_file.write_text(
        f"""
from charter import App, Service, perms, rpc

class Orders(Service):
    @rpc(egroup="api-v1", perm=perms.RW_)
    async def place_order(self, product_id: str) -> int:
        return 1

app = App(services=[Orders], database="sqlite:///{tmp_path}/cli.db")
"""
    )
    out = subprocess.run(
        [sys.executable, "-m", "charter.cli", "routes", f"{app_file}:app"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    line = next(line for line in out.splitlines() if "/rpc/place_order" in line)
    assert "POST" in line
    assert "egroup=api-v1" in line
    assert "perm=6 (RW_)" in line


def test_two_services_with_one_rpc_name_is_an_error(database):
    class Billing(Service):
        @rpc
        async def place_order(self) -> None:
            pass

    with pytest.raises(CharterError, match=r"place_order.*Orders.*Billing"):
        App(services=[Orders, Billing], database=database)


def test_a_subclass_overrides_an_inherited_rpc(serve):
    class Base(Service):
        @rpc
        def hello(self) -> str:
            return "base"

        @rpc
        def shared(self) -> str:
            return "shared"

    class Child(Base):
        @rpc
        def hello(self) -> str:
            return "child"

    client = serve(services=[Child])
    assert client.post("/rpc/hello").json() == "child"
    assert client.post("/rpc/shared").json() == "shared"


# -- permission bits -------------------------------------------------------------------------------


def test_perms_are_an_int_flag_with_kontract_values():
    assert (perms.R, perms.W, perms.X) == (4, 2, 1)
    assert isinstance(perms.RW, perms.Perm) and perms.RW == perms.R | perms.W == 6
    assert (perms.RX, perms.WX, perms.RWX, perms.NONE) == (5, 3, 7, 0)
    kontract = (perms.R__, perms._W_, perms.__X, perms.RW_, perms.R_X, perms._WX, perms.RWX)
    assert kontract == (4, 2, 1, 6, 5, 3, 7)
    assert perms.label(perms.RX) == "R_X" and perms.label(0) == "___"
    assert perms.allows(perms.RWX, perms.RW) and not perms.allows(perms.RX, perms.W)


def test_every_bit_can_be_named_inside_a_class_body():
    class Jobs(Service):
        @rpc(egroup="jobs", perm=perms.X)
        async def run(self) -> int:
            return 1

        @rpc(egroup="jobs", perm=perms.R | perms.X)
        async def status(self) -> int:
            return 2

    assert [s.perm for s in Jobs.rpc_methods()] == [perms.X, perms.RX]


def test_the_kontract_spelling_of_x_is_mangled_inside_a_class_body():
    # Why perms.X exists: Python turns ``perms.__X`` in a class body into ``perms._Jobs__X``.
    with pytest.raises(AttributeError, match="_Jobs__X"):

        class Jobs(Service):
            @rpc(perm=perms.__X)
            async def run(self) -> int:
                return 1


def test_the_default_perm_is_execute():
    class Jobs(Service):
        @rpc
        async def run(self) -> int:
            return 1

    (spec,) = Jobs.rpc_methods()
    assert spec.perm == perms.X == 1 and spec.egroup is None


@pytest.mark.parametrize("perm", [8, -1, "RW_", True, 2.0])
def test_a_perm_outside_the_three_bits_is_an_error(perm):
    with pytest.raises(CharterError, match="permission bits"):
        rpc(perm=perm)


def test_an_empty_egroup_is_an_error():
    with pytest.raises(CharterError, match="egroup"):
        rpc(egroup="")
