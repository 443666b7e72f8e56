"""``rate_limit`` (SPEC section 7, issue 11 point 7): 429 ``RATE_LIMITED`` with ``Retry-After``,
``RateLimit``/``RateLimit-Policy`` on every response, partitions by user, address or a
function, fail closed when Redis is down, exact across two workers on Redis.

Tests taking ``store_url`` run on the in-process store and on Redis; those taking ``serve`` on
SQLite and PostgreSQL too. Each limit has a name of its own, so runs sharing a Redis never meet.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

import charter
from charter import (
    App,
    CharterError,
    Field,
    Grant,
    Middleware,
    RequestContext,
    Response,
    Role,
    Table,
    rate_limit,
    route,
)
from charter.testing import TestClient
from tests.servers import Server
from tests.test_shared import DOWN, REDIS, require_redis, store_url

__all__ = ["store_url"]  # the fixture, over both stores

Serve = Callable[..., TestClient]
POLICY = re.compile(r'^"(?P<name>[\w.-]+)";q=(?P<q>\d+);w=(?P<w>\d+)$')
LIMIT = re.compile(r'^"(?P<name>[\w.-]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


class Item(Table):
    id: str = Field(primary_key=True)
    n: int = 0


@route("GET", "/free")
def free() -> str:
    return "free"


def unique() -> str:
    return f"t{secrets.token_hex(5)}"


async def as_user(ctx: RequestContext, call_next: Any) -> Response:
    """Stands for sign-in: ``x-user`` names the user (the identity layer sets ``ctx.user``)."""
    name = ctx.request.header("x-user") if ctx.request else None
    ctx.user = SimpleNamespace(username=name) if name else None
    return await call_next()


def test_n_requests_pass_then_429_with_retry_after_and_the_headers(
    serve: Serve, store_url: str | None
) -> None:
    name = unique()
    limited = Middleware(rate_limit(3, per=60, name=name), prefixurl="/Item")
    client = serve(Item, routes=[free], middleware=[limited], shared=store_url)
    answers = [client.put(f"/Item/i{i}", json={}) for i in range(5)]
    assert [a.status_code for a in answers] == [204, 204, 204, 429, 429]
    for index, answer in enumerate(answers):
        assert answer.headers["ratelimit-policy"] == f'"{name}";q=3;w=60'
        found = LIMIT.match(answer.headers["ratelimit"])
        assert found is not None, answer.headers["ratelimit"]
        assert found["name"] == name
        assert int(found["r"]) == max(0, 2 - index)
        assert 58 <= int(found["t"]) <= 60
    refused = answers[3]
    assert refused.json() == {
        "error": {
            "status": 429,
            "code": "RATE_LIMITED",
            "message": "more than 3 requests in 60 seconds; "
            f"retry in {refused.headers['retry-after']}",
        }
    }
    # The draft: Retry-After not earlier than the end of the effective window.
    assert refused.headers["retry-after"] == LIMIT.match(refused.headers["ratelimit"])["t"]
    assert client.get("/Item/i3").status_code == 429  # the PUT over the limit never ran
    free_answer = client.get("/free")
    assert free_answer.status_code == 200 and "ratelimit" not in free_answer.headers


def test_errors_of_the_handler_carry_the_headers(serve: Serve) -> None:
    client = serve(Item, middleware=[rate_limit(5, per=60, name=unique())])
    missing = client.get("/Item/none")
    assert missing.status_code == 404
    assert LIMIT.match(missing.headers["ratelimit"])["r"] == "4"
    assert POLICY.match(missing.headers["ratelimit-policy"])


def test_a_new_window_opens_when_the_last_one_ends(serve: Serve, store_url: str | None) -> None:
    client = serve(Item, middleware=[rate_limit(2, per=1, name=unique())], shared=store_url)
    assert [client.get("/Item/").status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(1.1)
    again = client.get("/Item/")
    assert again.status_code == 200
    assert LIMIT.match(again.headers["ratelimit"])["r"] == "1"


def test_key_user_counts_each_user_apart_and_anonymous_requests_by_address(
    serve: Serve, store_url: str | None
) -> None:
    limit = rate_limit(2, per=60, name=unique())  # key="user" is the default
    client = serve(Item, middleware=[as_user, limit], shared=store_url)

    def statuses(user: str | None) -> list[int]:
        headers = {"x-user": user} if user else {}
        return [client.get("/Item/", headers=headers).status_code for _ in range(3)]

    assert statuses("ann") == [200, 200, 429]
    assert statuses("bob") == [200, 200, 429]  # bob has a window of his own
    assert statuses(None) == [200, 200, 429]  # not signed in: the client address
    assert statuses("ann") == [429, 429, 429]


def test_key_user_counts_signed_in_users_by_name(database: str, store_url: str | None) -> None:
    roles = [
        Role("clerk", tables={"Item": Grant(read=True)}),
        Role("anonymous", tables={"Item": Grant(read=True)}),
    ]
    app = App(
        tables=[Item],
        database=database,
        auth=True,
        roles=roles,
        middleware=[rate_limit(2, per=60, name=unique())],
        shared=store_url,
    )
    with TestClient(app) as client:
        for name in ("ann", "bob"):
            client.run(charter.auth.add_user(app, name, f"{name}-password", role="clerk"))

        def statuses(auth: tuple[str, str] | None) -> list[int]:
            return [client.get("/Item/", auth=auth).status_code for _ in range(3)]

        assert statuses(("ann", "ann-password")) == [200, 200, 429]
        assert statuses(("bob", "bob-password")) == [200, 200, 429]
        assert statuses(None) == [200, 200, 429]  # anonymous: by address


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_key_function_chooses_the_partition(serve: Serve, store_url: str | None, kind: str) -> None:
    def tenant(ctx: RequestContext) -> str | None:
        return ctx.request.header("x-tenant") if ctx.request else None

    async def async_tenant(ctx: RequestContext) -> str | None:
        await asyncio.sleep(0)
        return tenant(ctx)

    limit = rate_limit(1, per=60, key=tenant if kind == "sync" else async_tenant, name=unique())
    client = serve(Item, middleware=[limit], shared=store_url)
    assert client.get("/Item/", headers={"x-tenant": "a"}).status_code == 200
    assert client.get("/Item/", headers={"x-tenant": "a"}).status_code == 429
    assert client.get("/Item/", headers={"x-tenant": "b"}).status_code == 200
    assert client.get("/Item/").status_code == 200  # None: by address
    assert client.get("/Item/").status_code == 429


def test_two_limits_on_one_route_send_both_policies(serve: Serve) -> None:
    burst, hourly = unique(), unique()
    client = serve(
        Item,
        middleware=[rate_limit(2, per=1, name=burst), rate_limit(3, per=3600, name=hourly)],
    )
    first = client.get("/Item/")
    assert first.headers["ratelimit-policy"] == f'"{hourly}";q=3;w=3600, "{burst}";q=2;w=1'
    assert first.headers["ratelimit"].startswith(f'"{hourly}";r=2;t=')
    assert f', "{burst}";r=1;t=1' in first.headers["ratelimit"]
    client.get("/Item/")
    assert client.get("/Item/").status_code == 429  # burst
    time.sleep(1.1)
    assert client.get("/Item/").status_code == 200  # a new burst window; hourly 3 of 3
    refused = client.get("/Item/")
    assert refused.status_code == 429
    assert f'"{hourly}";r=0' in refused.headers["ratelimit"]


def test_one_limit_selected_twice_for_a_request_counts_it_once(serve: Serve) -> None:
    limit = rate_limit(2, per=60, name=unique())
    client = serve(
        Item,
        middleware=[
            Middleware(limit, prefixurl="/Item"),
            Middleware(limit, endpoints=["Item.collection"]),
        ],
    )
    assert [client.get("/Item/").status_code for _ in range(3)] == [200, 200, 429]


async def test_the_limit_is_exact_under_concurrent_requests(
    store_url: str | None, tmp_path: Path
) -> None:
    app = App(
        tables=[Item],
        database=f"sqlite:///{tmp_path}/c.db",
        middleware=[rate_limit(20, per=60, name=unique())],
        shared=store_url,
    )
    async with TestClient(app) as client:
        answers = await asyncio.gather(*(client.get("/Item/") for _ in range(60)))
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 20 and statuses.count(429) == 40
    remaining = sorted(int(LIMIT.match(a.headers["ratelimit"])["r"]) for a in answers)
    assert remaining == [0] * 41 + list(range(1, 20))  # each count given out once


def test_an_unreachable_store_refuses_limited_routes_with_503(serve: Serve) -> None:
    limited = Middleware(rate_limit(100, per=60, name=unique()), prefixurl="/Item")
    client = serve(Item, routes=[free], middleware=[limited], shared=DOWN)
    refused = client.put("/Item/a", json={})
    assert refused.status_code == 503
    assert refused.json() == {
        "error": {
            "status": 503,
            "code": "UNAVAILABLE",
            "message": "the rate limit cannot be checked: its store is unreachable",
        }
    }
    assert refused.headers["retry-after"] == "5"
    assert client.get("/Item/a").status_code == 503  # the PUT did not run: fail closed
    assert client.get("/free").json() == "free"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0,), "the limit is an int of 1 or more"),
        ((True,), "the limit is an int"),
        ((10, 0.5), "whole number of seconds"),
        ((10, 0), "whole number of seconds"),
        ((10, 60, "ip"), "'user', 'address' or a function"),
        ((10, 60, "user", 'de"fault'), "letters, digits"),
        ((10, 60, "user", ""), "letters, digits"),
    ],
)
def test_rate_limit_arguments_are_checked(arguments: tuple[Any, ...], message: str) -> None:
    with pytest.raises(CharterError, match=message):
        rate_limit(*arguments)


def test_two_limits_with_one_name_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CharterError, match="two rate limits are named 'api'"):
        App(
            tables=[Item],
            database=f"sqlite:///{tmp_path}/n.db",
            middleware=[rate_limit(5, per=1, name="api"), rate_limit(100, per=60, name="api")],
        )


# -- over a socket: the client address, proxies, and two workers sharing Redis ----------------

ADDRESS_APP = """
from charter import App, Field, Table, rate_limit

