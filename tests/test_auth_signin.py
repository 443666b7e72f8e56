"""Signing in: no user enumeration (status, body, headers and time alike), failed sign-ins
throttled per user and per address, the Basic cache (fast, and invalidated at once by a change
of the user on any worker), rehash at sign-in, no password or hash in any log line.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

import charter
from charter.auth import directory as directory_module
from charter.auth.throttle import MemoryCounter
from charter.testing import TestClient
from tests.auth_support import ADMIN_PASSWORD, PASSWORD, login, make_app, with_users
from tests.test_shared import DOWN, REDIS, require_redis

ANN = ("ann", PASSWORD)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "auth.md"


@pytest.fixture
def client(database: str) -> Iterator[TestClient]:
    with TestClient(make_app(database)) as c:
        yield with_users(c)


def _comparable(response: Any) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in ("date", "content-length")}
    return response.status_code, response.content, headers


# -- no enumeration ---------------------------------------------------------------------------


def test_unknown_user_and_wrong_password_answer_alike(client: TestClient) -> None:
    def attempt(name: str) -> tuple[Any, float]:
        started = time.perf_counter()
        r = client.post("/auth/login", json={"username": name, "password": "not-the-one"})
        return r, time.perf_counter() - started

    wrong, unknown = attempt("ann")[0], attempt("nobody")[0]
    assert wrong.status_code == 401
    assert _comparable(wrong) == _comparable(unknown)
    wrong_times, unknown_times = [], []
    for _ in range(4):  # interleaved, so load on the machine hits both alike
        wrong_times.append(attempt("ann")[1])
        unknown_times.append(attempt("nobody")[1])
    ratio = statistics.median(unknown_times) / statistics.median(wrong_times)
    assert 0.4 < ratio < 2.5, (wrong_times, unknown_times)  # both pay one Argon2 check


def test_login_validates_its_body_without_echoing_the_password(client: TestClient) -> None:
    for body in ({"username": "ann"}, {"username": "ann", "password": 5}, ["ann", PASSWORD]):
        r = client.post("/auth/login", json=body)
        assert r.status_code == 422 and PASSWORD.encode() not in r.content
    r = client.post("/auth/login", json={"username": "ann", "password": PASSWORD, "x": 1})
    assert r.status_code == 422 and PASSWORD.encode() not in r.content
    assert client.post("/auth/login", content=b"{").status_code == 400
    # An HTML form signs in too.
    form = client.post("/auth/login", data={"username": "ann", "password": PASSWORD})
    assert form.status_code == 200 and form.json()["token_type"] == "bearer"


# -- throttle ----------------------------------------------------------------------------------

WINDOW = 3600  # long, so a window ends in the middle of a test only when _fresh_window waits


def _fail(client: TestClient, name: str, times: int) -> None:
    for _ in range(times):
        r = client.post("/auth/login", json={"username": name, "password": "wrong-one"})
        assert r.status_code == 401


def _throttled(response: Any, window: float = 3600) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(response.headers["retry-after"]) <= window


def _fresh_window(window: float, need: float) -> None:
    """Windows are fixed (aligned to the clock): start a test's counting where at least
    ``need`` seconds of the current window are left, so no boundary splits its counts."""
    left = window - time.time() % window
    if left < need:
        time.sleep(left + 0.01)


def test_failed_sign_ins_are_limited_per_user(database: str) -> None:
    app = make_app(database, signin_limit=3, signin_address_limit=100, signin_window=WINDOW)
    _fresh_window(WINDOW, 30)
    with TestClient(app) as client:
        with_users(client)
        _fail(client, "ann", 3)
        # Now even the right password waits: guessing has to stop for the window.
        _throttled(client.post("/auth/login", json={"username": "ann", "password": PASSWORD}))
        _throttled(client.get("/who", auth=ANN))
        # An unknown name is limited exactly alike (the 429 tells no one a name exists).
        _fail(client, "nobody", 3)
        _throttled(client.post("/auth/login", json={"username": "nobody", "password": "x"}))
        # Other users are not: the limit is per user.
        assert login(client, "root", ADMIN_PASSWORD)["token_type"] == "bearer"


def test_failed_sign_ins_are_limited_per_address(database: str) -> None:
    app = make_app(database, signin_limit=100, signin_address_limit=4, signin_window=WINDOW)
    _fresh_window(WINDOW, 30)
    with TestClient(app) as client:
        with_users(client)
        for name in ("a", "b", "c", "d"):  # one failure each, all from this client's address
            _fail(client, name, 1)
        _throttled(client.post("/auth/login", json={"username": "ann", "password": PASSWORD}))


def test_successes_are_not_counted_and_a_window_passes(database: str) -> None:
    window = 4
    app = make_app(database, signin_limit=2, signin_window=window)
    with TestClient(app) as client:
        with_users(client)
        for _ in range(4):
            login(client)
        _fresh_window(window, 3.5)
        _fail(client, "ann", 2)
        _throttled(
            client.post("/auth/login", json={"username": "ann", "password": PASSWORD}), window
        )
        _fresh_window(window, window)  # the next window
        assert login(client)["token_type"] == "bearer"


def test_a_throttled_attempt_costs_no_password_check(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = _count_verifications(monkeypatch)
    app = make_app(database, signin_limit=2, signin_window=WINDOW)
    _fresh_window(WINDOW, 30)
    with TestClient(app) as client:
        with_users(client)
        _fail(client, "ann", 2)
        before = len(checks)
        for _ in range(5):
            _throttled(client.get("/who", auth=("ann", "guess")))
        assert len(checks) == before


def test_workers_can_count_together(database: str) -> None:
    # Two apps on one database stand for two workers; given one counter (what app.shared
    # provides), a guesser cannot multiply its attempts by the number of workers.
    shared = MemoryCounter()
    first = make_app(database, signin_limit=4, signin_window=WINDOW)
    second = make_app(database, signin_limit=4, signin_window=WINDOW)
    _fresh_window(WINDOW, 30)
    first.sign_in.use_counter(shared)
    second.sign_in.use_counter(shared)
    with TestClient(first) as one:
        with_users(one)
        _fail(one, "ann", 2)
    with TestClient(second) as two:
        _fail(two, "ann", 2)
        _throttled(two.post("/auth/login", json={"username": "ann", "password": PASSWORD}))


def test_on_redis_every_worker_counts_together(database: str) -> None:
    require_redis()
    name = f"u{secrets.token_hex(5)}"  # runs sharing a Redis never meet
    # The per-address count is shared by every run on this Redis within the window (the test
    # client's address is always the same): only the per-user count is under test here.
    options = {"signin_limit": 4, "signin_address_limit": 10**6, "signin_window": WINDOW}
    first = make_app(database, shared=REDIS, **options)
    second = make_app(database, shared=REDIS, **options)
    _fresh_window(WINDOW, 30)
    with TestClient(first) as one:
        one.run(charter.auth.add_user(first, name, PASSWORD, role="clerk"))
        _fail(one, name, 2)
    with TestClient(second) as two:
        _fail(two, name, 2)
        _throttled(two.post("/auth/login", json={"username": name, "password": PASSWORD}))


def test_when_redis_is_down_sign_in_fails_closed(database: str) -> None:
    # Failed sign-ins that cannot be counted could be guessed without limit: 503, not a pass.
    app = make_app(database, shared=DOWN)
    with TestClient(app) as client:
        client.run(charter.auth.add_user(app, "ann", PASSWORD, role="clerk"))
        r = client.post("/auth/login", json={"username": "ann", "password": PASSWORD})
        assert r.status_code == 503 and r.json()["error"]["code"] == "UNAVAILABLE"
        assert "retry-after" in r.headers and "pw-never-shown" not in r.text
        assert client.get("/who", auth=ANN).status_code == 503
        assert client.get("/who").status_code == 401  # not signed in: nothing to count


# -- the Basic cache ---------------------------------------------------------------------------


def _count_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Argon2 check of a stored hash made from now on (the hash's first characters)."""
    seen: list[str] = []
    real = directory_module.verify_password

    async def counting(stored: str, password: str) -> bool:
        seen.append(stored[:10])
        return await real(stored, password)

    monkeypatch.setattr(directory_module, "verify_password", counting)
    return seen


