"""Caching tables (SPEC section 10) against a real origin: a small HTTP API on loopback
(``tests/origin_server.py``) that can be slow, failing, hanging, refusing or flapping. Both
backends, in-process (the async ``TestClient`` and the Table API)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from charter import App, CharterError, Field, Source, Table
from charter.realtime import Event
from charter.sources import CacheEntry
from charter.testing import TestClient
from tests.origin_server import Origin, OriginApi


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    server.records["paris"] = {"id": "paris", "temp": 21.5}
    yield server
    server.close()


def weather(source: Source, **options: Any) -> type[Table]:
    """A new caching table class named Weather over ``source``."""

    class Weather(Table, source=source, name="Weather", **options):
        id: str = Field(primary_key=True)
        temp: float = 0
        note: str = ""

    return Weather


def error_of(response: Any) -> tuple[int, str]:
    body = response.json()["error"]
    assert body["status"] == response.status_code
    return response.status_code, body["code"]


async def test_a_miss_loads_from_the_source_stores_and_serves(
    origin: Origin, database: str
) -> None:
    Weather = weather(OriginApi(origin.url), expiration=60)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        first = await client.get("/Weather/paris")
        assert first.status_code == 200
        assert first.json() == {"id": "paris", "temp": 21.5, "note": ""}
        again = await client.get("/Weather/paris")
        assert again.json() == first.json()
        assert again.headers["etag"] == first.headers["etag"]
        assert origin.gets("paris") == 1  # the second read was a hit
        record = await Weather.get("paris")
        assert record is not None and not record.was_loaded_from_source()
        origin.records["lyon"] = {"id": "lyon", "temp": 18}
        loaded = await Weather.get("lyon")
        assert loaded is not None and loaded.was_loaded_from_source()
        assert loaded.temp == 18.0
        # What is cached can be queried (the collection answers from the cache).
        listed = await client.get("/Weather/?sort(id)")
        assert [r["id"] for r in listed.json()] == ["lyon", "paris"]


async def test_an_expired_record_is_loaded_again(origin: Origin, database: str) -> None:
    Weather = weather(OriginApi(origin.url), expiration=0.3)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        assert (await client.get("/Weather/paris")).json()["temp"] == 21.5
        origin.records["paris"] = {"id": "paris", "temp": 25.0}
        assert (await client.get("/Weather/paris")).json()["temp"] == 21.5  # still fresh
        await asyncio.sleep(0.4)
        assert (await client.get("/Weather/paris")).json()["temp"] == 25.0
        assert origin.gets("paris") == 2


async def test_none_from_the_source_is_404_and_not_cached(origin: Origin, database: str) -> None:
    Weather = weather(OriginApi(origin.url), expiration=60)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        for _ in range(2):
            missing = await client.get("/Weather/atlantis")
            assert error_of(missing) == (404, "NOT_FOUND")
        assert origin.gets("atlantis") == 2
        assert await Weather.get("atlantis") is None


async def test_origin_failures_are_502_and_504_and_never_cached(
    origin: Origin, database: str
) -> None:
    Weather = weather(OriginApi(origin.url), expiration=60, source_timeout=0.3)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        origin.mode = "fail"
        assert error_of(await client.get("/Weather/paris")) == (502, "UPSTREAM_FAILED")
        origin.mode = "hang"
        assert error_of(await client.get("/Weather/paris")) == (504, "UPSTREAM_TIMEOUT")
        origin.mode = "ok"
        origin.delay = 0.5  # slow: past the timeout too
        assert error_of(await client.get("/Weather/paris")) == (504, "UPSTREAM_TIMEOUT")
        origin.delay = 0
        assert (await client.get("/Weather/paris")).status_code == 200  # nothing was cached
        assert origin.gets("paris") == 4


async def test_a_flapping_origin_fails_then_serves(origin: Origin, database: str) -> None:
    Weather = weather(OriginApi(origin.url), expiration=0.05)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        origin.mode = "flap"
        statuses = []
        for _ in range(4):
            statuses.append((await client.get("/Weather/paris")).status_code)
            await asyncio.sleep(0.06)  # expired again
        assert statuses == [502, 200, 502, 200]


async def test_a_closed_origin_is_502(database: str) -> None:
    origin = Origin()
    origin.refuse()
    Weather = weather(OriginApi(origin.url), expiration=60)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        assert error_of(await client.get("/Weather/paris")) == (502, "UPSTREAM_FAILED")
        with pytest.raises(CharterError) as raised:
            await Weather.get("paris")
        assert getattr(raised.value, "status_code", None) == 502


async def test_concurrent_misses_for_one_id_make_one_origin_call(
    origin: Origin, database: str
) -> None:
    origin.delay = 0.3  # every miss arrives while the first load is still at the origin
    Weather = weather(OriginApi(origin.url), expiration=60)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        answers = await asyncio.gather(*(client.get("/Weather/paris") for _ in range(1000)))
        assert {a.status_code for a in answers} == {200}
        assert {a.json()["temp"] for a in answers} == {21.5}
        assert origin.gets("paris") == 1
        origin.records["nice"] = {"id": "nice", "temp": 24}
        records = await asyncio.gather(*(Weather.get("nice") for _ in range(200)))
        assert {r.temp for r in records if r is not None} == {24.0}
        assert origin.gets("nice") == 1


class StaleOk(OriginApi):
    def allow_stale_while_revalidate(self, entry: CacheEntry, id: Any) -> bool:
        return bool(entry.value["temp"] < 100)


async def test_stale_while_revalidate_serves_at_once_and_refreshes_once(
    origin: Origin, database: str
) -> None:
    Weather = weather(StaleOk(origin.url), expiration=0.2)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        assert (await client.get("/Weather/paris")).json()["temp"] == 21.5
        await asyncio.sleep(0.3)
        origin.records["paris"] = {"id": "paris", "temp": 30.0}
        origin.delay = 0.5
        started = asyncio.get_running_loop().time()
        stale = await asyncio.gather(*(client.get("/Weather/paris") for _ in range(50)))
        assert asyncio.get_running_loop().time() - started < 0.45  # not waiting for the origin
        assert {r.json()["temp"] for r in stale} == {21.5}
        await asyncio.sleep(0.8)  # the one background refresh has landed
        assert (await client.get("/Weather/paris")).json()["temp"] == 30.0
        assert origin.gets("paris") == 2


async def test_a_failed_background_refresh_stores_nothing(origin: Origin, database: str) -> None:
    Weather = weather(StaleOk(origin.url), expiration=0.2)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        assert (await client.get("/Weather/paris")).status_code == 200
        await asyncio.sleep(0.3)
        origin.mode = "fail"
        assert (await client.get("/Weather/paris")).json()["temp"] == 21.5
        await asyncio.sleep(0.2)
        assert (await client.get("/Weather/paris")).json()["temp"] == 21.5  # still stale


async def test_invalidate_makes_the_next_read_load_again(origin: Origin, database: str) -> None:
    Weather = weather(OriginApi(origin.url), expiration=3600)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        await client.get("/Weather/paris")
        origin.records["paris"] = {"id": "paris", "temp": 5.0}
        await Weather.invalidate("paris")
        assert (await client.get("/Weather/paris")).json()["temp"] == 5.0
        assert origin.gets("paris") == 2


@pytest.mark.parametrize("expiration", [3600, None])
async def test_invalidate_keeps_a_stale_copy_that_is_never_served_as_fresh(
    origin: Origin, database: str, expiration: float | None
) -> None:
    Weather = weather(OriginApi(origin.url), expiration=expiration)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        first = await client.get("/Weather/paris")
        origin.records["paris"] = {"id": "paris", "temp": 5.0}
        await Weather.invalidate("paris")
        # Kept, as it was: queries list it (they never call the origin), version and all.
        assert (await client.get("/Weather/")).json() == [first.json()]
        assert origin.gets("paris") == 1
        # The Table API's next read calls the origin, as REST's does.
        record = await Weather.get("paris")
        assert record is not None and record.was_loaded_from_source() and record.temp == 5.0
        assert origin.gets("paris") == 2
        again = await client.get("/Weather/paris")  # the refresh cleared the mark: a hit
        assert again.json()["temp"] == 5.0 and again.headers["etag"] != first.headers["etag"]
        assert origin.gets("paris") == 2
        # Twice over: one origin call, once.
        await Weather.invalidate("paris")
        await Weather.invalidate("paris")
        assert (await client.get("/Weather/paris")).status_code == 200
        assert (await client.get("/Weather/paris")).status_code == 200
        assert origin.gets("paris") == 3
        # An id that is not cached: nothing to do (no record, no origin call).
        await Weather.invalidate("lyon")
        assert origin.gets("lyon") == 0
        assert [r["id"] for r in (await client.get("/Weather/")).json()] == ["paris"]


async def test_a_write_after_invalidate_clears_the_mark(origin: Origin, database: str) -> None:
    Weather = weather(OriginApi(origin.url), expiration=3600)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        await client.get("/Weather/paris")
        await Weather.invalidate("paris")
        put = await client.put("/Weather/paris", json={"temp": 8.0})
        assert put.status_code == 204
        assert (await client.get("/Weather/paris")).json()["temp"] == 8.0
        assert origin.gets("paris") == 1  # the write is newer than the mark: fresh


async def test_an_invalidation_is_in_the_database_for_every_worker(
    origin: Origin, database: str
) -> None:
    """Another app on the same database (its own connections and caches, as another worker
    process has) invalidates; this one's next read calls the origin."""
    Weather = weather(OriginApi(origin.url), expiration=3600)
    Elsewhere = weather(OriginApi(origin.url), expiration=3600)
    async with (
        TestClient(App(tables=[Weather], database=database)) as client,
        TestClient(App(tables=[Elsewhere], database=database)),
    ):
        assert (await client.get("/Weather/paris")).status_code == 200
        assert (await client.get("/Weather/paris")).status_code == 200
        assert origin.gets("paris") == 1
        origin.records["paris"] = {"id": "paris", "temp": 5.0}
        await Elsewhere.invalidate("paris")
        assert (await client.get("/Weather/paris")).json()["temp"] == 5.0
        assert origin.gets("paris") == 2