class Item(Table):
    id: str = Field(primary_key=True)

app = App(tables=[Item], middleware=[rate_limit(2, per=60, key="address", name="{name}")])
"""


def _from(address: str, url: str, headers: dict[str, str] | None = None) -> list[int]:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, base_url=url, timeout=10) as client:
        return [client.get("/Item/", headers=headers).status_code for _ in range(3)]


def test_key_address_is_the_connection_address_and_a_proxy_only_counts_when_trusted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "address_app.py"
    path.write_text(ADDRESS_APP.replace("{name}", unique()))
    with Server(f"{path}:app", "--database", f"sqlite:///{tmp_path}/a.db") as server:
        assert _from("127.0.0.2", server.url) == [200, 200, 429]
        assert _from("127.0.0.3", server.url) == [200, 200, 429]  # another address
        # X-Forwarded-For from an address that is not a trusted proxy is ignored...
        assert _from("127.0.0.3", server.url, {"x-forwarded-for": "10.9.9.9"}) == [429] * 3
        # ... and from a trusted one (127.0.0.1 by default: FORWARDED_ALLOW_IPS) it is used.
        assert _from("127.0.0.1", server.url, {"x-forwarded-for": "10.1.1.1"}) == [200, 200, 429]
        assert _from("127.0.0.1", server.url, {"x-forwarded-for": "10.1.1.2"}) == [200, 200, 429]


WORKERS_APP = """
import os
from charter import App, Field, Middleware, Table, rate_limit

