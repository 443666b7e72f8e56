"""The FastAPI peer, written the way FastAPI's docs suggest: pydantic models for the body and the
response, plain ``def`` endpoints (FastAPI runs them in its thread pool), one sqlite3 connection
per thread."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import benchdb
import quote
from fastapi import FastAPI, HTTPException, Request, Response
from pydantic_models import Item, ItemIn, Quote, QuoteIn


def _item(row: tuple[object, ...]) -> Item:
    return Item(**dict(zip(benchdb.COLUMNS, row, strict=True)))


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    benchdb.create_schema()
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/Item/{item_id}", response_model=Item)
def read_item(item_id: str) -> Item:
    row = benchdb.fetch_one(item_id)
    if row is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return _item(row)


@app.post("/Item/", response_model=Item, status_code=201)
def create_item(body: ItemIn, response: Response) -> Item:
    item = Item(
        id=body.id if body.id is not None else str(uuid.uuid4()),
        name=body.name,
        category=body.category,
        price=body.price,
        stock=body.stock,
    )
    try:
        benchdb.insert((item.id, item.name, item.category, item.price, item.stock))
    except sqlite3.IntegrityError:
        raise HTTPException(status_code=409, detail="Item exists") from None
    response.headers["Location"] = f"/Item/{item.id}"
    return item


@app.get("/Item/", response_model=list[Item])
def list_items(category: str, request: Request) -> list[Item]:
    """``?category=C&limit(N)``, and the query scenario's
    ``?category=C&price=gt=P&sort(-price)&limit(N)`` as hand-written SQL
    (benchdb.SELECT_PRICE_ABOVE_DESC). The URL is parsed minimally (benchdb.query_rows):
    those literal forms only; any other use of ``price`` is refused."""
    rows = benchdb.query_rows(category, request.url.query)
    if rows is None:
        raise HTTPException(status_code=400, detail=benchdb.QUERY_REFUSED)
    return [_item(row) for row in rows]


@app.post("/rpc/quote", response_model=Quote)
async def rpc_quote(body: QuoteIn) -> Quote:
    order = body.order
    return Quote(**quote.price(order.product_id, order.qty, order.express))
