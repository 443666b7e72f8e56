import os

import quote
from models import Order, Quote

from charter import App, Field, Service, Table, rpc


class Item(Table):
    id: str = Field(primary_key=True)
    name: str
    category: str = Field(indexed=True)
    price: float = Field(ge=0, indexed=True)
    stock: int = 0


class Quotes(Service):
    @rpc
    async def quote(self, order: Order) -> Quote:
        return Quote(**quote.price(order.product_id, order.qty, order.express))


app = App(
    tables=[Item],
    services=[Quotes],
    database=os.environ.get("BENCH_DB", "sqlite:///bench/.work/charter.db"),
)