class Item(Table):
    id: str = Field(primary_key=True)

async def pid(ctx, call_next):
    response = await call_next()
    response.headers["x-pid"] = str(os.getpid())
    return response

app = App(
    tables=[Item],
    middleware=[pid, Middleware(rate_limit(30, per=3600, name="{name}"), prefixurl="/Item")],
)
"""


@pytest.mark.slow
def test_the_limit_is_exact_across_two_workers_on_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_redis()
    monkeypatch.setenv("CHARTER_SHARED", REDIS)
    path = tmp_path / "workers_app.py"
    path.write_text(WORKERS_APP.replace("{name}", unique()))
    server = Server(f"{path}:app", "--workers", "2", "--database", f"sqlite:///{tmp_path}/w.db")

    def both_workers_up(url: str) -> None:
        """``Server`` waits for one worker to answer; the test needs the two."""
        deadline, seen = time.monotonic() + 30, set()
        while len(seen) < 2 and time.monotonic() < deadline:
            probe = httpx.get(url + "/openapi.json", headers={"connection": "close"})
            seen.add(probe.headers["x-pid"])
        assert len(seen) == 2, "the second worker did not start"

    async def hammer(url: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            # A connection per request: each is accepted by either worker.
            close = {"connection": "close"}
            return await asyncio.gather(*(client.get("/Item/", headers=close) for _ in range(120)))

    with server:
        both_workers_up(server.url)
        answers = asyncio.run(hammer(server.url))
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 30, statuses
    assert statuses.count(429) == 90
    assert len({a.headers["x-pid"] for a in answers}) == 2  # both workers answered