async def test_a_table_that_becomes_a_caching_one_gets_the_stale_mark(
    origin: Origin, database: str
) -> None:
    """A table stored before it had a source (or before the mark existed) is given it at
    start; SQLite's rebuild for a new index keeps the marks."""

    class Weather(Table, name="Weather"):
        id: str = Field(primary_key=True)
        temp: float = 0
        note: str = ""

    async with TestClient(App(tables=[Weather], database=database)):
        await Weather.put({"id": "paris", "temp": 1.0})
    Cached = weather(OriginApi(origin.url), expiration=3600)
    async with TestClient(App(tables=[Cached], database=database)) as client:
        assert (await client.get("/Weather/paris")).json()["temp"] == 1.0  # fresh: stored
        await Cached.invalidate("paris")
    source = OriginApi(origin.url)

    class Indexed(Table, source=source, expiration=3600, name="Weather"):
        id: str = Field(primary_key=True)
        temp: float = Field(0, indexed=True)
        note: str = ""

    async with TestClient(App(tables=[Indexed], database=database)) as client:
        assert (await client.get("/Weather/paris")).json()["temp"] == 21.5  # still stale
        assert origin.gets("paris") == 1


class InvalidatedOk(OriginApi):
    """Serves an invalidated copy while it refreshes (an expired one, not)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.entries: list[CacheEntry] = []

    def allow_stale_while_revalidate(self, entry: CacheEntry, id: Any) -> bool:
        self.entries.append(entry)
        return entry.invalidated


async def test_an_invalidated_record_may_be_served_stale_while_it_refreshes(
    origin: Origin, database: str
) -> None:
    source = InvalidatedOk(origin.url)
    Weather = weather(source, expiration=3600)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        first = await client.get("/Weather/paris")
        origin.records["paris"] = {"id": "paris", "temp": 30.0}
        origin.delay = 0.5
        await Weather.invalidate("paris")
        started = asyncio.get_running_loop().time()
        stale = await asyncio.gather(*(client.get("/Weather/paris") for _ in range(50)))
        assert asyncio.get_running_loop().time() - started < 0.45  # not waiting for the origin
        assert {r.json()["temp"] for r in stale} == {21.5}
        assert {r.headers["etag"] for r in stale} == {first.headers["etag"]}  # as it was
        entry = source.entries[0]
        assert (entry.id, entry.value["temp"], entry.invalidated) == ("paris", 21.5, True)
        assert entry.loaded == int(first.headers["etag"].strip('"'))
        assert entry.loaded <= entry.expires < entry.loaded + 3_600_000
        await asyncio.sleep(0.8)  # the one background refresh has landed
        assert (await client.get("/Weather/paris")).json()["temp"] == 30.0
        assert origin.gets("paris") == 2


async def test_an_expired_record_is_not_an_invalidated_one(origin: Origin, database: str) -> None:
    source = InvalidatedOk(origin.url)
    Weather = weather(source, expiration=0.2)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        assert (await client.get("/Weather/paris")).status_code == 200
        await asyncio.sleep(0.3)
        origin.records["paris"] = {"id": "paris", "temp": 30.0}
        assert (await client.get("/Weather/paris")).json()["temp"] == 30.0  # waited: not served
        assert [e.invalidated for e in source.entries] == [False]


async def test_writes_pass_through_to_the_source(origin: Origin, database: str) -> None:
    Weather = weather(OriginApi(origin.url), expiration=3600)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        put = await client.put("/Weather/oslo", json={"id": "oslo", "temp": -3.0})
        assert put.status_code == 204
        assert origin.records["oslo"] == {"id": "oslo", "temp": -3.0, "note": ""}
        patched = await client.patch("/Weather/paris", json={"note": "sunny"})  # not cached yet
        assert patched.status_code == 204
        assert origin.records["paris"]["note"] == "sunny"
        assert (await client.get("/Weather/paris")).json()["note"] == "sunny"
        await Weather.put({"id": "rome", "temp": 28.0})
        assert origin.records["rome"]["temp"] == 28.0
        assert (await client.delete("/Weather/oslo")).status_code == 204
        assert "oslo" not in origin.records
        assert await Weather.delete("rome")
        assert "rome" not in origin.records
        # A failed source write stores nothing.
        origin.mode = "fail"
        failed = await client.put("/Weather/paris", json={"id": "paris", "temp": 99.0})
        assert error_of(failed) == (502, "UPSTREAM_FAILED")
        assert error_of(await client.delete("/Weather/paris")) == (502, "UPSTREAM_FAILED")
        origin.mode = "ok"
        assert (await client.get("/Weather/paris")).json()["temp"] == 21.5
        assert origin.records["paris"]["temp"] == 21.5


class ReadOnlyApi(OriginApi):
    put = Source.put  # type: ignore[assignment]
    delete = Source.delete  # type: ignore[assignment]


async def test_a_source_without_writes_keeps_writes_in_the_cache(
    origin: Origin, database: str
) -> None:
    Weather = weather(ReadOnlyApi(origin.url), expiration=3600)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        assert (await client.put("/Weather/oslo", json={"temp": 1.0})).status_code == 204
        assert (await client.get("/Weather/oslo")).json()["temp"] == 1.0
        assert "oslo" not in origin.records
        assert origin.gets("oslo") == 0


async def test_eviction_removes_old_records(origin: Origin, database: str) -> None:
    Weather = weather(OriginApi(origin.url), expiration=0.2, eviction=0.4, scan_interval=0.2)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        await client.get("/Weather/paris")
        assert [r["id"] for r in (await client.get("/Weather/")).json()] == ["paris"]
        await asyncio.sleep(1.2)
        assert (await client.get("/Weather/")).json() == []  # evicted
    # The sweep stopped with the app: nothing of it is left running.
    left = [repr(t.get_coro()) for t in asyncio.all_tasks()]
    assert not [t for t in left if "sweep" in t or "Caches._lead" in t], left


class Feed(OriginApi):
    """A source that tells its changes: ids and (id, record) pairs put on a queue."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.changes: asyncio.Queue[Any] = asyncio.Queue()

    async def subscribe(self) -> AsyncIterator[Any]:  # type: ignore[override]
        while True:
            yield await self.changes.get()


