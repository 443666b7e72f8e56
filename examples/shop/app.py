"""The shop example: brands, products and orders on embedded SQLite, with sign-in.

Anyone may browse the catalogue; staff manage it; a customer places orders and sees only its
own (the Order table's row rule, compiled into every query's SQL). Create the users first:

    charter users add boss --role staff examples/shop/app.py     # asks for a password
    charter users add ann --role customer examples/shop/app.py

Run it with ``make run`` (or ``charter serve examples/shop/app.py``) and try:

    curl -u boss:PASSWORD -X POST localhost:8000/Brand/ -d '{"id": "acme", "name": "Acme"}'
    curl -u boss:PASSWORD -X POST localhost:8000/Product/ \
         -d '{"id": "anvil", "name": "Anvil", "price": 25, "stock": 5, "brand_id": "acme"}'
    curl 'localhost:8000/Product/?brand_id=acme&sort(-price)&limit(10)'    # anonymous
    curl -u ann:PASSWORD -X POST localhost:8000/Order/ -d '{"product_id": "anvil", "qty": 2}'
    curl -u ann:PASSWORD localhost:8000/Order/      # ann's orders only
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from charter import (
    App,
    Condition,
    Conflict,
    Field,
    Grant,
    NotFound,
    Role,
    Service,
    Table,
    User,
    current_context,
    get,
    perms,
    post,
    relationship,
    resource,
    rpc,
)


class Brand(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True, min_length=1)


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True, min_length=1)
    price: float = Field(indexed=True, ge=0)
    stock: int = Field(default=0, ge=0)
    tags: list[str] = []
    brand_id: str | None = Field(default=None, indexed=True)
    brand: Brand | None = relationship(from_="brand_id")
    cost: float = Field(default=0, returned=False)

    @get  # GET /Product/{id}/label
    def label(self) -> str:
        """A display label."""
        return f"{self.name} ({self.price})"

    @post  # POST /Product/discount {"percent": 10, "brand_id": "acme"}
    @staticmethod
    async def discount(percent: float, brand_id: str | None = None) -> int:
        """Lower prices by ``percent``; how many products changed."""
        if not 0 < percent < 100:
            from charter import ValidationError

            raise ValidationError("percent must be between 0 and 100")
        query = {"conditions": [{"attribute": "brand_id", "value": brand_id}]} if brand_id else None
        changed = 0
        async for product in Product.search(query):
            await Product.patch(
                product.get_id(), {"price": round(product.price * (1 - percent / 100), 2)}
            )
            changed += 1
        return changed


class Order(Table):
    id: str = Field(primary_key=True)
    product_id: str = Field(indexed=True)
    qty: int = Field(ge=1)
    total: float = Field(default=0, input=False)
    created: dt.datetime | None = Field(default=None, created_time=True)
    owner: str = Field(default="", indexed=True, input=False)  # the id of the user who placed it

    @classmethod
    def read_filter(cls, user: User | None) -> Condition | None:
        """Staff see every order; anyone else only their own (an indexed condition ANDed into
        every read of Order: lists, counts, GET by id, joins)."""
        if user is not None and user.role == "staff":
            return None
        return Condition("owner", "equals", user.id if user is not None else "")

    @resource.post  # an override of the resource method post (keeps Order.post typed)
    async def post(self, data: dict[str, Any]) -> Order:
        """Placing an order checks and decrements stock in the same transaction: if anything
        below raises, neither the order nor the stock change is kept."""
        context = current_context()
        user = context.user if context is not None else None
        data = {**data, "owner": user.id if user is not None else ""}
        order = await super().post(data)  # validates the order
        product = await Product.get(order.product_id)
        if product is None:
            raise NotFound(f"product {order.product_id!r} does not exist")
        if order.qty > product.stock:
            raise Conflict(f"only {product.stock} of {product.name} left")
        await Product.patch(product.get_id(), {"stock": product.stock - order.qty})
        await Order.patch(order.get_id(), {"total": product.price * order.qty})
        placed = await Order.get(order.get_id())
        assert placed is not None  # written in this transaction
        return placed


class Orders(Service):
    @rpc(egroup="api-v1", perm=perms.RWX)  # POST /rpc/place_order ["p1", 2] or {"product_id": ...}
    async def place_order(self, product_id: str, qty: int) -> dict[str, Any]:
        """Place an order through the Order table's own rules; the order placed."""
        order = await Order.post({"product_id": product_id, "qty": qty})
        return order.to_dict()


CATALOGUE = ("Brand", "Product")
ROLES = [
    # Not signed in: browse the catalogue (cost stays hidden: it is returned=False anyway).
    Role("anonymous", tables={t: Grant(read=True) for t in CATALOGUE}),
    # A customer also places orders and reads its own (Order.read_filter).
    Role(
        "customer",
        tables={**{t: Grant(read=True) for t in CATALOGUE}, "Order": Grant(read=True, insert=True)},
    ),
    # Staff manage the catalogue and every order, and may call the api-v1 RPCs.
    Role(
        "staff",
        tables={
            t: Grant(read=True, insert=True, update=True, delete=True)
            for t in (*CATALOGUE, "Order")
        },
        egroups={"api-v1": perms.RWX},
    ),
]

app = App(tables=[Brand, Product, Order], services=[Orders], auth=True, roles=ROLES)
