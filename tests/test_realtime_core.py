"""The realtime core (issue 12): the event log written with each change, the hub's fan-out, and
backpressure: a subscriber that falls behind is closed with its position and resumes without
loss, and never delays the others. Both backends, in-process (``Table.subscribe``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from charter import App, Field, Table
from charter.realtime import Event, Overflow
from charter.testing import TestClient


class Note(Table):
    id: str = Field(primary_key=True)
    text: str = ""
    n: int = 0


async def _take(events: AsyncIterator[Event], count: int, timeout: float = 10) -> list[Event]:
    out: list[Event] = []

    async def run() -> None:
        async for event in events:
            out.append(event)
            if len(out) == count:
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def _joined(events: AsyncIterator[Event]) -> asyncio.Future[Event]:
    """Start a subscription (it joins the hub on its first step) and give it time to join."""
    first = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(0.1)
    return first


async def test_every_write_has_its_event_in_commit_order(database: str) -> None:
    app = App(tables=[Note], database=database)
    async with TestClient(app) as client:
        events = Note.subscribe(omit_current=True)
        first = await _joined(events)
        for i in range(30):
            await Note.put({"id": f"n{i % 3}", "text": "x", "n": i})
        assert (await client.patch("/Note/n0", json={"text": "patched"})).status_code == 204
        assert (await client.delete("/Note/n1")).status_code == 204
        await Note.publish("n2", {"hello": 1})
        got = [await asyncio.wait_for(first, 10), *await _take(events, 32)]
        await events.aclose()  # type: ignore[attr-defined]
    assert [e.value["n"] for e in got[:30]] == list(range(30))
    assert [e.position for e in got] == sorted(e.position for e in got)
    assert len({e.position for e in got}) == len(got)
    assert (got[30].type, got[30].id, got[30].value["text"]) == ("patch", "n0", "patched")
    assert (got[31].type, got[31].id, got[31].value) == ("delete", "n1", None)
    assert (got[32].type, got[32].id, got[32].value) == ("publish", "n2", {"hello": 1})


async def test_a_failed_write_logs_no_event(database: str) -> None:
    app = App(tables=[Note], database=database)
    async with TestClient(app) as client:
        await Note.put({"id": "a", "n": 1})
        events = Note.subscribe(omit_current=True)
        first = await _joined(events)
        duplicate = await client.post("/Note/", json={"id": "a", "n": 2})
        assert duplicate.status_code == 409
        await Note.put({"id": "b", "n": 3})
        event = await asyncio.wait_for(first, 10)
        await events.aclose()  # type: ignore[attr-defined]
    assert (event.id, event.value["n"]) == ("b", 3)


async def test_a_slow_subscriber_is_closed_with_its_position_and_resumes_without_loss(
    database: str,
) -> None:
    app = App(tables=[Note], database=database, subscriber_buffer=5)
    async with TestClient(app):
        slow = Note.subscribe(omit_current=True)
        fast = Note.subscribe(omit_current=True)
        slow_first = await _joined(slow)
        fast_all = asyncio.ensure_future(_take(fast, 20))
        await asyncio.sleep(0.1)
        for i in range(20):
            await Note.put({"id": f"r{i}", "n": i})
            await asyncio.sleep(0.01)  # paced, so the fast one's queue never holds 5 at once
        delivered = await asyncio.wait_for(slow_first, 10)
        with pytest.raises(Overflow) as closed:
            while True:  # what it still holds, then the overflow
                await asyncio.wait_for(slow.__anext__(), 10)
        # The fast one was not held back, and got everything.
        assert [e.value["n"] for e in await fast_all] == list(range(20))
        position = closed.value.position
        assert position is not None and position >= delivered.position  # type: ignore[operator]
        resumed = Note.subscribe(after=position)
        rest = await _take(resumed, 20 - (position - delivered.position) - 1)  # type: ignore[operator]
        await resumed.aclose()  # type: ignore[attr-defined]
        seen = [delivered.value["n"]] + [e.value["n"] for e in rest]
    assert seen[0] == 0
    assert seen[-1] == 19
    assert sorted(set(seen)) == list(range(20))  # nothing lost across the overflow


async def test_app_events_hears_every_logged_event(database: str) -> None:
    app = App(tables=[Note], database=database)
    heard: list[dict[str, Any]] = []
    app.events.subscribe("Note/", heard.append)
    async with TestClient(app):
        await Note.put({"id": "a", "n": 1})
        await Note.publish("a", {"ping": True})
        for _ in range(100):
            if len(heard) == 2:
                break
            await asyncio.sleep(0.02)
    assert [(e["type"], e["id"]) for e in heard] == [("put", "a"), ("publish", "a")]
    assert heard[0]["position"] < heard[1]["position"]
    assert app.events.format_sse(heard[0]).startswith(b"id: %d\n" % heard[0]["position"])


async def test_retention_prunes_and_an_old_position_gets_a_reset(database: str) -> None:
    app = App(tables=[Note], database=database, event_retention_count=3)
    async with TestClient(app):
        for i in range(10):
            await Note.put({"id": "a", "n": i})
        await asyncio.sleep(0.1)
        assert await app.hub.prune() >= 7
        events = Note.subscribe("a", after=1)
        first = await _take(events, 2)
        await events.aclose()  # type: ignore[attr-defined]
    assert first[0].type == "reset"
    assert (first[1].type, first[1].value["n"]) == ("put", 9)  # then the current record


async def test_concurrent_writers_never_leave_a_gap_behind_the_hub(database: str) -> None:
    """Positions follow commit order: the hub reads while hundreds of writes (lone ones and
    transactions of two) commit concurrently, and still hands out every logged event, each
    once (a position taken before a commit that lands later would be skipped by a reader
    that had passed it)."""
    app = App(tables=[Note], database=database, subscriber_buffer=10_000)
    rounds, per_round = 4, 200
    async with TestClient(app) as client:
        events = Note.subscribe(omit_current=True)
        first = await _joined(events)

        async def write(i: int) -> list[int]:
            if i % 3 == 0:
                response = await client.post("/Note/", json={"id": f"c{i}", "n": i})
                assert response.status_code == 201
                return [i]
            if i % 3 == 1:  # two records in one transaction: several statements
                async with app.transaction():
                    await Note.put({"id": f"t{i}", "n": i})
                    await Note.put({"id": f"u{i}", "n": -i})
                return [i, -i]
            await Note.put({"id": f"c{i % 40}", "n": i})
            return [i]

        written: list[int] = []
        for r in range(rounds):
            batch = range(r * per_round, (r + 1) * per_round)
            for values in await asyncio.gather(*(write(i) for i in batch)):
                written += values
        got = [await asyncio.wait_for(first, 10), *await _take(events, len(written) - 1)]
        await events.aclose()  # type: ignore[attr-defined]
        logged = await app.database.read_events(0, 10_000)
    assert [e.position for e in got] == sorted({e.position for e in got})
    assert {e.position for e in got} == {e.position for e in logged if e.table == "Note"}
    assert sorted(e.value["n"] for e in got) == sorted(written)


async def test_a_bus_listener_added_while_running_hears_only_what_commits_after(
    database: str,
) -> None:
    app = App(tables=[Note], database=database)
    heard: list[dict[str, Any]] = []
    async with TestClient(app):
        for i in range(5):  # nobody listens: the hub does not read these
            await Note.put({"id": f"old{i}", "n": i})
        app.events.subscribe("Note/", heard.append)
        await asyncio.sleep(0.1)
        await Note.put({"id": "new", "n": 99})
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
    assert [e["id"] for e in heard] == ["new"]


async def test_a_write_during_the_current_read_is_not_sent_twice(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record written after the subscription joined but before its current records were read
    goes out once, as a current record: its live event, handed out later, is no news."""
    from charter.realtime import stream

    read_current = stream._current

    async def written_meanwhile(*args: Any) -> Any:
        await Note.put({"id": "a", "text": "v2"})  # a live event for this subscriber
        await asyncio.sleep(0.2)  # the hub has it queued before the read below
        return await read_current(*args)

    app = App(tables=[Note], database=database)
    async with TestClient(app):
        await Note.put({"id": "a", "text": "v1"})
        monkeypatch.setattr(stream, "_current", written_meanwhile)
        events = Note.subscribe()
        first = await asyncio.wait_for(events.__anext__(), 10)
        await Note.put({"id": "a", "text": "v3"})
        after = await _take(events, 1)
        await events.aclose()  # type: ignore[attr-defined]
    assert [(e.type, e.value["text"]) for e in [first, *after]] == [("put", "v2"), ("put", "v3")]
