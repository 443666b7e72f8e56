"""The shop of tests/auth_rules_shop.py with two routes for the realtime permission tests: a
super user publishes to a record's topic, and a signed-in user subscribes in Python from inside
its request (``Product.subscribe`` acts as that user)."""

from __future__ import annotations

import asyncio
from typing import Any

from charter import App, Contract, route
from tests.auth_rules_shop import ROLES, TABLES, Product, Shop

QUIET = 1.0  # seconds without an event after which /peek stops reading (the current state is
# sent at once; this only ends the reading)


@route("POST", "/publish", contract=Contract(roles=["boss"]))
async def publish(payload: dict[str, Any]) -> str:
    await Product.publish(payload["id"], payload["message"])
    return "published"


@route("GET", "/peek", contract=Contract(roles=True))
async def peek() -> list[dict[str, Any]]:
    """The current records as this request's user's subscription sends them."""
    found: list[dict[str, Any]] = []
    events = Product.subscribe()
    try:
        while True:
            try:
                event = await asyncio.wait_for(anext(events), QUIET)
            except TimeoutError:
                break
            found.append({"type": event.type, "id": event.id, "value": event.value})
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    return found


def build(database: str | None, **options: Any) -> App:
    return App(
        tables=TABLES,
        services=[Shop],
        routes=[publish, peek],
        database=database,
        auth=True,
        roles=ROLES,
        **options,
    )
