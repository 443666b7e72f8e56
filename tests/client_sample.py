"""A program using the Python client generated from tests/client_app.py: type-checked with
``mypy --strict`` and run against a live server by tests/test_client_python.py.

    python client_sample.py URL ADMIN_PASSWORD
"""

from __future__ import annotations

import asyncio
import sys

from gadgets import (
    AsyncClient,
    BrandCreate,
    CharterClientError,
    Client,
    CounterCreate,
    Gadget,
    GadgetCreate,
    GadgetPatch,
    Priced,
    Quote,
)


def sync_part(url: str, password: str) -> None:
    with Client(url) as client:
        try:
            client.Gadget.list()
        except CharterClientError as error:  # not signed in: the anonymous role may not read
            assert error.status == 401 and error.code == "UNAUTHORIZED", error
        else:
            raise AssertionError("an anonymous read was allowed")
        client.sign_in("admin", password)

        brand = client.Brand.create(BrandCreate(id="acme", name="Acme"))
        assert brand.name == "Acme"
        anvil = client.Gadget.create(
            GadgetCreate(name="Anvil", price=25.0, tags=["heavy"], brand_id="acme", cost=9.5)
        )
        assert isinstance(anvil, Gadget) and anvil.id and anvil.stock == 0
        assert anvil.owner is None and not hasattr(anvil, "cost")  # input-only: never returned
        kite = client.Gadget.put("kite", GadgetCreate(name="Kite", price=12.5, kind="toy"))
        assert kite.id == "kite" and kite.kind == "toy"
        kite = client.Gadget.patch("kite", GadgetPatch(stock=3))
        assert (kite.stock, kite.price) == (3, 12.5)
        assert client.Gadget.get(anvil.id).tags == ["heavy"]

        query = client.Gadget.query().where("price", "gt", 10).sort("-price").limit(10)
        assert [g.name for g in client.Gadget.list(query)] == ["Anvil", "Kite"]
        toys = client.Gadget.query().where("kind", "eq", "toy").where("stock", "ge", 1)
        assert [g.id for g in client.Gadget.list(toys)] == ["kite"]
        either = client.Gadget.query()
        either.any_of(either.cond("name", "sw", "An"), either.cond("tags", "ct", "none"))
        assert [g.name for g in client.Gadget.list(either)] == ["Anvil"]
        names = client.Gadget.query().select("name").sort("name")
        assert client.Gadget.values(names) == ["Anvil", "Kite"]
        between = client.Gadget.query().where("price", "bt", (12.0, 13.0))
        assert [g.id for g in client.Gadget.list(between)] == ["kite"]

        assert client.Gadget.label("kite") == "Kite (12.5)"
        assert client.Gadget.discount(10, kind="toy") == 1
        priced = client.rpc.quote("kite", qty=10)
        assert isinstance(priced, Priced) and priced.note == "bulk"
        assert abs(priced.total - 112.5) < 1e-9
        assert client.rpc.tags(["ab", "c"]) == {"ab": 2, "c": 1}
        assert client.routes.checkout(Quote(gadget_id=anvil.id, qty=2))
        assert client.routes.greet("ann", times=2) == {"greeting": "hello ann hello ann"}
        created = client.routes.new_brand(payload={"id": "zeta", "name": "Zeta"})
        assert created["name"] == "Zeta"
        assert client.Counter.create(CounterCreate(id=7, value=1)).id == 7
        assert client.Blob.size(b"x" * 1000) == 1000  # byte streams, whole
        assert client.Blob.count(3) == b"0\n1\n2\n"

        try:
            client.Gadget.get("nope")
        except CharterClientError as error:
            assert (error.status, error.code) == (404, "NOT_FOUND"), error
        else:
            raise AssertionError("no 404")
        try:
            client.Gadget.create(GadgetCreate(name="", price=-1))
        except CharterClientError as error:
            assert (error.status, error.code) == (422, "INVALID_PROPERTIES"), error
            assert isinstance(error.details, list) and error.details
        else:
            raise AssertionError("no 422")

        assert client.session.tokens is not None  # an access token refused: refreshed, retried
        client.session.tokens.access_token = "not-a-token"
        assert client.Gadget.get("kite").name == "Kite"
        before = client.session.tokens
        client.session.expires_at = 0.0  # about to expire: renewed before the request
        assert client.Gadget.get("kite").name == "Kite"
        assert client.session.tokens is not before and client.session.tokens is not None
        client.Gadget.delete("kite")
        client.sign_out()


async def async_part(url: str, password: str) -> None:
    async with AsyncClient(url) as client:
        await client.sign_in("admin", password)
        made = await client.Gadget.create(GadgetCreate(id="yo", name="Yo-yo", price=3.0))
        assert made.id == "yo"
        found = await client.Gadget.list(client.Gadget.query().where("name", "eq", "Yo-yo"))
        assert [g.id for g in found] == ["yo"]
        assert (await client.rpc.quote("yo", qty=2)).total == 6.0
        try:
            await client.rpc.quote("missing")
        except CharterClientError as error:
            assert (error.status, error.code) == (404, "NOT_FOUND"), error
        else:
            raise AssertionError("no 404")
        assert client.session.tokens is not None  # refused at once: refreshed once, not 5 times
        client.session.tokens.access_token = "not-a-token"
        labels = await asyncio.gather(*(client.Gadget.label("yo") for _ in range(5)))
        assert labels == ["Yo-yo (3.0)"] * 5
        await client.Gadget.delete("yo")
        await client.sign_out()


if __name__ == "__main__":
    sync_part(sys.argv[1], sys.argv[2])
    asyncio.run(async_part(sys.argv[1], sys.argv[2]))
    print("ok")
