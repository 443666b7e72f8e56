"""``charter.testing.TestClient``: sync and async, with the app's lifespan."""

import contextlib
import sqlite3
import threading
from pathlib import Path

import cbor2
import httpx
import pytest

from charter import App, Field, Table
from charter.testing import TestClient


class Note(Table):
    id: str = Field(primary_key=True)
    text: str = ""


def tables_in(database: str) -> set[str]:
    with contextlib.closing(sqlite3.connect(database.removeprefix("sqlite:///"))) as conn:
        return {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def storage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("charter-sqlite")]


def client_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "charter-testclient"]


def test_sync_client(database):
    app = App(tables=[Note], database=database)
    with TestClient(app) as client:
        assert isinstance(client, httpx.Client)
        assert "Note" in tables_in(database)  # startup ran before any request
        assert client.put("/Note/n", json={"text": "hi"}).status_code == 204
        assert client.get("/Note/n").json() == {"id": "n", "text": "hi"}
        assert str(client.get("/Note/n").url) == "http://testserver/Note/n"
    assert not storage_threads()  # shutdown closed the storage
    assert not client_threads()


async def test_async_client(database):
    app = App(tables=[Note], database=database)
    async with TestClient(app) as client:
        assert isinstance(client, httpx.AsyncClient)
        assert "Note" in tables_in(database)
        assert (await client.put("/Note/n", json={"text": "hi"})).status_code == 204
        assert (await client.get("/Note/n")).json() == {"id": "n", "text": "hi"}
        assert storage_threads()
    assert not storage_threads()


def test_an_app_can_be_served_again_after_shutdown(database):
    app = App(tables=[Note], database=database)
    with TestClient(app) as client:
        client.put("/Note/n", json={"text": "first"})
    with TestClient(app) as client:
        assert client.get("/Note/n").json()["text"] == "first"
        client.put("/Note/n", json={"text": "second"})
    with TestClient(App(tables=[Note], database=database)) as client:
        assert client.get("/Note/n").json()["text"] == "second"


def test_a_failing_startup_is_reported(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    app = App(tables=[Note], database=f"sqlite:///{blocker}/sub/t.db")
    with pytest.raises(RuntimeError, match="startup failed"), TestClient(app):
        pass
    assert not storage_threads()
    assert not client_threads()


def test_client_options_are_passed_to_httpx(database):
    app = App(tables=[Note], database=database)
    with TestClient(app, headers={"accept": "application/cbor"}) as client:
        assert client.put("/Note/n", json={"text": "hi"}).status_code == 204
        response = client.get("/Note/n")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/cbor"
        assert cbor2.loads(response.content)["text"] == "hi"


def test_app_exceptions_become_responses_not_test_errors(database):
    class Broken(Table):
        id: str = Field(primary_key=True)

        async def get(self, query):
            raise RuntimeError("broken")

    with TestClient(App(tables=[Broken], database=database)) as client:
        assert client.get("/Broken/x").status_code == 500
