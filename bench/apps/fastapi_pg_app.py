"""The FastAPI peer on PostgreSQL, written the way FastAPI's and asyncpg's docs suggest: an asyncpg
pool created in the lifespan (``asyncpg.create_pool``, its default of 10 connections, as
Charter's default CHARTER_POOL_SIZE), ``async def`` endpoints that ``await`` the pool, pydantic
models for the body and the response. Only the PostgreSQL backend runs it (BENCH_DB is a
``postgresql://`` URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import benchdb
import quote
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from pydantic_models import Item, ItemIn, Quote, QuoteIn

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/bench_fastapi_pg"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS item (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        category TEXT NOT NULL,
        price DOUBLE PRECISION NOT NULL CHECK (price >= 0),
        stock INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS item_category ON item (category)",
    "CREATE INDEX IF NOT EXISTS item_price ON item (price)",
)
SELECT_BY_ID = "SELECT id, name, category, price, stock FROM item WHERE id = $1"
SELECT_BY_CATEGORY = (
    "SELECT id, name, category, price, stock FROM item WHERE category = $1 LIMIT $2"
)
INSERT = "INSERT INTO item (id, name, category, price, stock) VALUES ($1, $2, $3, $4, $5)"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(os.environ.get("BENCH_DB", DEFAULT_DB))
    # Several workers start together: one creates the table, the others wait for it.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(7919)")
        for statement in SCHEMA:
            await conn.execute(statement)
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


# The endpoints both PostgreSQL peers share (fastapi_pg_batch_app reads by id its own way).
router = APIRouter()


def pool(request: Request) -> asyncpg.Pool:
    p: asyncpg.Pool = request.app.state.pool
    return p


async def read_item(item_id: str, request: Request) -> Item:
    row = await pool(request).fetchrow(SELECT_BY_ID, item_id)
    if row is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return Item(**dict(row))


@router.post("/Item/", response_model=Item, status_code=201)
async def create_item(body: ItemIn, request: Request, response: Response) -> Item:
    item = Item(
        id=body.id if body.id is not None else str(uuid.uuid4()),
        name=body.name,
        category=body.category,
        price=body.price,
        stock=body.stock,
    )
    try:
        await pool(request).execute(
            INSERT, item.id, item.name, item.category, item.price, item.stock
        )
    except asyncpg.UniqueViolationError:
        raise HTTPException(status_code=409, detail="Item exists") from None
    response.headers["Location"] = f"/Item/{item.id}"
    return item


@router.get("/Item/", response_model=list[Item])
async def list_items(category: str, request: Request) -> list[Item]:
    """``?category=C&limit(N)`` only (the conformance check's list; no scenario on this
    backend uses it)."""
    limit = benchdb.parse_limit(request.url.query)
    rows = await pool(request).fetch(SELECT_BY_CATEGORY, category, limit)
    return [Item(**dict(row)) for row in rows]


@router.post("/rpc/quote", response_model=Quote)
async def rpc_quote(body: QuoteIn) -> Quote:
    order = body.order
    return Quote(**quote.price(order.product_id, order.qty, order.express))


app = FastAPI(lifespan=lifespan)
app.get("/Item/{item_id}", response_model=Item)(read_item)
app.include_router(router)