async def test_a_subscribed_source_refreshes_and_invalidates_in_real_time(
    origin: Origin, database: str
) -> None:
    feed = Feed(origin.url)
    Weather = weather(feed, expiration=3600)
    app = App(tables=[Weather], database=database)
    async with TestClient(app) as client:
        await client.get("/Weather/paris")
        events: AsyncIterator[Event] = Weather.subscribe("paris", omit_current=True)
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.2)
        feed.changes.put_nowait(("paris", {"id": "paris", "temp": 12.0}))
        event = await asyncio.wait_for(first, 10)  # a refresh from the source is an event
        assert (event.type, event.value["temp"]) == ("put", 12.0)
        assert (await client.get("/Weather/paris")).json()["temp"] == 12.0
        origin.records["paris"] = {"id": "paris", "temp": 13.0}
        feed.changes.put_nowait("paris")  # an id: the cached copy is marked stale
        for _ in range(50):
            await asyncio.sleep(0.05)
            if (await client.get("/Weather/paris")).json()["temp"] == 13.0:
                break
        assert (await client.get("/Weather/paris")).json()["temp"] == 13.0
        origin.records["paris"] = {"id": "paris", "temp": 14.0}
        feed.changes.put_nowait("paris")  # marked stale, kept: queries still list it
        for _ in range(50):
            await asyncio.sleep(0.05)
            row = await app.database.fetch("Weather", "paris")
            if row is None or row.stale:
                break
        assert row is not None and row.stale
        assert [r["temp"] for r in (await client.get("/Weather/")).json()] == [13.0]
        assert (await client.get("/Weather/paris")).json()["temp"] == 14.0
        await events.aclose()
        assert origin.gets("paris") == 3


