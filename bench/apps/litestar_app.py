"""The Litestar peer: msgspec Structs for the body and the response, sync handlers run with
``sync_to_thread=True``, one sqlite3 connection per thread.

Request bodies are decoded strictly, as Charter validates: Litestar's own body decoding (its
signature model and its DTO backends) calls msgspec with ``strict=False``, which coerces
``"3"`` to ``3``. ``StrictMsgspecDTO`` (Litestar's extension point for body decoding) decodes
with ``strict=True`` instead, so ``{"stock": "3"}`` is a 422 here as it is in Charter."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any, Generic, TypeVar

import benchdb
import msgspec
import quote
from litestar import Controller, Litestar, Request, Response, get, post
from litestar.dto import MsgspecDTO
from litestar.exceptions import HTTPException, NotFoundException
from models import Item, ItemIn, Quote, QuoteIn

S = TypeVar("S", bound=msgspec.Struct)


class StrictMsgspecDTO(MsgspecDTO[S], Generic[S]):
    """Decode the body with msgspec's strict rules (no coercion of strings to numbers)."""

    def decode_bytes(self, value: bytes) -> Any:
        try:
            return msgspec.json.decode(value, type=self.model_type, strict=True)
        except msgspec.ValidationError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        except msgspec.DecodeError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None


@post("/rpc/quote", status_code=200, dto=StrictMsgspecDTO[QuoteIn], return_dto=None)
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

    @post("/", sync_to_thread=True, dto=StrictMsgspecDTO[ItemIn], return_dto=None)
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
    def list_items(self, request: Request[Any, Any, Any], category: str) -> list[Item]:
        """``?category=C&limit(N)``, and the query scenario's
        ``?category=C&price=gt=P&sort(-price)&limit(N)`` as the FastAPI peer does it
        (benchdb.query_rows: the same minimal parse and the same hand-written SQL)."""
        query = request.scope["query_string"].decode("latin-1")
        rows = benchdb.query_rows(category, query)
        if rows is None:
            raise HTTPException(status_code=400, detail=benchdb.QUERY_REFUSED)
        return [Item(*row) for row in rows]


async def create_schema() -> None:
    benchdb.create_schema()


app = Litestar(route_handlers=[ItemController, rpc_quote], on_startup=[create_schema])