def test_basic_pays_argon2_once_not_per_request(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = _count_verifications(monkeypatch)
    for _ in range(20):
        assert client.get("/who", auth=ANN).status_code == 200
    assert len(checks) == 1
    # A wrong password for a cached user is not let through by the cache.
    assert client.get("/who", auth=("ann", "wrong")).status_code == 401
    assert len(checks) == 2


async def test_concurrent_requests_with_one_credential_share_one_check(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = _count_verifications(monkeypatch)
    app = make_app(database)
    async with TestClient(app) as client:
        await charter.auth.add_user(app, "ann", PASSWORD, role="clerk")
        answers = await asyncio.gather(*(client.get("/who", auth=ANN) for _ in range(16)))
        assert {r.status_code for r in answers} == {200}
        assert len(checks) == 1
        wrong = await asyncio.gather(*(client.get("/who", auth=("ann", "x")) for _ in range(8)))
        assert {r.status_code for r in wrong} == {401}
        assert len(checks) == 2


def test_a_cached_credential_dies_with_a_password_change_or_removal(client: TestClient) -> None:
    app: Any = client.app
    assert client.get("/who", auth=ANN).status_code == 200
    client.run(charter.auth.set_password(app, "ann", "changed-password"))
    assert client.get("/who", auth=ANN).status_code == 401
    assert client.get("/who", auth=("ann", "changed-password")).status_code == 200
    client.run(charter.auth.set_role(app, "ann", "reader"))
    assert client.get("/who", auth=("ann", "changed-password")).json()["role"] == "reader"
    client.run(charter.auth.remove_user(app, "ann"))
    assert client.get("/who", auth=("ann", "changed-password")).status_code == 401


def test_a_change_made_by_another_worker_holds_at_once(database: str) -> None:
    # Each app has its own caches, as each worker process does; they share the database.
    worker = make_app(database)
    other = make_app(database)
    with TestClient(worker) as client:
        with_users(client)
        assert client.get("/who", auth=ANN).status_code == 200
        token = login(client)["access_token"]
        with TestClient(other) as elsewhere:
            elsewhere.run(charter.auth.set_password(other, "ann", "changed-password"))
        assert client.get("/who", auth=ANN).status_code == 401
        assert client.get("/who", headers={"authorization": f"Bearer {token}"}).status_code == 401


def test_sign_in_rehashes_a_password_made_with_older_parameters(client: TestClient) -> None:
    app: Any = client.app
    stored = client.run(app.directory.find("ann"))
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("old-password-1")
    body = directory_module._encode(
        {**{f: getattr(stored, f) for f in stored.__struct_fields__}, "password_hash": weak}
    ).decode()

    async def plant() -> None:
        await app.directory._write(lambda txn: txn.put("_charter_users", "ann", body))

    client.run(plant())
    assert login(client, "ann", "old-password-1")["token_type"] == "bearer"
    fresh = client.run(app.directory.find("ann")).password_hash
    assert fresh != weak and fresh.startswith("$argon2id$") and "m=8192" not in fresh


def test_no_log_line_holds_a_password_or_a_hash(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    login(client)
    client.post("/auth/login", json={"username": "ann", "password": "a-wrong-password"})
    client.get("/who", auth=("ann", "a-wrong-password"))
    client.get("/who", auth=ANN)
    client.post("/auth/users", json={"username": "eve", "password": "eve-password-9"})
    for record in caplog.records:
        text = record.getMessage() + str(record.args)
        for secret in (PASSWORD, "a-wrong-password", "eve-password-9", "$argon2"):
            assert secret not in text


# -- docs/auth.md -----------------------------------------------------------------------------


def test_the_auth_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its Python blocks form one program that ends by asserting what it serves.
    monkeypatch.chdir(tmp_path)
    code = "\n".join(re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S))
    assert "TestClient(app)" in code
    exec(compile(code, "docs/auth.md", "exec"), {"__name__": "docs_auth"})