async def test_a_load_is_an_event_for_subscribers(origin: Origin, database: str) -> None:
    Weather = weather(OriginApi(origin.url), expiration=60)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        events: AsyncIterator[Event] = Weather.subscribe("paris", omit_current=True)
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.2)
        await client.get("/Weather/paris")
        event = await asyncio.wait_for(first, 10)
        await events.aclose()
        assert (event.type, event.id, event.value["temp"]) == ("put", "paris", 21.5)


async def test_reads_keep_every_permission_rule(origin: Origin, database: str) -> None:
    from charter import Condition, Grant, Role

    origin.records["paris"]["secret"] = "s3"
    origin.records["lyon"] = {"id": "lyon", "temp": 18.0, "secret": "s4"}
    origin.records["rome"] = {"id": "rome", "temp": 31.0, "secret": "s5"}

    class Guarded(Table, source=OriginApi(origin.url), expiration=60):
        id: str = Field(primary_key=True)
        temp: float = 0
        secret: str = Field(default="", returned=False)

        def allow_read(self, user: Any) -> bool:
            return bool(self.get_id() != "lyon")

        @classmethod
        def read_filter(cls, user: Any) -> Any:
            return Condition("temp", "less_than", 30)

    reader = Role("reader", tables={"Guarded": Grant(read=True)})
    app = App(tables=[Guarded], database=database, auth=True, roles=[reader])
    async with TestClient(app) as client:
        anonymous = await client.get("/Guarded/paris")
        assert anonymous.status_code in (401, 403)
        assert origin.gets("paris") == 0  # no right to read: no origin call either
        await app.directory.add_user("ann", "a-long-password-1", role="reader")
        auth = ("ann", "a-long-password-1")
        seen = await client.get("/Guarded/paris", auth=auth)
        assert seen.json() == {"id": "paris", "temp": 21.5}  # hidden field not returned
        assert error_of(await client.get("/Guarded/lyon", auth=auth)) == (403, "FORBIDDEN")
        # Loaded from the origin, then outside the reader's row rule: as if absent.
        rome = await client.get("/Guarded/rome", auth=auth)
        assert error_of(rome) == (404, "NOT_FOUND"), rome.text
        assert origin.gets("rome") == 1
        listed = await client.get("/Guarded/?sort(id)", auth=auth)
        assert [r["id"] for r in listed.json()] == ["paris"]  # the cached ones it may read


