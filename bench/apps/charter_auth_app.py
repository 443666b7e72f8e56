"""Charter with sign-in, for bench/auth.py: the same Item table as charter_app.py, and a Doc
table whose row rule lets a user read only the documents it owns.

``BENCH_AUTH=off`` serves the same tables with auth off (the baseline); ``python
charter_auth_app.py setup`` creates the bench users and, with ``BENCH_DOCS=N``, seeds N Doc rows
(owners u0..u99, 1% each) through the Table API.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from charter import App, Condition, Field, Grant, Role, Table, User, auth

READER_PASSWORD = "bench-reader-password"
OWNERS = 100


class Item(Table):
    id: str = Field(primary_key=True)
    name: str
    category: str = Field(indexed=True)
    price: float = Field(ge=0, indexed=True)
    stock: int = 0


class Doc(Table):
    id: str = Field(primary_key=True)
    owner: str = Field(indexed=True)
    title: str = ""

    @classmethod
    def read_filter(cls, user: User | None) -> Any:
        """A user reads its own documents only (compiled into the query's SQL)."""
        return Condition("owner", "equals", user.username if user else "")


app = App(
    tables=[Item, Doc],
    auth=os.environ.get("BENCH_AUTH", "on") != "off",
    roles=[Role("reader", tables={"Item": Grant(read=True), "Doc": Grant(read=True)})],
    database=os.environ.get("BENCH_DB", "sqlite:///bench/.work/charter_auth.db"),
)


async def setup() -> None:
    """The bench users (``reader``, ``u7`` with role reader; ``root`` a super user) and the
    Doc rows; run once on the database before the servers start."""
    for name in ("reader", "u7"):
        await auth.add_user(app, name, READER_PASSWORD, role="reader")
    await auth.add_user(app, "root", READER_PASSWORD, super_user=True)
    docs = int(os.environ.get("BENCH_DOCS", "0"))
    for start in range(0, docs, 2000):
        async with app.transaction():
            for i in range(start, min(start + 2000, docs)):
                await Doc.post({"id": f"doc-{i}", "owner": f"u{i % OWNERS}", "title": f"d{i}"})
    await app.shutdown()


if __name__ == "__main__" and sys.argv[1:] == ["setup"]:
    asyncio.run(setup())
