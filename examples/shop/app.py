"""The shop example: brands, products and orders on embedded SQLite.

Run it with ``make run`` (or ``charter serve examples/shop/app.py``) and try:

    curl -X POST localhost:8000/Brand/ -d '{"id": "acme", "name": "Acme"}'
    curl -X POST localhost:8000/Product/ -d '{"name": "Anvil", "price": 25, "brand_id": "acme"}'
    curl 'localhost:8000/Product/?brand_id=acme&sort(-price)&limit(10)'
"""

from __future__ import annotations

import datetime as dt

from charter import App, Field, NotFound, Table, relationship


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

    def label(self) -> str:
        """A display label (served as a model method once methods land)."""
        return f"{self.name} ({self.price})"


class Order(Table):
    id: str = Field(primary_key=True)
    product_id: str = Field(indexed=True)
    qty: int = Field(ge=1)
    total: float = Field(default=0, input=False)
    created: dt.datetime | None = Field(default=None, created_time=True)

    async def post(self, data: dict) -> Order:  # type: ignore[override]
        """Placing an order checks and decrements stock in the same transaction."""
        product = await Product.get(data.get("product_id"))
        if product is None:
            raise NotFound(f"product {data.get('product_id')!r} does not exist")
        qty = data.get("qty")
        if isinstance(qty, int) and qty > product.stock:
            from charter import Conflict

            raise Conflict(f"only {product.stock} of {product.name} left")
        order: Order = await super().post({**data, "total": product.price * (qty or 0)})
        await Product.patch(product.get_id(), {"stock": product.stock - (qty or 0)})
        return order


app = App(tables=[Brand, Product, Order])
