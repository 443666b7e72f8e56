"""Charter with a caching table, for bench/caching.py: the plain ``Item`` table of
charter_app.py and ``CachedItem``, the same record shape sourced from ``SeedSource`` (the
seeded rows computed from the id, in-process: the origin is not what is measured, the cache
hit is). Expiration is an hour: every measured read is a hit.
"""

from __future__ import annotations

import os
from typing import Any

from charter import App, Field, Source, Table

CATEGORIES = 10


def seed_record(i: int) -> dict[str, Any]:
    """Row ``i`` as bench/run.py seeds it."""
    return {
        "id": f"item-{i}",
        "name": f"item {i}",
        "category": f"c{i % CATEGORIES}",
        "price": ((i * 7919) % 100_000 + 25) / 100,
        "stock": i % 50,
    }


class SeedSource(Source):
    async def get(self, id: str) -> dict[str, Any] | None:
        prefix, _, number = id.partition("-")
        if prefix != "item" or not number.isdigit():
            return None
        return seed_record(int(number))


class Item(Table):
    id: str = Field(primary_key=True)
    name: str
    category: str = Field(indexed=True)
    price: float = Field(ge=0, indexed=True)
    stock: int = 0


class CachedItem(Table, source=SeedSource, expiration=3600):
    id: str = Field(primary_key=True)
    name: str
    category: str = Field(indexed=True)
    price: float = Field(ge=0, indexed=True)
    stock: int = 0


app = App(
    tables=[Item, CachedItem],
    database=os.environ.get("BENCH_DB", "sqlite:///bench/.work/charter_cache.db"),
)
