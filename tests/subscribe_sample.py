"""Subscriptions of the Python client generated from tests/client_app.py, against a live
server, through a proxy that cuts every event stream after two events: each event arrives
typed, exactly once, in order. Type-checked with ``mypy --strict`` and run by
tests/test_client_subscribe.py.

    python subscribe_sample.py URL PROXY_URL ADMIN_PASSWORD
    python subscribe_sample.py URL URL ADMIN_PASSWORD expiry   # access tokens of 2 s
    python subscribe_sample.py URL PROXY_URL ADMIN_PASSWORD snapshot   # one stream cut
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

from gadgets import AsyncClient, Client, Event, Gadget, GadgetCreate, GadgetPatch


def check(events: list[Event[Gadget]], first: int, last: int) -> None:
    """A put of the current record, then one patch per write, each once, in order."""
    assert [e.type for e in events] == ["put"] + ["patch"] * (last - first), events
    stocks = [e.value.stock for e in events if e.value is not None]
    assert stocks == list(range(first, last + 1)), stocks
    positions = [e.position for e in events if e.position is not None]
    assert len(positions) == len(events)
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert all(isinstance(e.value, Gadget) and e.id == "kite" for e in events)


def sync_part(url: str, proxy: str, password: str) -> None:
    with Client(url) as writer, Client(proxy) as reader:
        writer.sign_in("admin", password)
        reader.sign_in("admin", password)
        writer.Gadget.put("kite", GadgetCreate(name="Kite", price=12.5, stock=0))
        events: list[Event[Gadget]] = []
        with reader.Gadget.subscribe("kite") as subscription:
            for event in subscription:
                events.append(event)
                if len(events) == 1:  # the current record: now the writes

                    def write() -> None:
                        for n in range(1, 8):
                            writer.Gadget.patch("kite", GadgetPatch(stock=n))

                    threading.Thread(target=write).start()
                if event.value is not None and event.value.stock == 7:
                    break
            assert subscription.connections >= 4, subscription.connections  # cut every 2
            position = subscription.position
        check(events, 0, 7)

        # resuming later from a position: exactly what came after it
        writer.Gadget.patch("kite", GadgetPatch(stock=8))
        with reader.Gadget.subscribe("kite", after=position) as later:
            event = next(later)
            assert event.type == "patch" and event.value is not None and event.value.stock == 8

        # the table: creates and deletes, typed, each once
        seen: list[tuple[str, object]] = []
        with reader.Gadget.subscribe(omit_current=True) as table:
            writer.Gadget.put("a", GadgetCreate(name="A", price=1))
            writer.Gadget.put("b", GadgetCreate(name="B", price=2))
            writer.Gadget.delete("a")
            writer.Gadget.put("c", GadgetCreate(name="C", price=3))
            for event in table:
                seen.append((event.type, event.id))
                if event.id == "c":
                    break
        assert seen == [("put", "a"), ("put", "b"), ("delete", "a"), ("put", "c")], seen


async def async_part(url: str, proxy: str, password: str) -> None:
    async with AsyncClient(url) as writer, AsyncClient(proxy) as reader:
        await writer.sign_in("admin", password)
        await reader.sign_in("admin", password)
        await writer.Gadget.patch("kite", GadgetPatch(stock=10))
        events: list[Event[Gadget]] = []
        task: asyncio.Task[None] | None = None

        async def write() -> None:
            for n in range(11, 18):
                await writer.Gadget.patch("kite", GadgetPatch(stock=n))

        subscription = reader.Gadget.subscribe("kite")
        async with subscription:
            async for event in subscription:
                events.append(event)
                if len(events) == 1:
                    task = asyncio.create_task(write())
                if event.value is not None and event.value.stock == 17:
                    break
        assert task is not None
        await task
        assert subscription.connections >= 4, subscription.connections
        check(events, 10, 17)

        # a query subscription: a record that stops matching leaves (a delete, "leaving")
        toys = reader.Gadget.query().where("kind", "eq", "toy")
        async with reader.Gadget.subscribe(query=toys, omit_current=True) as matching:
            await writer.Gadget.put("yoyo", GadgetCreate(name="Yoyo", price=3, kind="toy"))
            await writer.Gadget.patch("yoyo", GadgetPatch(kind="tool"))
            got = [await anext(matching), await anext(matching)]
        assert [(e.type, e.id, e.leaving) for e in got] == [
            ("put", "yoyo", False),
            ("delete", "yoyo", True),
        ], got


def snapshot_part(url: str, proxy: str, password: str) -> None:
    """The current records share one position: a stream cut among them (after two of three)
    starts over, and the ones already delivered are not repeated."""
    with Client(url) as writer, Client(proxy) as reader:
        writer.sign_in("admin", password)
        reader.sign_in("admin", password)
        for key in ("s1", "s2", "s3"):
            writer.Gadget.put(key, GadgetCreate(name=key, price=1))
        seen: list[tuple[str, object]] = []
        with reader.Gadget.subscribe(prefix="s") as subscription:
            for event in subscription:
                seen.append((event.type, event.id))
                if len(seen) == 3:
                    writer.Gadget.patch("s2", GadgetPatch(stock=1))
                if event.type == "patch":
                    break
            assert subscription.connections == 2, subscription.connections
        assert sorted(seen[:3]) == [("put", "s1"), ("put", "s2"), ("put", "s3")], seen
        assert seen[3:] == [("patch", "s2")], seen


def expiry_part(url: str, password: str) -> None:
    """The server closes a stream when the access token it was opened with expires: the
    client refreshes the tokens and resumes, losing nothing."""
    with Client(url) as writer, Client(url) as reader:
        writer.sign_in("admin", password)
        reader.sign_in("admin", password)
        writer.Gadget.put("clock", GadgetCreate(name="Clock", price=1, stock=0))
        events: list[Event[Gadget]] = []

        def write() -> None:
            for n in range(1, 13):
                time.sleep(0.4)
                writer.Gadget.patch("clock", GadgetPatch(stock=n))

        with reader.Gadget.subscribe("clock") as subscription:
            for event in subscription:
                events.append(event)
                if len(events) == 1:
                    threading.Thread(target=write).start()
                if event.value is not None and event.value.stock == 12:
                    break
            assert subscription.connections >= 3, subscription.connections  # closed, resumed
        stocks = [e.value.stock for e in events if e.value is not None]
        assert stocks == list(range(13)), stocks


if __name__ == "__main__":
    url, proxy, password = sys.argv[1:4]
    if sys.argv[4:] == ["expiry"]:
        expiry_part(url, password)
    elif sys.argv[4:] == ["snapshot"]:
        snapshot_part(url, proxy, password)
    else:
        sync_part(url, proxy, password)
        asyncio.run(async_part(url, proxy, password))
    print("ok")
