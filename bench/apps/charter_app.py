import os
from typing import Annotated

import msgspec
import quote

from charter import App, Field, Service, Table, rpc


class Item(Table):
    id: str = Field(primary_key=True)
    name: str
    category: str = Field(indexed=True)
    price: float = Field(ge=0, indexed=True)
    stock: int = 0


class Address(msgspec.Struct, forbid_unknown_fields=True):
    city: str
    zip: Annotated[str, msgspec.Meta(min_length=4, max_length=10)]


class Order(msgspec.Struct, forbid_unknown_fields=True):
    product_id: str
    qty: Annotated[int, msgspec.Meta(ge=1)]
    address: Address
    tags: list[str] = []
    express: bool = False


class Quote(msgspec.Struct):
    product_id: str
    qty: int
    total: float


class Quotes(Service):
    @rpc
    async def quote(self, order: Order) -> Quote:
        return Quote(**quote.price(order.product_id, order.qty, order.express))


app = App(
    tables=[Item],
    services=[Quotes],
    database=os.environ.get("BENCH_DB", "sqlite:///bench/.work/charter.db"),
)
