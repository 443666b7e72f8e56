"""The msgspec models shared by the peers that use msgspec (bare ASGI, Litestar, Charter's RPC),
so that each validates exactly the same shapes."""

from __future__ import annotations

from typing import Annotated

import msgspec


class ItemIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    category: str
    price: Annotated[float, msgspec.Meta(ge=0)]
    stock: int = 0
    id: str | None = None


class Item(msgspec.Struct):
    id: str
    name: str
    category: str
    price: float
    stock: int


class Address(msgspec.Struct, forbid_unknown_fields=True):
    city: str
    zip: Annotated[str, msgspec.Meta(min_length=4, max_length=10)]


class Order(msgspec.Struct, forbid_unknown_fields=True):
    product_id: str
    qty: Annotated[int, msgspec.Meta(ge=1)]
    address: Address
    tags: list[str] = []
    express: bool = False


class QuoteIn(msgspec.Struct, forbid_unknown_fields=True):
    order: Order


class Quote(msgspec.Struct):
    product_id: str
    qty: int
    total: float
