"""A shop with roles, attribute rules and row rules, shared by tests/test_auth_rules*.py and
tests/test_auth_matrix*.py. Every value a role may not see holds a sentinel string, so that a
test can search raw response bytes (any format) for it.

Signing in pays Argon2 on every request until credentials are cached; ``cheap_passwords``
swaps in the cheapest Argon2id parameters for a test (sign-in is still real). Test files
declare their fixtures from ``cheap_passwords`` and ``open_shop``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher

import charter
import charter.auth.passwords
from charter import (
    App,
    Condition,
    Contract,
    Field,
    Grant,
    Group,
    HttpError,
    Role,
    Service,
    Table,
    User,
    current_context,
    get,
    perms,
    post,
    relationship,
    route,
    rpc,
)
from charter.testing import TestClient

PASSWORD = "correct horse battery"
USERS = {"ann": "clerk", "bob": "clerk", "vic": "viewer", "max": "manager", "nia": "nobody"}


def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cheapest Argon2id parameters for one test (every sign-in still verifies)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(charter.auth.passwords, "_hasher", cheap)


def hidden(table: str, attribute: str, key: str) -> str:
    """The sentinel stored in an attribute some role may not read."""
    return f"SENTINEL-{table}-{attribute}-{key}"


class Brand(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    notes: str = ""  # clerks may not read it
    owner: str = Field(default="", indexed=True)
    products: list[Product] = relationship(to="brand_id")

    @classmethod
    def read_filter(cls, user: User | None) -> Any:
        # A brand is public (owner "") or its owner's.
        if user is None:
            return Condition("owner", "equals", "")
        return Group(
            "or", [Condition("owner", "equals", ""), Condition("owner", "equals", user.id)]
        )


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    price: float = Field(default=0.0, indexed=True)  # clerks read it, may not write it
    cost: str = ""  # clerks may not read it
    owner: str = Field(default="", indexed=True)
    brand_id: str | None = Field(default=None, indexed=True)
    brand: Brand | None = relationship(from_="brand_id")
    secret: str = Field(default="", returned=False)  # no client reads it, super users neither

    @classmethod
    async def read_filter(cls, user: User | None) -> Any:  # async rules work too
        if user is None:
            return Condition("owner", "equals", "")
        return [
            Group("or", [Condition("owner", "equals", ""), Condition("owner", "equals", user.id)])
        ]

    @classmethod
    def write_filter(cls, user: User | None) -> Any:
        # Only your own rows (ANDed with the read rule): public rows are read-only.
        return Condition("owner", "equals", user.id if user is not None else "\x00nobody")

    @get
    def label(self) -> str:  # undeclared: needs the table's read right
        return f"label:{self.name}"

    @post(egroup="shop", perm=perms.RW)
    def restock(self) -> Product:  # declared: needs RW_ on the egroup "shop"
        return self

    @get(egroup="shop", perm=perms.R)
    @staticmethod
    async def total() -> int:
        return len([p async for p in Product.search({})])  # server code: every row


class Shop(Service):
    @rpc(egroup="shop", perm=perms.X)
    async def ping(self) -> str:
        return "pong"

    @rpc(egroup="shop", perm=perms.RWX)
    async def peek(self, sql: str) -> Any:
        # The storage proxy is server code; it cannot reach a table's rows.
        return await self.app.storage.memo.exec(sql)

    @rpc(egroup="shop", perm=perms.X)
    async def memo(self, text: str) -> Any:
        await self.app.storage.memo.set("last", text)
        return await self.app.storage.memo.get("last")


@route("GET", "/managers", contract=Contract(roles=["manager"]))
async def managers() -> str:
    return "managers"


@route("GET", "/members", contract=Contract(roles=True))
async def members() -> str:
    return "members"


@route("GET", "/everyone", contract=Contract(roles="unauthenticated"))
async def everyone() -> str:
    return "everyone"


@route("GET", "/strangers", contract=Contract(roles="unauthenticated-only"))
async def strangers() -> str:
    return "strangers"


ROLES = [
    Role("boss", super_user=True),
    Role(
        "clerk",
        tables={
            "Product": Grant(
                read=True,
                insert=True,
                update=True,
                attributes={"name": "rw", "price": "r", "owner": "rw", "brand_id": "rw"},
            ),
            "Brand": Grant(read=True, attributes={"name": "r", "owner": "r"}),
        },
        egroups={"shop": perms.R_X},
    ),
    Role("viewer", tables={"Product": Grant(read=True)}),
    Role(
        "manager",
        tables={
            "Product": Grant(read=True, insert=True, update=True, delete=True),
            "Brand": Grant(read=True, insert=True, update=True, delete=True),
        },
        egroups={"shop": perms.RWX},
    ),
    Role("anonymous", tables={"Brand": Grant(read=True)}),
    Role("nobody"),
]

TABLES: list[type[Table]] = [Brand, Product]


def build(database: str, **options: Any) -> App:
    return App(
        tables=TABLES,
        services=[Shop],
        routes=[managers, members, everyone, strangers],
        database=database,
        auth=True,
        roles=ROLES,
        **options,
    )


PRODUCT_OWNERS = {"pub1": "", "ann1": "ann", "ann2": "ann", "bob1": "bob"}  # "" = public
PRODUCT_BRANDS = {"pub1": "acme", "ann1": "annco", "ann2": "acme", "bob1": "bobco"}


class Shopfront:
    """A started client with the users signed up and the data in place."""

    def __init__(self, client: TestClient, app: App) -> None:
        self.client = client
        self.app = app
        self.ids: dict[str, str] = {}
        for name, role in USERS.items():
            user = client.run(charter.auth.add_user(app, name, PASSWORD, role=role))
            self.ids[name] = user.id
        boss = client.run(charter.auth.add_user(app, "boss", PASSWORD, role="boss"))
        self.ids["boss"] = boss.id

    def auth(self, name: str | None) -> Any:
        return None if name is None else (name, PASSWORD)

    def seed(self) -> None:
        """Brands and products: public ones, ann's, bob's; sentinels wherever hidden."""
        rows = {
            "Brand": [("acme", ""), ("annco", "ann"), ("bobco", "bob")],
            "Product": [(key, owner, PRODUCT_BRANDS[key]) for key, owner in PRODUCT_OWNERS.items()],
        }
        for key, owner in rows["Brand"]:
            body = {
                "name": f"brand {key}",
                "notes": hidden("Brand", "notes", key),
                "owner": self.ids.get(owner, ""),
            }
            self.put_as_boss(f"/Brand/{key}", body)
        for key, owner, brand in rows["Product"]:
            body = {
                "name": f"product {key}",
                "price": 10.0,
                "cost": hidden("Product", "cost", key),
                "owner": self.ids.get(owner, ""),
                "brand_id": brand,
                "secret": hidden("Product", "secret", key),
            }
            self.put_as_boss(f"/Product/{key}", body)

    def put_as_boss(self, path: str, body: dict[str, Any]) -> None:
        response = self.client.put(path, json=body, auth=self.auth("boss"))
        assert response.status_code in (200, 204), response.text

    def get_as_boss(self, path: str) -> Any:
        return self.client.get(path, auth=self.auth("boss"))


@contextlib.contextmanager
def open_shop(database: str) -> Iterator[Shopfront]:
    """A started shop on ``database``, users signed up, data in place."""
    app = build(database)
    with TestClient(app) as client:
        front = Shopfront(client, app)
        front.seed()
        yield front


def current_user_name() -> str | None:
    context = current_context()
    user = context.user if context is not None else None
    return None if user is None else str(user.username)


__all__ = [
    "PRODUCT_BRANDS",
    "PRODUCT_OWNERS",
    "HttpError",
    "Shopfront",
    "build",
    "cheap_passwords",
    "current_user_name",
    "hidden",
    "open_shop",
]