def test_caching_options_are_checked_at_declaration() -> None:
    with pytest.raises(TypeError, match="needs source="):

        class NoSource(Table, expiration=60):
            id: str = Field(primary_key=True)

    with pytest.raises(TypeError, match="Source"):

        class NotASource(Table, source=dict):
            id: str = Field(primary_key=True)

    with pytest.raises(ValueError, match="above 0"):

        class Negative(Table, source=OriginApi("http://x"), expiration=-1):
            id: str = Field(primary_key=True)

    with pytest.raises(TypeError, match="needs eviction="):

        class NoSweep(Table, source=OriginApi("http://x"), scan_interval=5):
            id: str = Field(primary_key=True)

    with pytest.raises(ValueError, match="not be shorter"):

        class Early(Table, source=OriginApi("http://x"), expiration=60, eviction=10):
            id: str = Field(primary_key=True)

    with pytest.raises(TypeError, match="must implement"):

        class Empty(Source):
            pass

        class NoGet(Table, source=Empty):
            id: str = Field(primary_key=True)

    with pytest.raises(CharterError, match="audit"):

        class Audited(Table, audit=True):
            id: str = Field(primary_key=True)


async def test_invalidate_on_a_plain_table_is_refused(database: str) -> None:
    class Plain(Table):
        id: str = Field(primary_key=True)

    async with TestClient(App(tables=[Plain], database=database)):
        with pytest.raises(CharterError, match="not a caching table"):
            await Plain.invalidate("x")


