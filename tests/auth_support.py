"""The app the sign-in tests share: a table, a route that says who is asking, three roles."""

from __future__ import annotations

from typing import Any

import charter
from charter import App, Contract, Field, Grant, Role, Table, route
from charter.testing import TestClient

PASSWORD = "ann-password-1"
ADMIN_PASSWORD = "root-password-1"


class Note(Table):
    id: str = Field(primary_key=True)
    text: str = ""


@route("GET", "/who", contract=Contract(roles=True))
async def who() -> dict[str, Any]:
    context = charter.current_context()
    assert context is not None and context.user is not None
    user = context.user
    return {"username": user.username, "role": user.role, "super_user": user.super_user}


ROLES = [
    Role("clerk", tables={"Note": Grant(read=True, insert=True, update=True, delete=True)}),
    Role("reader", tables={"Note": Grant(read=True)}),
    Role("boss", super_user=True),
]


def make_app(database: str, **options: Any) -> App:
    settings: dict[str, Any] = {"auth": True, "roles": ROLES}
    settings.update(options)
    return App(tables=[Note], routes=[who], database=database, **settings)


def with_users(client: TestClient) -> TestClient:
    """Adds ``ann`` (clerk) and ``root`` (a super user) to the client's app."""
    app: Any = client.app
    client.run(charter.auth.add_user(app, "ann", PASSWORD, role="clerk"))
    client.run(charter.auth.add_user(app, "root", ADMIN_PASSWORD, super_user=True))
    return client


def login(client: Any, username: str = "ann", password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
