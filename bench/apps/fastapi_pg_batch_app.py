"""FastAPI + asyncpg with a batching loader for GET by id: the fastapi_pg peer, except that
point reads arriving in the same event-loop iteration are answered by one
``SELECT ... WHERE id = ANY($1)``, as Charter's PostgreSQL storage does (a "DataLoader", the
pattern GraphQL servers use). Everything else is fastapi_pg_app's. This is the peer that has
Charter's design advantage for reads too, so the comparison shows what is left."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import fastapi_pg_app
from fastapi import FastAPI, HTTPException, Request
from pydantic_models import Item

SELECT_MANY = "SELECT id, name, category, price, stock FROM item WHERE id = ANY($1::text[])"


class Loader:
    """Collects the ids asked for during one loop iteration; one statement answers them all."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.waiting: dict[str, list[asyncio.Future[Any]]] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def load(self, item_id: str) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.waiting is None:
            self.waiting = {}
            loop.call_soon(self._flush)
        self.waiting.setdefault(item_id, []).append(future)
        return await future

    def _flush(self) -> None:
        waiting, self.waiting = self.waiting or {}, None
        task = asyncio.ensure_future(self._answer(waiting))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, waiting: dict[str, list[asyncio.Future[Any]]]) -> None:
        try:
            rows = await self.pool.fetch(SELECT_MANY, list(waiting))
        except Exception as exc:  # every waiting request gets the error
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        found = {row["id"]: row for row in rows}
        for key, futures in waiting.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(key))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with fastapi_pg_app.lifespan(app):
        app.state.loader = Loader(app.state.pool)
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/Item/{item_id}", response_model=Item)
async def read_item(item_id: str, request: Request) -> Item:
    row = await request.app.state.loader.load(item_id)
    if row is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return Item(**dict(row))


app.include_router(fastapi_pg_app.router)