async def test_a_record_gone_at_the_origin_is_dropped_when_it_expires(
    origin: Origin, database: str
) -> None:
    Weather = weather(OriginApi(origin.url), expiration=0.2)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        assert (await client.get("/Weather/paris")).status_code == 200
        events: AsyncIterator[Event] = Weather.subscribe("paris", omit_current=True)
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.3)
        del origin.records["paris"]
        assert error_of(await client.get("/Weather/paris")) == (404, "NOT_FOUND")
        event = await asyncio.wait_for(first, 10)  # subscribers learn it is gone
        await events.aclose()
        assert (event.type, event.id) == ("delete", "paris")
        assert (await client.get("/Weather/")).json() == []


async def test_what_the_source_returns_is_checked(origin: Origin, database: str) -> None:
    origin.records["bad"] = {"id": "bad", "temp": "hot"}
    origin.records["other"] = {"id": "not-other", "temp": 1.0}
    origin.records["extra"] = {"id": "extra", "temp": 2.0, "humidity": 80}
    Weather = weather(OriginApi(origin.url), expiration=60)
    async with TestClient(App(tables=[Weather], database=database)) as client:
        assert error_of(await client.get("/Weather/bad")) == (502, "UPSTREAM_FAILED")
        assert error_of(await client.get("/Weather/other")) == (502, "UPSTREAM_FAILED")
        extra = await client.get("/Weather/extra")  # undeclared attributes are left out
        assert extra.json() == {"id": "extra", "temp": 2.0, "note": ""}
        assert (await client.get("/Weather/?sort(id)")).json() == [extra.json()]


async def test_openapi_lists_the_upstream_errors_of_a_caching_table(
    origin: Origin, database: str
) -> None:
    class Plain(Table):
        id: str = Field(primary_key=True)

    Weather = weather(OriginApi(origin.url), expiration=60)
    async with TestClient(App(tables=[Weather, Plain], database=database)) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        for verb in ("get", "put", "patch", "delete"):
            responses = paths["/Weather/{id}"][verb]["responses"]
            assert {"502", "504"} <= set(responses), verb
        assert "502" not in paths["/Plain/{id}"]["get"]["responses"]


