"""The shop example (examples/shop/app.py): users, roles and the owner rule on orders, driven
as its docstring tells a new user to, on both backends."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import charter
from charter.testing import TestClient

SHOP = Path(__file__).resolve().parent.parent / "examples" / "shop" / "app.py"
PASSWORD = "a-long-enough-password"


def _load_shop() -> Any:
    spec = importlib.util.spec_from_file_location("shop_example", SHOP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its annotations name its own classes
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def shop(database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("CHARTER_DATABASE", database)
    app = _load_shop().app
    with TestClient(app) as client:
        for name, role in (("boss", "staff"), ("ann", "customer"), ("bob", "customer")):
            client.run(charter.auth.add_user(app, name, PASSWORD, role=role))
        yield client


def test_staff_manage_the_catalogue_anyone_browses_it(shop: TestClient) -> None:
    boss = ("boss", PASSWORD)
    assert shop.post("/Brand/", json={"id": "acme", "name": "Acme"}, auth=boss).status_code == 201
    product = {"id": "anvil", "name": "Anvil", "price": 25, "stock": 5, "brand_id": "acme"}
    assert shop.post("/Product/", json=product, auth=boss).status_code == 201
    listed = shop.get("/Product/?brand_id=acme&sort(-price)&limit(10)")
    assert listed.status_code == 200 and [p["id"] for p in listed.json()] == ["anvil"]
    denied = shop.post("/Product/", json={"name": "Hammer", "price": 3})
    assert denied.status_code == 401 and "www-authenticate" in denied.headers
    customer = shop.patch("/Product/anvil", json={"price": 1}, auth=("ann", PASSWORD))
    assert customer.status_code == 403


def test_a_customer_sees_only_its_own_orders(shop: TestClient) -> None:
    boss, ann, bob = ("boss", PASSWORD), ("ann", PASSWORD), ("bob", PASSWORD)
    shop.post(
        "/Product/", json={"id": "anvil", "name": "Anvil", "price": 25, "stock": 5}, auth=boss
    )
    placed = shop.post("/Order/", json={"product_id": "anvil", "qty": 2}, auth=ann)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["total"] == 50 and order["owner"]
    # owner is input=False: what a client sends is dropped and the server sets the signer's id.
    spoofed = shop.post(
        "/Order/", json={"product_id": "anvil", "qty": 1, "owner": order["owner"]}, auth=bob
    )
    assert spoofed.status_code == 201 and spoofed.json()["owner"] != order["owner"]
    assert [o["id"] for o in shop.get("/Order/", auth=ann).json()] == [order["id"]]
    assert [o["id"] for o in shop.get("/Order/", auth=bob).json()] == [spoofed.json()["id"]]
    assert shop.get(f"/Order/{order['id']}", auth=bob).status_code == 404  # not 403: no leak
    counted = shop.get("/Order/?limit(5)", auth=bob, headers={"prefer": "count=exact"})
    assert counted.headers.get("content-range", "").endswith("/1"), counted.headers
    assert len(shop.get("/Order/", auth=boss).json()) == 2  # staff see every order
    assert shop.get("/Order/").status_code == 401  # anonymous has no right on Order
    assert shop.get("/Product/anvil").json()["stock"] == 2  # the orders' stock changes held
