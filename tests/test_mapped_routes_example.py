"""The sign-up example (examples/signup/signup.py, Nevr's): user with a hashed password, profile
and, for a paid plan, a subscription, written together or not at all, on both backends."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import charter
from charter.testing import TestClient

SIGNUP = Path(__file__).resolve().parent.parent / "examples" / "signup" / "signup.py"
ANN = {
    "username": "ann",
    "email": "Ann@Example.com",
    "password": "correct horse",
    "name": "Ann",
    "plan": "pro",
}


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("signup_example", SIGNUP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example(database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, TestClient]]:
    monkeypatch.setenv("CHARTER_DATABASE", database)
    module = _load()
    with TestClient(module.app) as client:
        yield module, client


def _stored(client: TestClient, table: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        return await charter.entities.privileged.find_many(table)

    return client.run(read())


def test_sign_up_writes_three_records_and_hides_the_password(example: Any) -> None:
    module, client = example
    answer = client.post("/auth/sign-up", json=ANN)
    assert answer.status_code == 201
    assert answer.json()["id"] == "ann" and answer.json()["email"] == "ann@example.com"
    assert "password" not in answer.json()
    (user,) = _stored(client, "User")
    assert user["password"].startswith("$argon2id$")
    assert client.run(charter.auth.verify_password(user["password"], "correct horse"))
    assert [p["display_name"] for p in _stored(client, "Profile")] == ["Ann"]
    assert [s["plan"] for s in _stored(client, "Subscription")] == ["pro"]
    assert module.OUTBOX[-1] == "ann@example.com"  # on_success, after the commit


def test_a_free_plan_skips_the_subscription(example: Any) -> None:
    _, client = example
    free = {**ANN, "username": "bob", "plan": "free"}
    assert client.post("/auth/sign-up", json=free).status_code == 201
    assert _stored(client, "Subscription") == []


def test_a_second_sign_up_leaves_no_trace(example: Any) -> None:
    module, client = example
    assert client.post("/auth/sign-up", json=ANN).status_code == 201
    sent = len(module.OUTBOX)
    again = client.post("/auth/sign-up", json={**ANN, "name": "Ann again"})
    assert again.status_code == 409
    assert [p["display_name"] for p in _stored(client, "Profile")] == ["Ann"]
    assert len(_stored(client, "Subscription")) == 1
    assert len(module.OUTBOX) == sent


def test_invalid_input_is_a_422_before_any_step(example: Any) -> None:
    _, client = example
    answer = client.post("/auth/sign-up", json={**ANN, "password": "short", "plan": "gold"})
    assert answer.status_code == 422
    locs = [d["loc"] for d in answer.json()["error"]["details"]]
    assert ["body", "password"] in locs
    assert _stored(client, "User") == []


def test_me_runs_as_the_signed_in_member(example: Any) -> None:
    module, client = example
    client.post("/auth/sign-up", json=ANN)
    client.run(charter.auth.add_user(module.app, "ann", "correct horse", role="member"))
    assert client.get("/me").status_code == 401
    me = client.get("/me", auth=("ann", "correct horse"))
    assert me.json() == {"user_id": "ann", "display_name": "Ann"}