async def test_callers_without_the_rights_cause_no_origin_call(
    origin: Origin, database: str
) -> None:
    from charter import Grant, Operation, Role, map_route

    Weather = weather(OriginApi(origin.url), expiration=60)
    update = map_route(
        "POST",
        "/upd/{id}",
        roles="unauthenticated",
        operations=[
            Operation("Weather", "update", where=lambda ctx: {"id": ctx.params["id"]},
                      data={"temp": 5.0})
        ],
    )  # fmt: skip
    delete = map_route(
        "POST",
        "/del/{id}",
        roles="unauthenticated",
        operations=[Operation("Weather", "delete", where=lambda ctx: {"id": ctx.params["id"]})],
    )
    writer = Role("writer", tables={"Weather": Grant(update=True, delete=True)})
    app = App(
        tables=[Weather], routes=[update, delete], database=database, auth=True, roles=[writer]
    )
    async with TestClient(app) as client:
        anonymous = await client.post("/upd/paris", json={})
        assert anonymous.status_code == 401
        assert (await client.post("/del/paris", json={})).status_code == 401
        assert origin.gets("paris") == 0
        await app.directory.add_user("wes", "a-long-password-1", role="writer")
        auth = ("wes", "a-long-password-1")
        # Without the read right, a write of a caching table is refused before any load: a
        # write needs the record, and the record may only come from the origin.
        patched = await client.patch("/Weather/paris", json={"temp": 3.0}, auth=auth)
        assert error_of(patched) == (403, "FORBIDDEN")
        assert error_of(await client.delete("/Weather/paris", auth=auth)) == (403, "FORBIDDEN")
        assert origin.gets("paris") == 0
        assert origin.records["paris"]["temp"] == 21.5


async def test_a_role_that_may_only_insert_never_overwrites_the_origin(
    origin: Origin, database: str
) -> None:
    from charter import Grant, Role

    class Weather(Table, source=OriginApi(origin.url), expiration=60):
        id: str = Field(primary_key=True)
        temp: float = 0

        def allow_update(self, user: Any) -> bool:
            return False

    inserter = Role("inserter", tables={"Weather": Grant(read=True, insert=True)})
    app = App(tables=[Weather], database=database, auth=True, roles=[inserter])
    async with TestClient(app) as client:
        await app.directory.add_user("ivy", "a-long-password-1", role="inserter")
        auth = ("ivy", "a-long-password-1")
        # Only at the origin (not cached): a PUT is an update, refused.
        put = await client.put("/Weather/paris", json={"id": "paris", "temp": -99.0}, auth=auth)
        assert put.status_code == 403, put.text
        assert origin.records["paris"]["temp"] == 21.5
        # A POST of an id the origin has is a 409; nothing is stored in its place.
        origin.records["lyon"] = {"id": "lyon", "temp": 18.0}
        post = await client.post("/Weather/", json={"id": "lyon", "temp": -1.0}, auth=auth)
        assert error_of(post) == (409, "CONFLICT")
        assert (await client.get("/Weather/lyon", auth=auth)).json()["temp"] == 18.0
        assert origin.records["lyon"]["temp"] == 18.0
        # A POST of a new id creates it at the origin too (writes pass through).
        created = await client.post("/Weather/", json={"id": "oslo", "temp": 2.0}, auth=auth)
        assert created.status_code == 201, created.text
        assert origin.records["oslo"] == {"id": "oslo", "temp": 2.0}


