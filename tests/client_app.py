"""The app the generated clients are tested against (tests/test_client_python.py): tables with
input-only and server-only attributes, an integer key, model methods, RPCs, contract routes
and a mapped route."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from charter import (
    App,
    Contract,
    Field,
    NotFound,
    Operation,
    Service,
    Table,
    get,
    map_route,
    post,
    route,
    rpc,
)


class Brand(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)


class Gadget(Table):
    """A thing for sale."""

    id: str = Field(primary_key=True)
    name: str = Field(indexed=True, min_length=1)
    price: float = Field(indexed=True, ge=0)
    stock: int = 0
    tags: list[str] = []
    kind: Literal["tool", "toy"] = "tool"
    brand_id: str | None = Field(default=None, indexed=True)
    made: dt.datetime | None = None
    cost: float = Field(default=0, returned=False)  # accepted on input, never returned
    owner: str | None = Field(default=None, input=False)  # set by the server only

    @get
    def label(self) -> str:
        """A display label."""
        return f"{self.name} ({self.price})"

    @post
    @staticmethod
    async def discount(percent: float, kind: str | None = None) -> int:
        """Lower prices by ``percent``; how many changed."""
        changed = 0
        async for gadget in Gadget.search(None):
            if kind is None or gadget.kind == kind:
                await Gadget.patch(gadget.get_id(), {"price": gadget.price * (1 - percent / 100)})
                changed += 1
        return changed


class Blob(Table):
    id: str = Field(primary_key=True)

    @post
    @staticmethod
    async def size(data: AsyncIterator[bytes]) -> int:
        """The size of the body."""
        total = 0
        async for chunk in data:
            total += len(chunk)
        return total

    @get
    @staticmethod
    async def count(n: int) -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"{i}\n".encode()


class Counter(Table):
    id: int = Field(primary_key=True)
    value: int = 0


@dataclass
class Quote:
    gadget_id: str
    qty: int


@dataclass
class Priced:
    total: float
    note: str | None = None


class Shop(Service):
    @rpc
    async def quote(self, gadget_id: str, qty: int = 1) -> Priced:
        """The price of ``qty`` gadgets."""
        gadget = await Gadget.get(gadget_id)
        if gadget is None:
            raise NotFound(f"no gadget {gadget_id}")
        return Priced(total=gadget.price * qty, note=None if qty < 10 else "bulk")

    @rpc
    async def tags(self, names: list[str]) -> dict[str, int]:
        return {name: len(name) for name in names}


@route("POST", "/checkout", contract=Contract(payload=Quote, response=Priced))
async def checkout(payload: Quote) -> Priced:
    """Check out: the total."""
    gadget = await Gadget.get(payload.gadget_id)
    if gadget is None:
        raise NotFound(f"no gadget {payload.gadget_id}")
    return Priced(total=gadget.price * payload.qty)


_GREET_QUERY = {
    "type": "object",
    "properties": {"times": {"type": "integer"}},
    "required": ["times"],
}


@route("GET", "/greet/{name}", contract=Contract(query=_GREET_QUERY))
async def greet(name: str, query: dict[str, Any]) -> dict[str, str]:
    return {"greeting": " ".join([f"hello {name}"] * query["times"])}


new_brand = map_route(
    "POST",
    "/brands",
    operations=[Operation("Brand", "create", data=lambda ctx: ctx.body)],
    response={"entity": "Brand"},
    name="new_brand",
)

app = App(
    tables=[Brand, Gadget, Blob, Counter],
    services=[Shop],
    routes=[checkout, greet, new_brand],
    database="sqlite:///./data/client-app.db",
)
