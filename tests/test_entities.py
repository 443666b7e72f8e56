"""The entity context (``from charter import entities``): tables by name from a route handler,
a model method or an RPC, as the caller, in the request's transaction, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import charter
from charter import (
    App,
    CharterError,
    Condition,
    Field,
    Grant,
    Operation,
    Query,
    Role,
    Service,
    Table,
    entities,
    map_route,
    post,
    relationship,
    route,
    rpc,
)
from charter.testing import TestClient

Serve = Callable[..., TestClient]


class Order(Table):
    id: str = Field(primary_key=True)
    owner: str = Field(default="", indexed=True)
    total: int = Field(default=0, ge=0)

    @classmethod
    def read_filter(cls, user: Any) -> Condition | None:
        return None if user is None else Condition("owner", "equals", user.username)

    @post
    async def duplicate(self) -> dict[str, Any]:  # a model method: runs as the caller
        return await entities.create("Order", {"owner": self.owner, "total": self.total})


class Item(Table):
    id: str = Field(primary_key=True)
    order_id: str = Field(indexed=True)
    sku: str


class Shop(Service):
    @rpc
    async def count(self, owner: str) -> int:
        return len(await entities.find_many("Order", {"owner": owner}))


@route("POST", "/checkout")
async def checkout(payload: dict[str, Any]) -> dict[str, Any]:
    async def place(tx: charter.EntityContext) -> dict[str, Any]:
        order = await tx.create(Order, {"owner": payload["owner"], "total": payload["total"]})
        for sku in payload["skus"]:
            await tx.create("Item", {"order_id": order["id"], "sku": sku})
        return order

    try:
        order = await entities.transaction(place)
    except charter.HttpError as error:
        return {"failed": error.status_code}
    return {"order": order["id"]}


@route("POST", "/write")
async def write(payload: dict[str, Any]) -> dict[str, Any]:
    created = await entities.create("Order", {"id": "o1", "owner": "ann", "total": 3})
    found = await entities.find_one("Order", {"id": "o1"})  # by key: sees this request's write
    updated = await entities.update("Order", {"id": "o1"}, {"total": 9})
    upserted = await entities.upsert("Order", {"id": "o2", "owner": "bob", "total": 1})
    return {
        "created": created["total"],
        "found": found is not None,
        "updated": updated["total"],
        "upserted": upserted["owner"],
    }


@route("POST", "/query")
async def query(payload: dict[str, Any]) -> dict[str, Any]:
    by_owner = await entities.find_one("Order", {"owner": "ann"})
    many = await entities.find_many("Order", Query(sort=charter.Sort("total", descending=True)))
    deleted = await entities.delete("Order", {"owner": "bob"})
    gone = await entities.find_one("Order", {"id": "o2"})
    return {
        "by_owner": by_owner["id"] if by_owner else None,
        "many": [o["id"] for o in many],
        "deleted": deleted["id"],
        "gone": gone,
    }


def test_every_operation(serve: Serve) -> None:
    client = serve(Order, Item, routes=[write, query])
    assert client.post("/write", json={}).json() == {
        "created": 3,
        "found": True,
        "updated": 9,
        "upserted": "bob",
    }
    assert client.get("/Order/o1").json()["total"] == 9  # committed with the request
    assert client.post("/query", json={}).json() == {
        "by_owner": "o1",
        "many": ["o1", "o2"],
        "deleted": "o2",
        "gone": None,
    }
    assert client.get("/Order/o2").status_code == 404


def test_transaction_undoes_only_its_own_writes(serve: Serve) -> None:
    client = serve(Order, Item, routes=[checkout])
    ok = client.post("/checkout", json={"owner": "ann", "total": 5, "skus": ["a", "b"]})
    assert "order" in ok.json()
    assert len(client.get("/Item/").json()) == 2
    bad = client.post("/checkout", json={"owner": "ann", "total": 5, "skus": ["a", 7]})
    assert bad.json() == {"failed": 422}  # the second item is invalid: the block is undone
    assert len(client.get("/Order/").json()) == 1
    assert len(client.get("/Item/").json()) == 2


ROLES = [Role("customer", tables={"Order": Grant(read=True, insert=True, update=True)})]


def _signed_in(serve: Serve, **options: Any) -> TestClient:
    client = serve(Order, Item, auth=True, roles=ROLES, **options)
    for name in ("ann", "bob"):
        client.run(charter.auth.add_user(client.app, name, "password-" + name, role="customer"))
    return client


def test_it_acts_as_the_caller(serve: Serve) -> None:
    client = _signed_in(serve, routes=[checkout], services=[Shop])
    ann = ("ann", "password-ann")
    refused = client.post("/checkout", json={"owner": "ann", "total": 1, "skus": ["a"]}, auth=ann)
    assert refused.json() == {"failed": 403}  # ann may create Orders, not Items
    assert client.post("/rpc/count", json={"owner": "ann"}).status_code == 401  # anonymous
    client.run(Order.put({"id": "x", "owner": "ann", "total": 2}))
    client.run(Order.put({"id": "y", "owner": "bob", "total": 2}))
    # The RPC itself needs a super user (no egroup); its entity calls run as that caller.
    admin_role = charter.Role("boss", super_user=True)
    client.run(charter.auth.add_role(client.app, admin_role))
    client.run(charter.auth.add_user(client.app, "boss", "password-boss", role="boss"))
    boss = ("boss", "password-boss")
    assert client.post("/rpc/count", json={"owner": "ann"}, auth=boss).json() == 1
    copied = client.post("/Order/x/duplicate", json={}, auth=ann)
    assert copied.status_code == 200 and copied.json()["owner"] == "ann"
    outside = client.post("/Order/y/duplicate", json={}, auth=ann)
    assert outside.status_code == 404  # y is outside ann's read rule
    mine = client.get("/Order/", auth=ann).json()
    assert sorted(o["owner"] for o in mine) == ["ann", "ann"]


def test_row_rules_hide_records_from_reads(serve: Serve) -> None:
    @route("GET", "/peek/{id}")
    async def peek(id: str) -> dict[str, Any]:
        mine = await entities.find_one("Order", {"id": id})
        everyone = await entities.privileged.find_one("Order", {"id": id})
        return {"mine": mine is not None, "server": everyone is not None}

    client = _signed_in(serve, routes=[peek])
    client.run(Order.put({"id": "y", "owner": "bob", "total": 2}))
    answer = client.get("/peek/y", auth=("ann", "password-ann")).json()
    assert answer == {"mine": False, "server": True}


def test_outside_a_request_it_is_server_code(database: str) -> None:
    app = App(tables=[Order, Item], database=database)
    with TestClient(app) as client:

        async def script() -> Any:
            await entities.create("Order", {"id": "s1", "owner": "z"})
            return await entities.find_many(Order, {"owner": "z"})

        assert [o["id"] for o in client.run(script())] == ["s1"]
        with pytest.raises(CharterError):
            client.run(entities.create("Nope", {}))


class Secret(Table):
    id: str = Field(primary_key=True)
    level: int = 0

    def allow_read(self, user: Any) -> bool:
        return self.level < 5


def test_allow_read_hides_records_from_the_caller(serve: Serve) -> None:
    @route("GET", "/secrets")
    async def secrets() -> dict[str, Any]:
        one = await entities.find_one("Secret", {"id": "top"})
        many = await entities.find_many("Secret")
        server = await entities.privileged.find_one("Secret", {"id": "top"})
        return {"one": one, "many": [s["id"] for s in many], "server": server is not None}

    client = serve(Secret, routes=[secrets])
    client.run(Secret.put({"id": "top", "level": 9}))
    client.run(Secret.put({"id": "low", "level": 1}))
    assert client.get("/secrets").json() == {"one": None, "many": ["low"], "server": True}


class Brand(Table):
    id: str = Field(primary_key=True)
    name: str = ""
    level: int = 0

    def allow_read(self, user: Any) -> bool:
        return self.level < 5


class Badge(Table):
    id: str = Field(primary_key=True)
    level: int = 0
    brand_id: str | None = Field(default=None, indexed=True)
    brand: Brand | None = relationship(from_="brand_id")

    def allow_read(self, user: Any) -> bool:
        return self.level < 5


def test_allow_read_applies_to_selects_and_related_records(serve: Serve) -> None:
    """A select shapes what is read, not who may read it: ``allow_read`` still leaves out
    denied records, and related ones come back null, as over REST."""
    nested = Query(select=["id", {"name": "brand", "select": ["name", "level"]}])

    @route("GET", "/badges")
    async def badges() -> dict[str, Any]:
        many = await entities.find_many("Badge", Query(select=["id", "level"]))
        one = await entities.find_one("Badge", Query([], select=["id", "level"]))
        return {"many": many, "one": one, "nested": await entities.find_many("Badge", nested)}

    client = serve(Brand, Badge, routes=[badges])
    client.run(Brand.put({"id": "b-top", "name": "TOP", "level": 9}))
    client.run(Badge.put({"id": "top", "level": 9}))
    client.run(Badge.put({"id": "low", "level": 1, "brand_id": "b-top"}))
    assert client.get("/badges").json() == {
        "many": [{"id": "low", "level": 1}],
        "one": {"id": "low", "level": 1},
        "nested": [{"id": "low", "brand": None}],
    }
    rest = client.get("/Badge/?select(id,brand{name,level})").json()
    assert rest == [{"id": "low", "brand": None}]


class Maker(Table):
    id: str = Field(primary_key=True)
    name: str = ""
    cost: float = Field(default=0, returned=False)


class Gadget(Table):
    id: str = Field(primary_key=True)
    cost: float = Field(default=0, returned=False)
    price: float = 0
    maker_id: str | None = Field(default=None, indexed=True)
    maker: Maker | None = relationship(from_="maker_id")


@pytest.mark.parametrize("auth", [False, True])
def test_a_select_cannot_name_a_hidden_attribute(serve: Serve, auth: bool) -> None:
    """``returned=False`` attributes do not exist for a select, in every mode, nested ones
    included, whoever asks (auth off, a super user, a privileged route): 400, as over REST."""
    selects: dict[str, Any] = {
        "value": "cost",
        "array": ("id", "cost"),
        "object": ["id", "cost"],
        "nested": ["id", {"name": "maker", "select": ["name", "cost"]}],
    }
    routes = [
        map_route(
            "GET", f"/{mode}", operations=[Operation("Gadget", "list", where=Query(select=s))]
        )
        for mode, s in selects.items()
    ]
    server = Operation("Gadget", "list", where=Query(select=["cost"]))
    fine = Query(select=["id", "price", {"name": "maker", "select": ["name"]}])
    routes += [
        map_route("GET", "/server", privileged=True, operations=[server]),
        map_route("GET", "/fine", operations=[Operation("Gadget", "list", where=fine)]),
    ]

    @route("GET", "/handler")
    async def handler() -> Any:
        return await entities.find_many("Gadget", Query(select=["id", "cost"]))

    options: dict[str, Any] = {"auth": True, "roles": [Role("boss", super_user=True)]}
    client = serve(Maker, Gadget, routes=[*routes, handler], **(options if auth else {}))
    credentials = None
    if auth:
        client.run(charter.auth.add_user(client.app, "boss", "password-boss", role="boss"))
        credentials = ("boss", "password-boss")
    client.run(Maker.put({"id": "m", "name": "M", "cost": 7.0}))
    client.run(Gadget.put({"id": "g", "cost": 3.0, "price": 9.0, "maker_id": "m"}))
    for path in [*(f"/{mode}" for mode in selects), "/server", "/handler"]:
        answer = client.get(path, auth=credentials)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"]["code"] == "INVALID_QUERY"
        assert "cost" in answer.json()["error"]["message"]
    assert client.get("/fine", auth=credentials).json() == {
        "Gadget": [{"id": "g", "price": 9.0, "maker": {"name": "M"}}]
    }


def test_the_entity_context_keeps_no_app_alive(tmp_path: Any) -> None:
    import gc
    import weakref

    refs = []
    for i in range(3):
        app = App(tables=[Order], database=f"sqlite:///{tmp_path}/{i}.db")
        refs.append(weakref.ref(app.database))
        del app
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]


class Stamped(Table):
    """A table whose own ``post`` is its data path: every create goes through it."""

    id: str = Field(primary_key=True)
    note: str = ""

    async def post(self, data: Any) -> Any:  # type: ignore[override]
        return await super().post({**data, "note": "via post"})


def test_create_goes_through_the_tables_own_post(database: str) -> None:
    stamp = map_route(
        "POST", "/stamp", operations=[Operation("Stamped", "create", data={"id": "r"})]
    )
    app = App(tables=[Stamped], routes=[stamp], database=database)
    with TestClient(app) as client:
        assert client.run(entities.create("Stamped", {"id": "s"}))["note"] == "via post"
        response = client.post("/stamp", json={})
        assert response.status_code == 201, response.text
        assert response.json()["Stamped"]["note"] == "via post"