async def test_a_transaction_reads_its_own_writes_of_a_caching_table(
    origin: Origin, database: str
) -> None:
    Weather = weather(OriginApi(origin.url), expiration=600)
    app = App(tables=[Weather], database=database)
    async with TestClient(app) as client:
        async with app.transaction():
            await Weather.put({"id": "paris", "temp": 42.0, "note": "mine"})
            seen = await Weather.get("paris")
            assert seen is not None and (seen.temp, seen.note) == (42.0, "mine")
            await Weather.patch("paris", {"note": "patched"})
            assert not (await Weather.get("paris")).was_loaded_from_source()
        assert origin.gets("paris") == 0  # the staged write was not taken for an expired one
        stored = (await client.get("/Weather/paris")).json()
        assert stored == {"id": "paris", "temp": 42.0, "note": "patched"}
        assert origin.records["paris"] == stored


async def test_writes_reach_the_origin_once_at_commit_and_never_when_rolled_back(
    origin: Origin, database: str
) -> None:
    from charter import Operation, map_route
    from charter.errors import UpstreamFailed

    Weather = weather(OriginApi(origin.url), expiration=600)

    class Log(Table):
        id: str = Field(primary_key=True)
        n: int = Field(default=0, ge=0)

    atomic = map_route(
        "POST",
        "/set",
        atomic=True,
        operations=[
            Operation("Weather", "upsert", data={"id": "paris", "temp": 99.0}),
            Operation("Log", "create", data={"id": "l", "n": -1}),  # 422: the route fails
        ],
    )
    app = App(tables=[Weather, Log], routes=[atomic], database=database)
    async with TestClient(app) as client:
        assert (await client.post("/set", json={})).status_code == 422
        assert origin.records["paris"]["temp"] == 21.5  # atomic: no trace at the origin either
        async with app.transaction():
            with pytest.raises(RuntimeError):
                async with app.transaction():  # a savepoint
                    await Weather.put({"id": "paris", "temp": 98.0})
                    raise RuntimeError("undo")
            await Weather.put({"id": "oslo", "temp": 1.0})
            await Weather.patch("oslo", {"note": "twice"})
            assert "oslo" not in origin.records  # not before the commit
        assert origin.records["paris"]["temp"] == 21.5
        assert origin.records["oslo"] == {"id": "oslo", "temp": 1.0, "note": "twice"}
        assert origin.calls[("PUT", "oslo")] == 1  # the record as the transaction left it, once
        # An origin failure at commit stores nothing, the other tables' writes included.
        origin.mode = "fail"
        with pytest.raises(UpstreamFailed):
            async with app.transaction():
                await Log.put({"id": "kept?", "n": 1})
                await Weather.put({"id": "rome", "temp": 3.0})
        origin.mode = "ok"
        assert await Log.get("kept?") is None
        assert error_of(await client.get("/Weather/rome")) == (404, "NOT_FOUND")


async def test_add_to_passes_through_to_the_source(origin: Origin, database: str) -> None:
    Weather = weather(OriginApi(origin.url), expiration=600)
    app = App(tables=[Weather], database=database)
    async with TestClient(app) as client:
        await Weather.add_to("paris", "temp", 1.0)  # only at the origin: loaded first
        assert origin.records["paris"]["temp"] == 22.5
        assert (await client.get("/Weather/paris")).json()["temp"] == 22.5
        async with app.transaction():
            await Weather.add_to("paris", "temp", 1.0)
            await Weather.add_to("paris", "temp", 2.0)
        assert origin.records["paris"]["temp"] == 25.5
        assert origin.calls[("PUT", "paris")] == 2  # once per transaction
        assert (await client.get("/Weather/paris")).json()["temp"] == 25.5


async def test_an_app_started_again_loads_through_the_source(origin: Origin, database: str) -> None:
    Weather = weather(OriginApi(origin.url), expiration=3600, source_timeout=0.5)
    app = App(tables=[Weather], database=database)
    async with TestClient(app) as client:
        assert (await client.get("/Weather/paris")).status_code == 200
    origin.records["lyon"] = {"id": "lyon", "temp": 18.0}
    async with TestClient(app) as client:  # the same app, shut down and started again
        response = await client.get("/Weather/lyon")
        assert response.status_code == 200, response.text
        assert origin.gets("lyon") == 1
