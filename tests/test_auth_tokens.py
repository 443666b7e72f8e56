"""Access and refresh tokens (SPEC section 6): signed, short-lived access tokens checked against
their session on every request; refresh tokens rotated on each use, a reused one ending its
whole session; logout, password changes and removals holding at once, on one worker and two.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

import charter
from charter.auth.tokens import ACCESS, COOKIE, Claims, InvalidToken, TokenSigner
from charter.testing import TestClient
from tests.auth_support import ADMIN_PASSWORD, PASSWORD, bearer, login, make_app, with_users
from tests.servers import Server

KEY = b"k" * 32
OTHER = TokenSigner(b"o" * 32)

# -- the token format, without an app -------------------------------------------------------------


def _tampered_payload(token: str, **changes: Any) -> str:
    payload, _, signature = token.partition(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    claims = msgspec.msgpack.decode(raw, type=Claims)
    forged = msgspec.structs.replace(claims, **changes)
    text = base64.urlsafe_b64encode(msgspec.msgpack.encode(forged)).rstrip(b"=").decode()
    return f"{text}.{signature}"


def test_a_token_round_trips_and_says_only_what_it_was_given() -> None:
    signer = TokenSigner(KEY)
    token = signer.issue(ACCESS, user_id="u1", role="clerk", family="f1", ttl=60)
    claims = signer.verify(token, ACCESS)
    assert (claims.user_id, claims.role, claims.family) == ("u1", "clerk", "f1")
    assert claims.expires - claims.issued == 60
    assert "k" * 8 not in token  # the key is not in it


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: _tampered_payload(t, role="boss"),
        lambda t: _tampered_payload(t, user_id="u2"),
        lambda t: _tampered_payload(t, expires=2**40),
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: t.partition(".")[0] + ".",
        lambda t: t.replace(".", ""),
        lambda t: t + "é",
        lambda t: t + "x" * 3000,
        lambda t: TokenSigner(b"o" * 32).issue(
            ACCESS, user_id="u1", role="boss", family="f1", ttl=60
        ),
    ],
    ids=[
        "role",
        "user",
        "expiry",
        "signature",
        "no-signature",
        "no-dot",
        "non-ascii",
        "huge",
        "key",
    ],
)
def test_a_tampered_or_foreign_token_is_refused(forge: Any) -> None:
    signer = TokenSigner(KEY)
    token = signer.issue(ACCESS, user_id="u1", role="clerk", family="f1", ttl=60)
    with pytest.raises(InvalidToken):
        signer.verify(forge(token), ACCESS)


def test_an_expired_token_or_one_of_another_kind_is_refused() -> None:
    signer = TokenSigner(KEY)
    token = signer.issue(ACCESS, user_id="u1", role="clerk", family="f1", ttl=60, now=1000)
    assert signer.verify(token, ACCESS, now=1059).user_id == "u1"
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token, ACCESS, now=1060)
    with pytest.raises(InvalidToken, match="kind"):
        signer.verify(token, COOKIE, now=1000)  # a cookie is not a Bearer token, nor back
    # A token checked once (and remembered) is still checked for expiry and kind.
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token, ACCESS, now=5000)


# -- over HTTP -------------------------------------------------------------------------------------


@pytest.fixture
def client(database: str) -> Iterator[TestClient]:
    with TestClient(make_app(database)) as c:
        yield with_users(c)


def test_login_answers_a_bearer_pair(client: TestClient) -> None:
    r = client.post("/auth/login", json={"username": "ann", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    assert r.headers["cache-control"] == "no-store"
    who = client.get("/who", headers=bearer(body["access_token"]))
    assert who.json() == {"username": "ann", "role": "clerk", "super_user": False}
    me = client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.json() == {"username": "ann", "role": "clerk", "super_user": False}
    assert (
        client.post("/Note/", json={"id": "n1"}, headers=bearer(body["access_token"])).status_code
        == 201
    )


def test_a_bad_bearer_token_is_401_with_a_bearer_challenge(client: TestClient) -> None:
    token = login(client)["access_token"]
    for bad in (_tampered_payload(token, role="boss"), "garbage", token + "x", ""):
        r = client.get("/who", headers=bearer(bad))
        assert r.status_code == 401, bad
        assert r.json()["error"]["code"] == "UNAUTHORIZED"
        assert r.headers["www-authenticate"].startswith("Bearer ")
        assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_an_expired_access_token_is_refused_and_refresh_gives_a_new_one(database: str) -> None:
    with TestClient(make_app(database, access_token_ttl=1)) as client:
        pair = login(with_users(client))
        assert pair["expires_in"] == 1
        time.sleep(2.1)
        r = client.get("/who", headers=bearer(pair["access_token"]))
        assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
        fresh = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert fresh.status_code == 200
        assert client.get("/who", headers=bearer(fresh.json()["access_token"])).status_code == 200


def test_an_unused_refresh_token_expires(database: str) -> None:
    with TestClient(make_app(database, refresh_token_ttl=1)) as client:
        pair = login(with_users(client))
        time.sleep(2.1)
        r = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert r.status_code == 401


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_family(client: TestClient) -> None:
    first = login(client)
    second = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    assert second["refresh_token"] != first["refresh_token"]
    third = client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]}).json()
    assert client.get("/who", headers=bearer(third["access_token"])).status_code == 200
    other = login(client)  # another sign-in of the same user: its own family
    # The first refresh token again (a thief's copy): the whole family ends, every token of it.
    reused = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and "already used" in reused.json()["error"]["message"]
    assert client.get("/who", headers=bearer(third["access_token"])).status_code == 401
    gone = client.post("/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert gone.status_code == 401
    assert client.get("/who", headers=bearer(other["access_token"])).status_code == 200


def test_refresh_refuses_what_is_not_a_refresh_token(client: TestClient) -> None:
    pair = login(client)
    family = pair["refresh_token"].partition(".")[0]
    for bad in ("x", "", pair["access_token"], f"{family}.guess", "a" * 400):
        r = client.post("/auth/refresh", json={"refresh_token": bad})
        assert r.status_code == 401, bad
    # A wrong guess at a family's token does not end it (only a used token does).
    assert client.get("/who", headers=bearer(pair["access_token"])).status_code == 200
    assert client.post("/auth/refresh", json={}).status_code == 422
    assert client.post("/auth/refresh", content=b"{").status_code == 400


def test_logout_ends_the_session_and_only_it(client: TestClient) -> None:
    pair, other = login(client), login(client)
    r = client.post("/auth/logout", headers=bearer(pair["access_token"]))
    assert r.status_code == 204
    assert client.get("/who", headers=bearer(pair["access_token"])).status_code == 401
    assert (
        client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code
        == 401
    )
    assert client.get("/who", headers=bearer(other["access_token"])).status_code == 200


def test_logout_with_the_refresh_token_alone(client: TestClient) -> None:
    pair = login(client)
    r = client.post("/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 204
    assert client.get("/who", headers=bearer(pair["access_token"])).status_code == 401


def test_a_password_change_or_removal_ends_every_session(client: TestClient) -> None:
    app: Any = client.app
    a, b = login(client), login(client)
    client.run(charter.auth.set_password(app, "ann", "another-password"))
    for pair in (a, b):
        assert client.get("/who", headers=bearer(pair["access_token"])).status_code == 401
        refreshed = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert refreshed.status_code == 401
    c = login(client, "ann", "another-password")
    client.run(charter.auth.remove_user(app, "ann"))
    assert client.get("/who", headers=bearer(c["access_token"])).status_code == 401


def test_a_user_can_be_signed_out_everywhere(client: TestClient) -> None:
    app: Any = client.app
    a, b = login(client), login(client)
    kept = login(client, "root", ADMIN_PASSWORD)
    assert client.run(charter.auth.end_sessions(app, "ann")) == 2
    for pair in (a, b):
        assert client.get("/who", headers=bearer(pair["access_token"])).status_code == 401
    assert client.get("/who", headers=bearer(kept["access_token"])).status_code == 200
    assert client.get("/who", auth=("ann", PASSWORD)).status_code == 200  # the password stays
    with pytest.raises(charter.NotFound):
        client.run(charter.auth.end_sessions(app, "nobody"))


def test_a_role_change_holds_at_once_for_a_signed_in_user(client: TestClient) -> None:
    app: Any = client.app
    pair = login(client)
    assert client.get("/who", headers=bearer(pair["access_token"])).json()["role"] == "clerk"
    client.run(charter.auth.set_role(app, "ann", "reader"))
    assert client.get("/who", headers=bearer(pair["access_token"])).json()["role"] == "reader"
    client.run(charter.auth.set_role(app, "ann", super_user=True))
    assert client.get("/who", headers=bearer(pair["access_token"])).json()["super_user"] is True
    # ... and the session goes on: a refresh carries the new role.
    fresh = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
    assert client.get("/auth/me", headers=bearer(fresh["access_token"])).json()["role"] == "reader"


def test_a_token_must_name_the_user_of_its_session(client: TestClient) -> None:
    # Defence in depth: even a correctly signed token (here made with the app's own key) is
    # refused when it names one user and another user's session.
    app: Any = client.app
    anns = login(client)
    roots = login(client, "root", ADMIN_PASSWORD)
    assert client.get("/who", headers=bearer(anns["access_token"])).status_code == 200
    assert client.get("/who", headers=bearer(roots["access_token"])).status_code == 200
    family = roots["refresh_token"].partition(".")[0]
    ann = client.run(app.directory.find("ann"))
    forged = app.sign_in._signer(ACCESS).issue(
        ACCESS, user_id=ann.id, role="clerk", family=family, ttl=60
    )
    for _ in range(2):  # the second time its signature is known: refused all the same
        assert client.get("/who", headers=bearer(forged)).status_code == 401


def test_the_generated_secret_survives_a_restart_and_is_never_shown(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHARTER_SECRET", raising=False)
    with TestClient(make_app(database)) as client:
        pair = login(with_users(client))
        app: Any = client.app
        secret = app.sign_in.secrets.secret
    with TestClient(make_app(database)) as client:
        assert client.get("/who", headers=bearer(pair["access_token"])).status_code == 200
        for path in ("/openapi.json", "/auth/me"):
            body = client.get(path, headers=bearer(pair["access_token"])).content
            assert base64.urlsafe_b64encode(secret).rstrip(b"=") not in body
    # Another secret (CHARTER_SECRET): tokens signed with the stored one are not valid.
    monkeypatch.setenv("CHARTER_SECRET", "s" * 40)
    app = make_app(database)
    assert "s" * 40 not in repr(app.config)
    with TestClient(app) as client:
        assert client.get("/who", headers=bearer(pair["access_token"])).status_code == 401
        assert client.get("/who", headers=bearer(login(client)["access_token"])).status_code == 200


def test_a_short_secret_is_refused_without_being_shown(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_SECRET", "short-secret-123")
    with pytest.raises(ValueError, match="at least 32") as raised:
        make_app(database)
    assert "short-secret-123" not in str(raised.value)


def test_token_lifetimes_come_from_the_environment(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_ACCESS_TOKEN_TTL", "120")
    with TestClient(make_app(database, access_token_ttl=5)) as client:
        assert login(with_users(client))["expires_in"] == 120
    monkeypatch.setenv("CHARTER_ACCESS_TOKEN_TTL", "0")
    with pytest.raises(ValueError, match="positive"):
        make_app(database)


# -- two workers -----------------------------------------------------------------------------------

SERVED = """
import os
from charter import App, Contract, Field, Role, Table, route

