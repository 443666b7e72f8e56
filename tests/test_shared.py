"""``app.shared`` (SPEC section 7, issue 11 point 7): one suite over both stores.

Every test that takes ``store_url`` runs on the in-process store and on Redis (127.0.0.1:6379,
``CHARTER_TEST_REDIS``; skipped when unreachable unless ``CHARTER_REQUIRE_SERVICES=1``). Keys are
prefixed per test so that runs sharing a Redis never meet. Redis down is a real closed port.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from charter import App, CharterError, Field, Table, Unavailable, current_context, route
from charter.testing import TestClient
from tests.servers import Server

REDIS = os.environ.get("CHARTER_TEST_REDIS", "redis://127.0.0.1:6379/0")
DOWN = "redis://:pw-never-shown@127.0.0.1:1/0"  # nothing listens on port 1
STORES = ("memory", "redis")


def redis_error() -> str | None:
    """Why Redis cannot be used for these tests, or None."""
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis unavailable at {REDIS}: {type(exc).__name__}: {exc}"
    return None


def require_redis() -> None:
    error = redis_error()
    if error is None:
        return
    if os.environ.get("CHARTER_REQUIRE_SERVICES") == "1":
        pytest.fail(error)
    pytest.skip(error)


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest) -> str | None:
    """``shared=`` for one store: None (in-process) or the test Redis."""
    if request.param == "redis":
        require_redis()
        return REDIS
    return None


@pytest.fixture
def prefix() -> str:
    return f"test:{secrets.token_hex(6)}:"


class Counter(Table):
    id: str = Field(primary_key=True)
    n: int = 0


@pytest.fixture
async def shared(store_url: str | None, tmp_path: Path) -> AsyncIterator[Any]:
    """A started app's ``app.shared`` (the app's lifespan opens and closes it)."""
    app = App(tables=[Counter], database=f"sqlite:///{tmp_path}/s.db", shared=store_url)
    async with TestClient(app):
        yield app.shared


VALUES: list[Any] = [
    "text",
    "",
    "ünïcødé ✓",
    b"\x00\xffbytes",
    b"",
    0,
    -42,
    2**63 - 1,
    1.5,
    -0.0,
    float("inf"),
    True,
    False,
    {"a": [1, 2.5, "x", None, {"b": True}]},
    [1, "two", 3.0],
    [],
    {},
]


async def test_values_read_back_as_they_were_set(shared: Any, prefix: str) -> None:
    for index, value in enumerate(VALUES):
        await shared.set(f"{prefix}{index}", value)
        got = await shared.get(f"{prefix}{index}")
        assert got == value and type(got) is type(value), value


async def test_other_json_able_values_read_back_as_json(shared: Any, prefix: str) -> None:
    await shared.set(prefix + "t", (1, "a"))
    await shared.set(prefix + "s", {3})
    assert await shared.get(prefix + "t") == [1, "a"]
    assert await shared.get(prefix + "s") == [3]


async def test_a_missing_key_is_none_and_delete_says_whether_it_was_there(
    shared: Any, prefix: str
) -> None:
    assert await shared.get(prefix + "nothing") is None
    await shared.set(prefix + "k", "v")
    assert await shared.delete(prefix + "k") is True
    assert await shared.delete(prefix + "k") is False
    assert await shared.get(prefix + "k") is None


async def test_values_without_a_stored_form_are_refused(shared: Any, prefix: str) -> None:
    for value, message in [
        (None, "cannot hold None"),
        (object(), "not object"),
        (2**63, "64 bits"),
    ]:
        with pytest.raises(CharterError, match=message):
            await shared.set(prefix + "bad", value)
    assert await shared.get(prefix + "bad") is None


async def test_keys_and_ttls_are_checked(shared: Any, prefix: str) -> None:
    for key in ["", None, 5, "k" * 1025]:
        with pytest.raises(CharterError, match="keys"):
            await shared.set(key, 1)
    for ttl in [0, -1, True, "5", float("inf"), float("nan")]:
        with pytest.raises(CharterError, match="ttl"):
            await shared.set(prefix + "k", 1, ttl=ttl)
        with pytest.raises(CharterError, match="ttl"):
            await shared.incr(prefix + "k", ttl=ttl)
    for amount in [1.5, True, "1"]:
        with pytest.raises(CharterError, match="adds an int"):
            await shared.incr(prefix + "k", amount)


async def test_a_value_expires_after_its_ttl(shared: Any, prefix: str) -> None:
    await shared.set(prefix + "short", "gone soon", ttl=0.2)
    await shared.set(prefix + "long", "stays", ttl=30)
    assert await shared.get(prefix + "short") == "gone soon"
    await asyncio.sleep(0.35)
    assert await shared.get(prefix + "short") is None
    assert await shared.get(prefix + "long") == "stays"


async def test_set_replaces_the_value_and_its_ttl(shared: Any, prefix: str) -> None:
    await shared.set(prefix + "k", "first", ttl=0.2)
    await shared.set(prefix + "k", "second")  # no ttl: it now lives until deleted
    await asyncio.sleep(0.35)
    assert await shared.get(prefix + "k") == "second"


async def test_incr_counts_from_zero_and_reads_back_as_an_int(shared: Any, prefix: str) -> None:
    assert await shared.incr(prefix + "c") == 1
    assert await shared.incr(prefix + "c", 10) == 11
    assert await shared.incr(prefix + "c", -12) == -1
    assert await shared.get(prefix + "c") == -1
    await shared.set(prefix + "c", 40)
    assert await shared.incr(prefix + "c", 2) == 42


async def test_incr_is_atomic_under_concurrency(shared: Any, prefix: str) -> None:
    results = await asyncio.gather(*(shared.incr(prefix + "hits") for _ in range(300)))
    assert sorted(results) == list(range(1, 301))
    assert await shared.get(prefix + "hits") == 300


async def test_incr_sets_the_ttl_only_when_it_creates_the_key(shared: Any, prefix: str) -> None:
    assert await shared.incr(prefix + "window", ttl=0.3) == 1
    await asyncio.sleep(0.15)
    assert await shared.incr(prefix + "window", ttl=30) == 2  # does not extend the window
    await asyncio.sleep(0.3)
    assert await shared.get(prefix + "window") is None
    assert await shared.incr(prefix + "window", ttl=30) == 1  # a new window
    await shared.set(prefix + "forever", 5)
    assert await shared.incr(prefix + "forever", ttl=0.1) == 6  # existed: no ttl given to it
    await asyncio.sleep(0.2)
    assert await shared.get(prefix + "forever") == 6


async def test_incr_window_answers_the_seconds_left(shared: Any, prefix: str) -> None:
    count, left = await shared.incr_window(prefix + "w", ttl=10)
    assert count == 1 and 9 < left <= 10
    await asyncio.sleep(0.3)
    count, left = await shared.incr_window(prefix + "w", ttl=10)
    assert count == 2 and 9 < left <= 9.8


async def test_incr_of_a_value_that_is_not_an_integer_is_refused(shared: Any, prefix: str) -> None:
    for value in ["5", 1.0, {"n": 1}]:
        await shared.set(prefix + "v", value)
        with pytest.raises(CharterError, match="not an integer"):
            await shared.incr(prefix + "v")
        assert await shared.get(prefix + "v") == value


def test_handlers_reach_the_store_as_app_shared(store_url: str | None, serve: Any) -> None:
    """On each database backend too: the store does not depend on the database."""
    key = f"test:{secrets.token_hex(6)}:visits"

    @route("POST", "/visit")
    async def visit() -> int:
        return int(await app.shared.incr(key))

    client = serve(Counter, routes=[visit], shared=store_url)
    app = client.app
    assert [client.post("/visit").json() for _ in range(3)] == [1, 2, 3]


# -- Redis: shared between apps (as between workers), configuration, and down ----------------


async def test_two_apps_on_one_redis_share_their_values(tmp_path: Path, prefix: str) -> None:
    require_redis()
    one = App(tables=[Counter], database=f"sqlite:///{tmp_path}/1.db", shared=REDIS)
    two = App(tables=[Counter], database=f"sqlite:///{tmp_path}/2.db", shared=REDIS)
    async with TestClient(one), TestClient(two):
        await one.shared.set(prefix + "k", {"from": "one"})
        assert await two.shared.get(prefix + "k") == {"from": "one"}
        await asyncio.gather(*(app.shared.incr(prefix + "n") for app in [one, two] * 50))
        assert await one.shared.get(prefix + "n") == 100


def test_charter_shared_names_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    require_redis()
    monkeypatch.setenv("CHARTER_SHARED", REDIS)

    @route("PUT", "/value/{key}")
    async def put_value(key: str, payload: Any) -> None:
        await current_context().shared.set(prefix + key, payload)

    @route("GET", "/value/{key}")
    async def get_value(key: str) -> Any:
        return await current_context().shared.get(prefix + key)

    one = App(database=f"sqlite:///{tmp_path}/e.db", routes=[put_value, get_value])
    two = App(database=f"sqlite:///{tmp_path}/f.db", routes=[put_value, get_value])
    with TestClient(one) as first, TestClient(two) as second:
        assert first.put("/value/k", json={"via": "env"}).status_code == 204
        assert second.get("/value/k").json() == {"via": "env"}


async def test_app_shared_is_used_from_the_loop_that_opened_it(tmp_path: Path) -> None:
    require_redis()
    app = App(database=f"sqlite:///{tmp_path}/l.db", shared=REDIS)
    # The sync client runs the app on a loop in another thread.
    with TestClient(app), pytest.raises(CharterError, match="used from another one"):
        await app.shared.get("k")
    assert await app.shared.get("test:never-set") is None  # closed with the app: usable here
    await app.shared.close()
    with TestClient(app) as client:  # the sync client runs it on the app's loop
        assert client.run(app.shared.incr("test:" + secrets.token_hex(6))) == 1


def test_an_unreachable_redis_fails_closed_and_never_shows_its_password(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @route("GET", "/seen")
    async def seen() -> Any:
        return await app.shared.get("seen")

    @route("GET", "/plain")
    def plain() -> str:
        return "fine"

    with caplog.at_level(logging.WARNING, logger="charter.shared"):
        started = time.monotonic()
        client = serve(Counter, routes=[seen, plain], shared=DOWN)  # starts all the same
        app = client.app
        refused = client.get("/seen")
        again = client.get("/seen")
        elapsed = time.monotonic() - started
    assert refused.status_code == 503
    assert refused.json() == {
        "error": {
            "status": 503,
            "code": "UNAVAILABLE",
            "message": "the shared store is unreachable",
        }
    }
    assert refused.headers["retry-after"] == "5"
    assert again.status_code == 503
    assert client.get("/plain").json() == "fine"  # what does not need Redis is served
    assert elapsed < 5  # a refused connection fails fast
    assert "redis://:***@127.0.0.1:1/0 is unreachable" in caplog.text
    assert caplog.text.count("is unreachable") == 1  # once, not per request
    assert "pw-never-shown" not in caplog.text + refused.text


async def test_an_unreachable_redis_raises_unavailable_to_code(tmp_path: Path) -> None:
    app = App(tables=[Counter], database=f"sqlite:///{tmp_path}/d.db", shared=DOWN)
    async with TestClient(app):
        for operation in (
            app.shared.get("k"),
            app.shared.set("k", 1),
            app.shared.incr("k"),
            app.shared.delete("k"),
        ):
            with pytest.raises(Unavailable):
                await operation


def test_without_the_redis_package_a_redis_url_is_refused_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(
        CharterError, match=r"needs the redis package: pip install 'charter\[redis\]'"
    ) as caught:
        App(tables=[Counter], database=f"sqlite:///{tmp_path}/r.db", shared=DOWN)
    assert "pw-never-shown" not in str(caught.value)


# -- the banner of charter serve names the store --------------------------------------------

BANNER_APP = """
from charter import App, Field, Table

