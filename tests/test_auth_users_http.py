"""Managing users over HTTP (SPEC section 6): super users only, 401 when not signed in and 403
when signed in as another role; no password or hash in any answer or log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import charter
from charter import App
from charter.testing import TestClient
from tests.auth_support import ADMIN_PASSWORD, PASSWORD, Note, bearer, login, make_app, who
from tests.auth_support import with_users as _with_users

ROOT = ("root", ADMIN_PASSWORD)
ANN = ("ann", PASSWORD)


@pytest.fixture
def client(database: str) -> Iterator[TestClient]:
    with TestClient(make_app(database)) as c:
        yield _with_users(c)


def _no_secrets(body: bytes) -> None:
    for secret in (b"argon2", b"password_hash", PASSWORD.encode(), ADMIN_PASSWORD.encode()):
        assert secret not in body


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/auth/users", None),
        ("POST", "/auth/users", {"username": "x", "password": "pw-123456", "role": "clerk"}),
        ("GET", "/auth/users/ann", None),
        ("PATCH", "/auth/users/ann", {"role": "reader"}),
        ("DELETE", "/auth/users/ann", None),
        ("GET", "/auth/roles", None),
    ],
)
def test_only_super_users_manage_users(
    client: TestClient, method: str, path: str, body: Any
) -> None:
    anonymous = client.request(method, path, json=body)
    assert anonymous.status_code == 401 and "www-authenticate" in anonymous.headers
    clerk = client.request(method, path, json=body, auth=ANN)
    assert clerk.status_code == 403 and clerk.json()["error"]["code"] == "FORBIDDEN"
    token = login(client)["access_token"]
    assert client.request(method, path, json=body, headers=bearer(token)).status_code == 403
    # Nothing changed.
    assert client.get("/who", auth=ANN).json()["role"] == "clerk"
    root = client.request(method, path, json=body, auth=ROOT)
    assert root.status_code in (200, 201, 204), root.text


def test_a_super_user_lists_adds_changes_and_removes_users(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    listed = client.get("/auth/users", auth=ROOT)
    assert [u["username"] for u in listed.json()] == ["ann", "root"]
    assert set(listed.json()[0]) == {"username", "id", "role", "super_user"}
    _no_secrets(listed.content)
    new = {"username": "bob", "password": "bob-password-1", "role": "reader"}
    created = client.post("/auth/users", json=new, auth=ROOT)
    assert created.status_code == 201 and created.headers["location"] == "/auth/users/bob"
    assert created.json()["role"] == "reader" and created.json()["super_user"] is False
    _no_secrets(created.content)
    assert b"bob-password-1" not in created.content
    assert client.get("/who", auth=("bob", "bob-password-1")).json()["role"] == "reader"
    assert client.post("/auth/users", json=new, auth=ROOT).status_code == 409
    changed = client.patch("/auth/users/bob", json={"password": "bob-password-2"}, auth=ROOT)
    assert changed.status_code == 200 and b"bob-password-2" not in changed.content
    assert client.get("/who", auth=("bob", "bob-password-1")).status_code == 401
    assert client.get("/who", auth=("bob", "bob-password-2")).status_code == 200
    promoted = client.patch("/auth/users/bob", json={"super_user": True}, auth=ROOT)
    assert promoted.json()["super_user"] is True
    assert client.get("/auth/users/bob", auth=ROOT).json()["super_user"] is True
    assert client.delete("/auth/users/bob", auth=ROOT).status_code == 204
    assert client.delete("/auth/users/bob", auth=ROOT).status_code == 404
    assert client.get("/auth/users/bob", auth=ROOT).status_code == 404
    assert client.patch("/auth/users/bob", json={"role": "clerk"}, auth=ROOT).status_code == 404
    assert client.get("/who", auth=("bob", "bob-password-2")).status_code == 401
    for record in caplog.records:
        text = record.getMessage()
        assert "bob-password" not in text and "argon2" not in text


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"username": "x", "password": "pw-123456", "role": "nope"}, ["body", "role"]),
        ({"username": "x", "password": 5, "role": "clerk"}, ["body", "password"]),
        ({"username": "x", "role": "clerk"}, ["body", "password"]),
        (
            {"username": "x", "password": "pw-123456", "role": "clerk", "admin": 1},
            ["body", "admin"],
        ),
        ({"username": "x", "password": "pw-123456"}, None),
        ({"username": "a:b", "password": "pw-123456", "role": "clerk"}, None),
        ({"username": "x", "password": "", "role": "clerk"}, None),
    ],
)
def test_a_bad_new_user_is_422_and_names_the_problem_not_the_password(
    client: TestClient, body: dict[str, Any], where: list[str] | None
) -> None:
    r = client.post("/auth/users", json=body, auth=ROOT)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "INVALID_PROPERTIES"
    if where is not None:
        assert r.json()["error"]["details"][0]["loc"] == where
    assert b"pw-123456" not in r.content
    names = [u["username"] for u in client.get("/auth/users", auth=ROOT).json()]
    assert names == ["ann", "root"]


def test_roles_are_listed_for_super_users(client: TestClient) -> None:
    roles = {r["name"]: r for r in client.get("/auth/roles", auth=ROOT).json()}
    assert {"clerk", "reader", "boss"} <= set(roles)
    assert roles["boss"]["super_user"] is True
    assert roles["reader"]["tables"]["Note"]["read"] is True


def test_me_says_who_is_signed_in(client: TestClient) -> None:
    assert client.get("/auth/me", auth=ANN).json() == {
        "username": "ann",
        "role": "clerk",
        "super_user": False,
    }
    assert client.get("/auth/me", auth=ROOT).json()["super_user"] is True
    r = client.get("/auth/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"


def test_a_user_removed_or_demoted_over_http_loses_its_rights_at_once(client: TestClient) -> None:
    token = login(client)["access_token"]
    assert client.post("/Note/", json={"id": "n1"}, headers=bearer(token)).status_code == 201
    client.patch("/auth/users/ann", json={"role": "reader"}, auth=ROOT)
    assert client.get("/auth/me", headers=bearer(token)).json()["role"] == "reader"
    client.delete("/auth/users/ann", auth=ROOT)
    assert client.get("/auth/me", headers=bearer(token)).status_code == 401
    assert client.get("/auth/me", auth=ANN).status_code == 401


def test_with_auth_off_there_are_no_auth_endpoints(database: str) -> None:
    # Auth off: every request is a super user, so serving sign-in or user management over
    # HTTP would hand them to anyone. Users are managed with `charter users` or charter.auth.
    app = App(tables=[Note], routes=[who], database=database)
    with TestClient(app) as client:
        client.run(charter.auth.add_user(app, "ann", PASSWORD, role="clerk"))
        assert (
            client.post("/auth/login", json={"username": "ann", "password": PASSWORD}).status_code
            == 404
        )
        assert client.get("/auth/users").status_code == 404


def test_a_table_named_auth_is_refused_when_auth_is_on(database: str) -> None:
    class auth(charter.Table):
        id: str = charter.Field(primary_key=True)

    with pytest.raises(charter.CharterError, match="/auth"):
        App(tables=[auth], auth=True, database=database)
    App(tables=[auth], database=database)  # auth off: no /auth endpoints to hide