class Note(Table):
    id: str = Field(primary_key=True)

@route("GET", "/pid", contract=Contract(roles=True))
async def pid() -> int:
    return os.getpid()

app = App(tables=[Note], routes=[pid], auth=True, roles=[Role("clerk")])
"""


async def _pids(url: str, token: str, tries: int = 200) -> tuple[set[int], set[int]]:
    """The workers that answered ``token`` (200) and the statuses, each request on a new
    connection (so the kernel spreads them over the workers)."""
    seen: set[int] = set()
    statuses: set[int] = set()
    fresh = httpx.Limits(max_connections=20, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=fresh) as client:

        async def one() -> None:
            r = await client.get("/pid", headers=bearer(token))
            statuses.add(r.status_code)
            if r.status_code == 200:
                seen.add(r.json())

        await asyncio.gather(*(one() for _ in range(tries)))
    return seen, statuses


@pytest.mark.slow
def test_logout_holds_at_once_on_every_worker(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "served.py"
    path.write_text(SERVED)
    monkeypatch.setenv("CHARTER_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("CHARTER_ADMIN_USER", "root")
    with Server(f"{path}:app", "--workers", "2", "--database", database) as server:
        signin = {"username": "root", "password": ADMIN_PASSWORD}
        ended = httpx.post(server.url + "/auth/login", json=signin).json()["access_token"]
        kept = httpx.post(server.url + "/auth/login", json=signin).json()["access_token"]
        # Both workers serve (and cache) the session first.
        seen, statuses = asyncio.run(_pids(server.url, ended))
        assert statuses == {200} and len(seen) == 2, seen
        out = httpx.post(server.url + "/auth/logout", headers=bearer(ended))
        assert out.status_code == 204
        # From now on no worker accepts it, while both still serve the other session.
        seen, statuses = asyncio.run(_pids(server.url, ended))
        assert statuses == {401}
        seen, statuses = asyncio.run(_pids(server.url, kept))
        assert statuses == {200} and len(seen) == 2
        # A password change from another process (the CLI) holds at once as well.
        done = subprocess.run(
            [sys.executable, "-m", "charter.cli", "users", "passwd", "root", f"{path}:app",
             "--database", database],
            input="a-new-password-1\n", capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        seen, statuses = asyncio.run(_pids(server.url, kept))
        assert statuses == {401}
        assert ADMIN_PASSWORD not in server.read_log()
