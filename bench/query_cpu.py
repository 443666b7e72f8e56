"""CPU per request of the 100,000-row query, in-process, and of each step on its way.

Why: a wrk run says how many requests a server answers, not where its time goes; this says
what parsing, planning, the storage read and a whole request (the ASGI app called directly,
no socket) cost, as CPU time of the whole process (reader threads included). Figures are for
comparing two versions of Charter on one machine, not for RESULTS.md.

    .venv/bin/python bench/query_cpu.py [--rows 100000] [--count 3000] [--query '...']
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import msgspec

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps"), str(HERE.parent)]

from charter_app import Item  # noqa: E402
from run import QUERY_PATH, seed_record  # noqa: E402

from charter import App  # noqa: E402
from charter.query import parse_query_string  # noqa: E402
from charter.query.sql import plan_select  # noqa: E402
from charter.storage.base import INSERT, Change  # noqa: E402


def cpu() -> float:
    return time.process_time()


def per_call(fn: Callable[[], Any], count: int) -> float:
    """Microseconds of CPU per call of ``fn``."""
    for _ in range(min(200, count)):
        fn()
    start = cpu()
    for _ in range(count):
        fn()
    return (cpu() - start) / count * 1e6


async def per_await(fn: Callable[[], Coroutine[Any, Any, Any]], count: int) -> float:
    for _ in range(min(200, count)):
        await fn()
    start = cpu()
    for _ in range(count):
        await fn()
    return (cpu() - start) / count * 1e6


async def seed(app: App, rows: int) -> None:
    storage = app.database
    batch = []
    for i in range(rows):
        record = seed_record(i)
        batch.append(Change(INSERT, "Item", record["id"], msgspec.json.encode(record).decode()))
        if len(batch) == 5000:
            await storage.commit(batch)
            batch = []
    if batch:
        await storage.commit(batch)


async def request(app: App, path: str, query: str) -> bytes:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = False
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, send)
    return b"".join(body)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--query", default=QUERY_PATH.split("?", 1)[1])
    parser.add_argument("--concurrency", type=int, default=64, help="for the concurrent line")
    parser.add_argument("--db", default=str(HERE / ".work" / "query_cpu.db"))
    opts = parser.parse_args()
    fresh = not Path(opts.db).exists()
    Path(opts.db).parent.mkdir(exist_ok=True)
    app = App(tables=[Item], database=f"sqlite:///{opts.db}")
    await app.startup()
    try:
        if fresh:
            await seed(app, opts.rows)
            await app.shutdown()
            app = App(tables=[Item], database=f"sqlite:///{opts.db}")
            await app.startup()  # analysed at open
        text = opts.query
        schema = app.tables["Item"].schema
        storage = app.database
        query = parse_query_string(text)
        rows = msgspec.json.decode(await request(app, "/Item/", text))
        print(f"query: {text} -> {len(rows)} rows")
        parse = per_call(lambda: parse_query_string(text), opts.count)
        plan = per_call(lambda: plan_select(schema, query, catalog=storage.catalog), opts.count)
        print(f"parse (uncached)        {parse:8.1f} us")
        print(f"plan_select (uncached)  {plan:8.1f} us")

        async def search() -> None:
            async for _ in storage.search(schema, query):
                pass

        print(f"storage search          {await per_await(search, opts.count):8.1f} us")
        print(
            f"whole request           "
            f"{await per_await(lambda: request(app, '/Item/', text), opts.count):8.1f} us"
        )

        async def concurrent() -> None:
            await asyncio.gather(*(request(app, "/Item/", text) for _ in range(opts.concurrency)))

        rounds = max(1, opts.count // opts.concurrency)
        many = await per_await(concurrent, rounds) / opts.concurrency
        print(f"whole request, {opts.concurrency:3} at once {many:8.1f} us")
    finally:
        await app.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
