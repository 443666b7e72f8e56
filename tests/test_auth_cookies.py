"""Cookie sessions for browsers: HttpOnly, SameSite=Lax, Secure over HTTPS, and the CSRF defence
(double-submit token, signed by the session, plus an Origin check) on unsafe methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from charter import CORS
from charter.testing import TestClient
from tests.auth_support import PASSWORD, bearer, login, make_app, with_users

SIGN_IN = {"username": "ann", "password": PASSWORD, "cookie": True}


def _cookie_login(client: TestClient) -> dict[str, Any]:
    r = client.post("/auth/login", json=SIGN_IN)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture
def client(database: str) -> Iterator[TestClient]:
    with TestClient(make_app(database)) as c:
        yield with_users(c)


def test_cookie_login_sets_an_httponly_session_and_a_readable_csrf_cookie(
    client: TestClient,
) -> None:
    r = client.post("/auth/login", json=SIGN_IN)
    body = r.json()
    assert body["token_type"] == "cookie" and body["username"] == "ann"
    assert "access_token" not in body and "refresh_token" not in body
    assert r.headers["cache-control"] == "no-store"
    session, csrf = r.headers.get_list("set-cookie")
    assert session.startswith("charter_session=")
    for flag in ("HttpOnly", "SameSite=Lax", "Path=/", f"Max-Age={body['expires_in']}"):
        assert flag in session
    assert "Secure" not in session  # plain HTTP: a Secure cookie would never come back
    assert csrf.startswith(f"charter_csrf={body['csrf_token']};") and "HttpOnly" not in csrf
    assert client.get("/who").json()["username"] == "ann"  # a safe method needs no token


def test_cookies_are_secure_over_https(database: str) -> None:
    with TestClient(make_app(database), base_url="https://testserver") as client:
        with_users(client)
        r = client.post("/auth/login", json=SIGN_IN)
        assert all("; Secure" in c for c in r.headers.get_list("set-cookie"))
        assert client.get("/who").status_code == 200


def test_an_unsafe_request_by_cookie_needs_the_csrf_token(client: TestClient) -> None:
    token = _cookie_login(client)["csrf_token"]
    refused = client.post("/Note/", json={"id": "n1"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "FORBIDDEN"
    assert "x-csrf-token" in refused.json()["error"]["message"]
    assert (
        client.post("/Note/", json={"id": "n1"}, headers={"x-csrf-token": "x" * 43}).status_code
        == 403
    )
    assert (
        client.post("/Note/", json={"id": "n1"}, headers={"x-csrf-token": token}).status_code == 201
    )
    for method in ("PUT", "PATCH", "DELETE"):
        r = client.request(method, "/Note/n1", json={"id": "n1", "text": "t"})
        assert r.status_code == 403, method
    assert client.get("/Note/n1").status_code == 200


def test_the_header_must_match_the_cookie_and_the_session(client: TestClient) -> None:
    first = _cookie_login(client)["csrf_token"]
    second = _cookie_login(client)["csrf_token"]  # a new session: its cookies replace the first's
    assert second != first
    # The first session's token, sent with the second session's cookie: refused.
    r = client.post("/Note/", json={"id": "n2"}, headers={"x-csrf-token": first})
    assert r.status_code == 403
    # The header alone, without the readable cookie, is not enough.
    client.cookies.delete("charter_csrf")
    r = client.post("/Note/", json={"id": "n3"}, headers={"x-csrf-token": second})
    assert r.status_code == 403
    client.cookies.set("charter_csrf", second)
    r = client.post("/Note/", json={"id": "n3"}, headers={"x-csrf-token": second})
    assert r.status_code == 201


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        ("origin", "http://testserver", 201),
        ("origin", "https://evil.example", 403),
        ("origin", "null", 403),
        ("referer", "http://testserver/page", 201),
        ("referer", "https://evil.example/page", 403),
    ],
)
def test_an_unsafe_request_by_cookie_must_come_from_the_apps_origin(
    client: TestClient, header: str, value: str, status: int
) -> None:
    token = _cookie_login(client)["csrf_token"]
    r = client.post("/Note/", json={"id": "n1"}, headers={"x-csrf-token": token, header: value})
    assert r.status_code == status, r.text


def test_origins_cors_allows_with_credentials_may_send_cookie_requests(database: str) -> None:
    trusted = CORS(allow_origins=["https://app.example"], allow_credentials=True)
    with TestClient(make_app(database, cors=trusted)) as client:
        token = _cookie_login(with_users(client))["csrf_token"]
        headers = {"x-csrf-token": token, "origin": "https://app.example"}
        assert client.post("/Note/", json={"id": "n1"}, headers=headers).status_code == 201
        headers["origin"] = "https://other.example"
        assert client.post("/Note/", json={"id": "n2"}, headers=headers).status_code == 403
    # Without credentials CORS does not let pages send cookies: its origins are not trusted.
    with TestClient(make_app(database, cors=CORS(allow_origins=["https://app.example"]))) as c:
        token = _cookie_login(c)["csrf_token"]
        headers = {"x-csrf-token": token, "origin": "https://app.example"}
        assert c.post("/Note/", json={"id": "n3"}, headers=headers).status_code == 403


def test_bearer_and_basic_requests_are_not_subject_to_csrf(client: TestClient) -> None:
    token = login(client)["access_token"]
    foreign = {"origin": "https://evil.example"}
    assert (
        client.post("/Note/", json={"id": "b"}, headers={**foreign, **bearer(token)}).status_code
        == 201
    )
    r = client.post("/Note/", json={"id": "c"}, headers=foreign, auth=("ann", PASSWORD))
    assert r.status_code == 201


def test_a_cookie_login_from_another_site_is_refused(client: TestClient) -> None:
    r = client.post("/auth/login", json=SIGN_IN, headers={"origin": "https://evil.example"})
    assert r.status_code == 403
    assert "set-cookie" not in r.headers


def test_logout_ends_the_cookie_session_and_clears_the_cookies(client: TestClient) -> None:
    token = _cookie_login(client)["csrf_token"]
    assert client.post("/auth/logout").status_code == 403  # logout is unsafe too
    r = client.post("/auth/logout", headers={"x-csrf-token": token})
    assert r.status_code == 204
    cleared = r.headers.get_list("set-cookie")
    assert len(cleared) == 2 and all("Max-Age=0" in c for c in cleared)
    assert client.get("/who").status_code == 401


def test_a_stale_or_forged_cookie_acts_as_anonymous(client: TestClient) -> None:
    body = _cookie_login(client)
    stale = client.cookies["charter_session"]
    client.post("/auth/logout", headers={"x-csrf-token": body["csrf_token"]})
    for value in (stale, "forged.value", login(client)["access_token"]):
        client.cookies.set("charter_session", value)
        r = client.get("/who")
        assert r.status_code == 401, value  # not signed in: 401, not 403
        assert client.get("/auth/me").status_code == 401
    # ... and signing in again works despite the stale cookie.
    assert client.post("/auth/login", json=SIGN_IN).status_code == 200
    assert client.get("/who").status_code == 200


def test_a_session_cookie_is_not_a_bearer_token(client: TestClient) -> None:
    _cookie_login(client)
    cookie = client.cookies["charter_session"]
    client.cookies.clear()
    r = client.get("/who", headers=bearer(cookie))
    assert r.status_code == 401
