"""The Litestar peer: msgspec Structs for the body and the response, sync handlers run with
``sync_to_thread=True``, one sqlite3 connection per thread."""

from __future__ import annotations

import sqlite3
import uuid

import benchdb
import quote
from litestar import Controller, Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException, NotFoundException
from models import Item, ItemIn, Quote, QuoteIn


@post("/rpc/quote", status_code=200)
async def rpc_quote(data: QuoteIn) -> Quote:
    order = data.order
    return Quote(**quote.price(order.product_id, order.qty, order.express))


class ItemController(Controller):
    # One controller for the resource: registering handlers that share a path one by one
    # (``route_handlers=[list_items, create_item]``) makes Litestar 2.25 wrap the first one in
    # sync_to_thread twice, so it answers 500 ("coroutine 'sync_to_thread' was never awaited").
    path = "/Item"

    @get("/{item_id:str}", sync_to_thread=True)
    def read_item(self, item_id: str) -> Item:
        row = benchdb.fetch_one(item_id)
        if row is None:
            raise NotFoundException("Item not found")
        return Item(*row)

    @post("/", sync_to_thread=True)
    def create_item(self, data: ItemIn) -> Response[Item]:
        item = Item(
            id=data.id if data.id is not None else str(uuid.uuid4()),
            name=data.name,
            category=data.category,
            price=data.price,
            stock=data.stock,
        )
        try:
            benchdb.insert((item.id, item.name, item.category, item.price, item.stock))
        except sqlite3.IntegrityError:
            raise HTTPException(status_code=409, detail="Item exists") from None
        return Response(item, status_code=201, headers={"Location": f"/Item/{item.id}"})

    @get("/", sync_to_thread=True)
    def list_items(self, request: Request, category: str) -> list[Item]:
        limit = benchdb.parse_limit(request.scope["query_string"].decode("latin-1"))
        return [Item(*row) for row in benchdb.fetch_by_category(category, limit)]


async def create_schema() -> None:
    benchdb.create_schema()


app = Litestar(route_handlers=[ItemController, rpc_quote], on_startup=[create_schema])