class Note(Table):
    id: str = Field(primary_key=True)

app = App(tables=[Note])
"""


@pytest.mark.parametrize(
    ("shared", "shown"),
    [
        (None, "shared:     in-process (one per worker process)"),
        (DOWN, "shared:     redis redis://:***@127.0.0.1:1/0"),
    ],
    ids=["in-process", "redis"],
)
def test_charter_serve_names_the_shared_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: str | None, shown: str
) -> None:
    path = tmp_path / "banner_app.py"
    path.write_text(BANNER_APP)
    if shared is not None:
        monkeypatch.setenv("CHARTER_SHARED", shared)
    server = Server(f"{path}:app", "--database", f"sqlite:///{tmp_path}/b.db")
    with server:
        assert httpx.get(server.url + "/Note/").status_code == 200
        log = server.read_log()
    assert shown in log
    assert "pw-never-shown" not in log


async def test_raise_to_only_raises_and_concurrent_callers_accept_a_value_once(
    shared: Any, prefix: str
) -> None:
    key = prefix + "mark"
    assert await shared.raise_to(key, 3, ttl=60) is True
    assert await shared.get(key) == 3
    for lower in (3, 2, 0):
        assert await shared.raise_to(key, lower) is False
    assert await shared.get(key) == 3
    # Many callers racing with the same values: each value is accepted at most once.
    results = await asyncio.gather(*[shared.raise_to(key, 4 + i % 3) for i in range(30)])
    assert sum(results) <= 3 and await shared.get(key) == 6
    await shared.set(prefix + "text", "x")
    with pytest.raises(CharterError):
        await shared.raise_to(prefix + "text", 1)
