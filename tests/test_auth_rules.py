"""Table rights, attribute rules and row rules (SPEC section 6; issue 11 points 3-5), through
the public API with real sign-in, on SQLite and PostgreSQL. The exhaustive cross-product is
tests/test_auth_matrix.py; this file pins each rule's behaviour one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

import charter
from charter import App, Condition, Field, Grant, Query, Role, Table, User
from charter.testing import TestClient
from tests.auth_rules_shop import (
    PASSWORD,
    Product,
    Shopfront,
    cheap_passwords,
    hidden,
    open_shop,
)


@pytest.fixture
def fast_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_passwords(monkeypatch)


@pytest.fixture
def shop(database: str, fast_passwords: None) -> Iterator[Shopfront]:
    with open_shop(database) as front:
        yield front


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(r["id"] for r in response.json())


# -- table rights ----------------------------------------------------------------------------


def test_not_signed_in_is_401_with_a_challenge_signed_in_is_403(shop: Shopfront) -> None:
    c = shop.client
    anonymous = c.get("/Product/")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
    nobody = c.get("/Product/", auth=shop.auth("nia"))
    assert nobody.status_code == 403 and nobody.json()["error"]["code"] == "FORBIDDEN"
    assert "www-authenticate" not in nobody.headers
    # 401/403 come before the body is read: an invalid body does not answer 422
    assert c.post("/Product/", content=b"{not json").status_code == 401
    assert c.post("/Product/", content=b"{", auth=shop.auth("vic")).status_code == 403


def test_each_verb_needs_its_right(shop: Shopfront) -> None:
    c, vic, max_ = shop.client, shop.auth("vic"), shop.auth("max")
    assert c.get("/Product/pub1", auth=vic).status_code == 200
    assert c.head("/Product/", auth=vic).status_code == 200
    assert c.get("/Product", auth=vic).status_code == 200  # describe
    for method, path, body in [
        ("POST", "/Product/", {"name": "x"}),
        ("PUT", "/Product/new1", {"name": "x"}),
        ("PATCH", "/Product/pub1", {"name": "x"}),
        ("DELETE", "/Product/pub1", None),
        ("DELETE", "/Product/?name=x", None),
    ]:
        refused = c.request(method, path, json=body, auth=vic)
        assert refused.status_code == 403, (method, path, refused.text)
    # the clerk inserts and updates, but does not delete
    ann = shop.auth("ann")
    assert c.delete("/Product/ann1", auth=ann).status_code == 403
    assert c.delete("/Product/ann1", auth=max_).status_code == 404  # max may, ann1 is not his
    assert shop.get_as_boss("/Product/ann1").status_code == 200


def test_super_users_and_auth_off_see_everything(shop: Shopfront, database: str) -> None:
    everything = ids(shop.client.get("/Product/", auth=shop.auth("boss")))
    assert everything == ["ann1", "ann2", "bob1", "pub1"]
    row = shop.get_as_boss("/Product/ann1").json()
    assert row["cost"] == hidden("Product", "cost", "ann1")
    assert "secret" not in row  # returned=False: no client reads it


def test_auth_off_every_request_is_a_super_user(database: str) -> None:
    class Memo(Table):
        id: str = Field(primary_key=True)
        owner: str = ""

        @classmethod
        def read_filter(cls, user: User | None) -> Any:
            return Condition("owner", "equals", "nobody at all")

    with TestClient(App(tables=[Memo], database=database)) as c:
        assert c.put("/Memo/m1", json={"owner": "x"}).status_code == 204
        assert ids(c.get("/Memo/")) == ["m1"]
        assert c.get("/Memo/m1").status_code == 200


# -- attribute rules -------------------------------------------------------------------------


def test_hidden_attributes_are_in_no_response_format(shop: Shopfront) -> None:
    c, ann = shop.client, shop.auth("ann")
    sentinel = hidden("Product", "cost", "ann1").encode()
    for accept in ("application/json", "text/csv", "application/msgpack", "application/cbor"):
        for path in ("/Product/", "/Product/ann1", "/Product/?select(id,name)&limit(5)"):
            response = c.get(path, auth=ann, headers={"accept": accept})
            assert response.status_code == 200, (path, accept, response.text)
            assert sentinel not in response.content, (path, accept)
    record = c.get("/Product/ann1", auth=ann).json()
    assert set(record) == {"id", "name", "price", "owner", "brand_id"}
    assert c.get("/Product/.csv", auth=ann).text.splitlines()[0] == "id,name,price,owner,brand_id"
    decoded = msgspec.msgpack.decode(
        c.get("/Product/", auth=ann, headers={"accept": "application/msgpack"}).content
    )
    assert all("cost" not in r for r in decoded)
    # a manager's grant lists no attributes: it reads them all (less returned=False ones)
    assert c.get("/Product/ann1", auth=shop.auth("max")).status_code == 404  # not his row
    assert c.get("/Product/pub1", auth=shop.auth("max")).json()["cost"] == hidden(
        "Product", "cost", "pub1"
    )


def test_a_hidden_attribute_answers_as_an_unknown_one(shop: Shopfront) -> None:
    c, ann = shop.client, shop.auth("ann")

    def same(hidden_query: str, unknown_query: str, name: str = "cost") -> None:
        a = c.get("/Product/?" + hidden_query, auth=ann)
        b = c.get("/Product/?" + unknown_query, auth=ann)
        assert a.status_code == b.status_code == 400, (a.text, b.text)
        assert a.json()["error"]["code"] == "INVALID_QUERY"
        assert a.json()["error"]["message"] == b.json()["error"]["message"].replace("nosuch", name)

    same("cost=x", "nosuch=x")
    same("cost=sw=SENT", "nosuch=sw=SENT")
    same("[name=x|cost=y]", "[name=x|nosuch=y]")
    same("sort(cost)", "sort(nosuch)")
    same("select(id,cost)", "select(id,nosuch)")
    same("brand.notes=x", "brand.nosuch=x", "notes")
    same("select(brand{notes})", "select(brand{nosuch})", "notes")
    same("secret=x", "nosuch=x", "secret")  # returned=False, for every role
    # a property path: .cost and .nosuch are both part of the key
    a, b = c.get("/Product/ann1.cost", auth=ann), c.get("/Product/ann1.nosuch", auth=ann)
    assert a.status_code == b.status_code == 404
    assert a.json()["error"]["message"] == b.json()["error"]["message"].replace("nosuch", "cost")
    # what it may read works
    assert c.get("/Product/ann1.price", auth=ann).json() == 10.0
    assert ids(c.get("/Product/?price=10&sort(-price)", auth=ann)) == ["ann1", "ann2", "pub1"]


def test_a_relationship_to_an_unreadable_table_is_hidden(shop: Shopfront) -> None:
    c, vic = shop.client, shop.auth("vic")  # vic reads Product, not Brand
    a = c.get("/Product/?brand.name=x", auth=vic)
    b = c.get("/Product/?nosuch.name=x", auth=vic)
    assert a.status_code == b.status_code == 400
    assert a.json()["error"]["message"] == b.json()["error"]["message"].replace("nosuch", "brand")
    assert c.get("/Product/pub1.brand", auth=vic).status_code == 404
    assert c.get("/Product/?select(id,brand)", auth=vic).status_code == 400
    assert "brand" not in c.get("/Product", auth=vic).json()["x-relationships"]


def test_writes_naming_unwritable_attributes_are_403_and_change_nothing(
    shop: Shopfront,
) -> None:
    c, ann = shop.client, shop.auth("ann")
    before = shop.get_as_boss("/Product/ann1").json()
    for method, body in [
        ("PATCH", {"name": "n", "price": 1.0}),
        ("PATCH", {"cost": "mine"}),
        ("PUT", {"name": "n", "cost": "mine", "owner": shop.ids["ann"]}),
    ]:
        refused = c.request(method, "/Product/ann1", json=body, auth=ann)
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert error["code"] == "FORBIDDEN"
        named = sorted(k for k in body if k in ("price", "cost"))
        assert [d["loc"][-1] for d in error["details"]] == named
        assert all(n in error["message"] for n in named)
    refused = c.post("/Product/", json={"name": "n", "price": 3.0}, auth=ann)
    assert refused.status_code == 403 and "price" in refused.json()["error"]["message"]
    assert shop.get_as_boss("/Product/ann1").json() == before
    # what it may write goes through; a PUT keeps what it may not write
    body = {"name": "renamed", "owner": shop.ids["ann"], "brand_id": "annco"}
    assert c.put("/Product/ann1", json=body, auth=ann).status_code == 204
    after = shop.get_as_boss("/Product/ann1").json()
    assert after == {**before, "name": "renamed"}


# -- row rules -------------------------------------------------------------------------------


def test_row_rules_filter_every_read(shop: Shopfront) -> None:
    c = shop.client
    ann, bob, vic = shop.auth("ann"), shop.auth("bob"), shop.auth("vic")
    assert ids(c.get("/Product/", auth=ann)) == ["ann1", "ann2", "pub1"]
    assert ids(c.get("/Product/", auth=bob)) == ["bob1", "pub1"]
    assert ids(c.get("/Product/", auth=vic)) == ["pub1"]
    # the same query string, another user: the plan cache keeps them apart
    assert ids(c.get("/Product/?price=10", auth=ann)) == ["ann1", "ann2", "pub1"]
    assert ids(c.get("/Product/?price=10", auth=bob)) == ["bob1", "pub1"]
    # an OR query is ANDed with the rule as a whole
    assert ids(c.get("/Product/?[id=bob1|id=ann1]", auth=ann)) == ["ann1"]
    # a record outside the rule is 404, exactly as a missing one
    hidden_row, missing = c.get("/Product/bob1", auth=ann), c.get("/Product/zzzz", auth=ann)
    assert hidden_row.status_code == missing.status_code == 404
    assert hidden_row.json()["error"]["message"] == missing.json()["error"]["message"].replace(
        "zzzz", "bob1"
    )
    assert c.get("/Product/bob1.name", auth=ann).status_code == 404
    assert c.head("/Product/bob1", auth=ann).status_code == 404
    etag = shop.get_as_boss("/Product/bob1").headers["etag"]
    assert c.get("/Product/bob1", auth=ann, headers={"if-none-match": etag}).status_code == 404
    # counts count what the rule lets through
    counted = c.get("/Product/?limit(1)", auth=ann, headers={"prefer": "count=exact"})
    assert counted.headers["content-range"] == "items 0-0/3"
    head = c.head("/Product/", auth=bob, headers={"prefer": "count=exact"})
    assert head.headers["content-range"] == "items */2" or head.headers["content-range"].endswith(
        "/2"
    )


def test_row_rules_apply_to_joins_nested_selects_and_related_sorts(shop: Shopfront) -> None:
    c, ann, bob = shop.client, shop.auth("ann"), shop.auth("bob")
    # ann1 belongs to annco (ann's brand): bob sees neither
    assert ids(c.get("/Product/?brand.name=brand annco", auth=ann)) == ["ann1"]
    assert ids(c.get("/Brand/?products.name=sw=product", auth=bob)) == ["acme", "bobco"]
    # bob cannot find ann's products through a brand he may read (acme holds ann2)
    found = c.get("/Brand/?select(id,products{id})&sort(id)", auth=bob).json()
    assert found == [{"id": "acme", "products": [{"id": "pub1"}]},
                     {"id": "bobco", "products": [{"id": "bob1"}]}]  # fmt: skip
    # to-one: a related record outside the rule reads as null
    c.put("/Product/pub1", json={"name": "p", "brand_id": "annco"}, auth=shop.auth("boss"))
    (row,) = c.get("/Product/?id=pub1&select(id,brand)", auth=bob).json()
    assert row == {"id": "pub1", "brand": None}
    assert c.get("/Product/pub1.brand", auth=bob).json() is None
    (row,) = c.get("/Product/?id=pub1&select(id,brand)", auth=ann).json()
    assert row["brand"] == {"id": "annco", "name": "brand annco", "owner": shop.ids["ann"]}
    assert ids(c.get("/Product/?brand.name=brand annco", auth=bob)) == []
    # a sort through a relationship does not order by what the rule hides: pub1's brand
    # (annco) sorts as null for bob, before bob1's "brand acme" (not after it, by its name)
    bob1 = {"name": "b", "owner": shop.ids["bob"], "brand_id": "acme"}
    c.put("/Product/bob1", json=bob1, auth=shop.auth("boss"))
    by_brand = c.get("/Product/?sort(brand.name,id)&select(id)", auth=bob).json()
    assert by_brand == ["pub1", "bob1"]
    by_brand = c.get("/Product/?sort(brand.name,id)&select(id)", auth=shop.auth("boss")).json()
    assert by_brand == ["ann2", "bob1", "ann1", "pub1"]  # acme, then annco


def test_row_rules_apply_to_writes(shop: Shopfront) -> None:
    c, ann, boss = shop.client, shop.auth("ann"), shop.auth("boss")
    # outside the write rule: 404 for PATCH, PUT, DELETE; public rows are read-only
    for method in ("PATCH", "PUT"):
        for key in ("bob1", "pub1"):
            body = {"name": "x", "owner": shop.ids["ann"]}
            response = c.request(method, f"/Product/{key}", json=body, auth=ann)
            assert response.status_code == 404, (method, key, response.text)
    max_ = shop.auth("max")
    assert c.delete("/Product/bob1", auth=max_).status_code == 404
    assert c.delete("/Product/?price=10", auth=max_).json() == 0  # max owns none
    assert len(c.get("/Product/", auth=boss).json()) == 4
    # an insert (or update) that would leave the row outside the write rule: 403
    other = {"name": "gift", "owner": shop.ids["bob"]}
    assert c.post("/Product/", json=other, auth=ann).status_code == 403
    assert c.put("/Product/gift", json=other, auth=ann).status_code == 403
    moved = c.patch("/Product/ann1", json={"owner": shop.ids["bob"]}, auth=ann)
    assert moved.status_code == 403
    assert shop.get_as_boss("/Product/ann1").json()["owner"] == shop.ids["ann"]
    assert shop.get_as_boss("/Product/gift").status_code == 404
    # inside: works
    mine = c.post("/Product/", json={"name": "mine", "owner": shop.ids["ann"]}, auth=ann)
    assert mine.status_code == 201, mine.text
    assert c.patch("/Product/ann1", json={"name": "again"}, auth=ann).status_code == 204
    # a manager owning a row deletes it, by id and by query
    c.put("/Product/m1", json={"name": "m", "owner": shop.ids["max"]}, auth=boss)
    c.put("/Product/m2", json={"name": "m", "owner": shop.ids["max"]}, auth=boss)
    assert c.delete("/Product/m1", auth=max_).status_code == 204
    assert c.delete("/Product/?name=m", auth=max_).json() == 1
    assert ids(c.get("/Product/?name=m", auth=boss)) == []


def test_a_row_rule_rides_the_index_on_100k_rows(database: str, fast_passwords: None) -> None:
    class Ledger(Table):
        id: int = Field(primary_key=True)
        owner: str = Field(indexed=True)
        amount: int = 0

        @classmethod
        def read_filter(cls, user: User | None) -> Any:
            return Condition("owner", "equals", user.id if user else "")

    roles = [Role("clerk", tables={"Ledger": Grant(read=True)})]
    app = App(tables=[Ledger], database=database, auth=True, roles=roles)
    with TestClient(app) as c:
        user = c.run(charter.auth.add_user(app, "ann", PASSWORD, role="clerk"))

        async def fill() -> None:
            owners = [user.id, *[f"u{i}" for i in range(99)]]  # ann owns 1%
            for start in range(0, 100_000, 10_000):
                async with app.transaction():
                    for i in range(start, start + 10_000):
                        await Ledger.put({"id": i, "owner": owners[i % 100], "amount": i})

        c.run(fill())
        ann = ("ann", PASSWORD)
        page = c.get("/Ledger/?limit(10)&sort(id)", auth=ann).json()
        assert [r["id"] for r in page] == list(range(0, 1000, 100))
        counted = c.get("/Ledger/?limit(10)", auth=ann, headers={"prefer": "count=exact"})
        assert counted.headers["content-range"] == "items 0-9/1000"
        plan = c.get("/Ledger/?amount=gt=5&explain(true)", auth=ann).json()
        assert plan["conditions"][0] == {"rule": "Ledger", "access": "index"}
        assert "sql" not in plan and "params" not in plan  # the rule's value is not shown
        # the backend's own plan of the scoped query uses the owner index
        runtime = app.tables["Ledger"]

        async def backend_plan() -> Any:
            context = charter.RequestContext(auth=True)
            context.user = User(user.id, "ann", "clerk")
            context.role = roles[0]
            access = runtime.access(context)
            scope = await access.scope(context, "Ledger")
            query = Query([Condition("amount", "greater_than", 5)], limit=10, scope=scope)
            return await app.database.explain(runtime.schema, query)

        explained = c.run(backend_plan())
        text = " ".join(str(v) for v in explained.get("sqlite", explained.get("postgresql", [])))
        assert "owner" in text and ("INDEX" in text.upper()), explained


def test_a_rule_that_raises_shows_nothing(database: str, fast_passwords: None) -> None:
    class Flaky(Table):
        id: str = Field(primary_key=True)

        @classmethod
        def read_filter(cls, user: User | None) -> Any:
            raise RuntimeError("the rule's lookup failed")

    roles = [Role("clerk", tables={"Flaky": Grant(read=True, insert=True)})]
    app = App(tables=[Flaky], database=database, auth=True, roles=roles)
    with TestClient(app) as c:
        c.run(charter.auth.add_user(app, "ann", PASSWORD, role="clerk"))
        c.run(Flaky.put({"id": "f1"}))
        ann = ("ann", PASSWORD)
        assert c.get("/Flaky/", auth=ann).json() == []
        assert c.get("/Flaky/f1", auth=ann).status_code == 404
        assert c.post("/Flaky/", json={"id": "f2"}, auth=ann).status_code == 403


def test_the_python_api_acts_as_a_user_only_when_given_a_context(shop: Shopfront) -> None:
    async def as_user(name: str) -> Any:
        context = charter.RequestContext(auth=True)
        context.user = User(shop.ids[name], name, "clerk")
        context.role = next(r for r in shop.app.directory.declared.values() if r.name == "clerk")
        rows = [p.id async for p in Product.search({}, context)]
        server = [p.id async for p in Product.search({})]
        got = await Product.get("bob1", context)
        try:
            await Product.patch("bob1", {"name": "x"}, context)
            patched = "patched"
        except charter.HttpError as exc:
            patched = exc.status_code
        return sorted(rows), sorted(server), got, patched

    rows, server, got, patched = shop.client.run(as_user("ann"))
    assert rows == ["ann1", "ann2", "pub1"]
    assert server == ["ann1", "ann2", "bob1", "pub1"]
    assert got is None and patched == 404


# -- model methods, RPC, contract routes ---------------------------------------------------------


def test_model_methods_need_their_declared_bits_or_the_verbs_right(shop: Shopfront) -> None:
    c = shop.client
    ann, vic, max_, nia = (shop.auth(n) for n in ("ann", "vic", "max", "nia"))
    assert c.get("/Product/ann1/label", auth=ann).json() == "label:product ann1"
    assert c.get("/Product/bob1/label", auth=ann).status_code == 404  # outside its rule
    assert c.get("/Product/pub1/label", auth=nia).status_code == 403  # no read right
    assert c.get("/Product/pub1/label").status_code == 401
    # egroup "shop": clerk R_X, manager RWX, viewer nothing
    assert c.get("/Product/total", auth=ann).json() == 4  # the method itself is server code
    assert c.get("/Product/total", auth=vic).status_code == 403
    assert c.post("/Product/ann1/restock", auth=ann).status_code == 403  # needs W
    max_row = {"name": "m", "owner": shop.ids["max"], "cost": "max cost"}
    shop.put_as_boss("/Product/max1", max_row)
    restocked = c.post("/Product/max1/restock", auth=max_)
    assert restocked.status_code == 200 and restocked.json()["cost"] == "max cost"
    assert c.post("/Product/pub1/restock", auth=max_).status_code == 404  # write rule


class Item(Table):
    id: str = Field(primary_key=True)
    name: str = ""
    cost: str = ""

    @charter.get
    def itself(self) -> Item:
        return self

    @charter.get(perm=charter.perms.NONE)  # asks for no bit: anyone, signed in or not
    @staticmethod
    def hello() -> str:
        return "hello"

    @charter.post(egroup="items")  # perm defaults to X
    @staticmethod
    def tidy() -> str:
        return "tidied"


def test_a_method_returning_a_record_hides_what_the_role_may_not_read(
    database: str, fast_passwords: None
) -> None:
    roles = [Role("clerk", tables={"Item": Grant(read=True, attributes={"name": "r"})})]
    app = App(tables=[Item], database=database, auth=True, roles=roles)
    with TestClient(app) as c:
        c.run(charter.auth.add_user(app, "ann", PASSWORD, role="clerk"))
        c.run(Item.put({"id": "i1", "name": "n", "cost": "SENTINEL"}))
        response = c.get("/Item/i1/itself", auth=("ann", PASSWORD))
        assert response.status_code == 200, response.text
        assert response.json() == {"id": "i1", "name": "n"}
        assert c.get("/Item/hello").json() == "hello"
        assert c.post("/Item/tidy", auth=("ann", PASSWORD)).status_code == 403  # no X on items
        assert c.post("/Item/tidy").status_code == 401


def test_rpc_and_contract_routes_with_real_sign_in(shop: Shopfront) -> None:
    c = shop.client
    ann, vic, max_ = shop.auth("ann"), shop.auth("vic"), shop.auth("max")
    assert c.post("/rpc/ping", auth=ann).json() == "pong"
    assert c.post("/rpc/ping", auth=vic).status_code == 403
    assert c.post("/rpc/ping").status_code == 401
    assert c.get("/managers", auth=max_).json() == "managers"
    assert c.get("/managers", auth=ann).status_code == 403
    assert c.get("/members", auth=vic).json() == "members"
    assert c.get("/members").status_code == 401
    assert c.get("/everyone").json() == c.get("/everyone", auth=ann).json() == "everyone"
    assert c.get("/strangers").json() == "strangers"
    assert c.get("/strangers", auth=ann).status_code == 403


def test_the_storage_proxy_is_server_code_and_reaches_no_table(shop: Shopfront) -> None:
    if shop.app.database.__class__.__name__ != "SQLiteStorage":
        pytest.skip("the storage proxy is SQLite-only")
    c, ann, max_ = shop.client, shop.auth("ann"), shop.auth("max")
    assert c.post("/rpc/memo", json=["hello"], auth=ann).json() == "hello"
    refused = c.post("/rpc/peek", json=['SELECT data FROM "Product"'], auth=max_)
    assert refused.status_code == 403
    assert b"SENTINEL" not in refused.content


def test_openapi_is_per_role(shop: Shopfront) -> None:
    c = shop.client
    full = c.get("/openapi.json", auth=shop.auth("boss")).json()
    clerk = c.get("/openapi.json", auth=shop.auth("ann")).json()
    anonymous = c.get("/openapi.json").json()
    assert "delete" in full["paths"]["/Product/{id}"]
    assert set(clerk["paths"]["/Product/{id}"]) == {"parameters", "get", "put", "patch", "post"}
    product = clerk["components"]["schemas"]["Product"]["properties"]
    assert set(product) == {"id", "name", "price", "owner", "brand_id"}
    assert "cost" not in clerk["components"]["schemas"]["ProductInput"]["properties"]
    assert "price" not in clerk["components"]["schemas"]["ProductPatch"]["properties"]
    assert "/Product/{id}/restock" not in clerk["paths"]  # needs RW_ on "shop"
    assert "/Product/{id}/label" in clerk["paths"]
    assert "/managers" not in clerk["paths"] and "/members" in clerk["paths"]
    assert "/Product/" not in anonymous["paths"] and "/Brand/" in anonymous["paths"]
    assert "/strangers" in anonymous["paths"] and "/strangers" not in clerk["paths"]
    assert b"cost" not in c.get("/openapi.json", auth=shop.auth("ann")).content


def test_super_users_auth_off_and_server_code_share_one_verdict(shop: Shopfront) -> None:
    # Why: the hot path of a request that may do everything builds nothing per request.
    from charter.runtime.access import UNRESTRICTED

    runtime = shop.app.tables["Product"]
    roles = {r.name: r for r in shop.app.directory.declared.values()}
    off = charter.RequestContext(auth=False)
    boss = charter.RequestContext(auth=True)
    boss.role = roles["boss"]
    clerk = charter.RequestContext(auth=True)
    clerk.role = roles["clerk"]
    assert runtime.access(None) is runtime.access(off) is runtime.access(boss) is UNRESTRICTED
    assert runtime.access(clerk) is runtime.access(clerk) is not UNRESTRICTED
    no_role = charter.RequestContext(auth=True)  # auth on without a role: fails closed
    assert not runtime.access(no_role).table("Product").read
