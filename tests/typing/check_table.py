"""What a type checker sees of a table: checked by ``mypy`` (``make check``) and by
``test_typing.py``. ``assert_type`` pins a type; ``# type: ignore[code]`` pins an error (an
ignore that no longer matches an error is itself an error, ``warn_unused_ignores``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, assert_type

from charter import Field, Source, Table, relationship, resource


class Brand(Table):
    id: str = Field(primary_key=True)
    name: str


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True, min_length=1)
    price: float = Field(ge=0)
    stock: int = 0
    tags: list[str] = Field(default_factory=list)
    brand_id: str | None = Field(default=None)
    brand: Brand | None = relationship(from_="brand_id")


class Order(Table):
    id: str = Field(primary_key=True)
    qty: int

    @resource.post
    async def post(self, data: dict[str, Any]) -> Order:
        return await super().post(data)  # a Product here would be an error

    async def get(self, query: Any = None) -> Order | None:  # not decorated: a plain method
        return await super().get(query)


async def static_helpers() -> None:
    assert_type(await Product.get("p1"), Product | None)
    assert_type(Product.search(), AsyncIterator[Product])
    async for product in Product.search({"conditions": []}):
        assert_type(product, Product)
    assert_type(await Product.post({"name": "Anvil", "price": 25}), Product)
    assert_type(await Product.put({"id": "p1", "name": "Anvil", "price": 25}), None)
    assert_type(await Product.patch("p1", {"stock": 3}), None)
    assert_type(await Product.delete("p1"), bool)
    assert_type(await Product.publish("p1", {"hello": "world"}), None)
    assert_type(Product.primary_key, str)
    assert_type(await Brand.get("b1"), Brand | None)


async def instances(product: Product) -> None:
    assert_type(product.price, float)
    assert_type(product.tags, list[str])
    assert_type(product.brand, Brand | None)
    assert_type(product.to_dict(), dict[str, Any])
    assert_type(await product.get(), Product | None)
    assert_type(product.search(), AsyncIterator[Product])
    assert_type(await product.post({}), Product)
    assert_type(await product.delete(), bool)
    print(product.colour)  # type: ignore[attr-defined]


async def overrides() -> None:
    assert_type(await Order.post({"qty": 1}), Order)  # decorated: still the static helper
    await Order.get("o1")  # type: ignore[arg-type]


def constructor() -> None:
    Product(id="p1", name="Anvil", price=25.0)
    Product(id="p1", name="Anvil", price=25.0, stock=2, tags=["x"], brand_id="acme")
    Product(id="p1", name="Anvil", price="x")  # type: ignore[arg-type]
    Product(id="p1", name="Anvil", price=1, colour="red")  # type: ignore[call-arg]
    Product(id="p1", name="Anvil")  # type: ignore[call-arg]
    Product("p1", "Anvil", 25.0)  # type: ignore[call-arg]


class WeatherApi(Source):
    async def get(self, id: str) -> dict[str, Any] | None:
        return {"id": id, "temp": 1.0}


class Weather(Table, source=WeatherApi, expiration=60, eviction=600, source_timeout=2):
    id: str = Field(primary_key=True)
    temp: float = 0


async def caching() -> None:
    assert_type(await Weather.invalidate("paris"), None)
    weather = await Weather.get("paris")
    assert weather is not None
    assert_type(weather.was_loaded_from_source(), bool)
    assert_type(weather.temp, float)
