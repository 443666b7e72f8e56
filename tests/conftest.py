"""Shared fixtures: every test gets its own SQLite file and builds its app inline."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from charter import App, Table
from charter.testing import TestClient


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A fresh SQLite database URL for this test."""
    return f"sqlite:///{tmp_path}/t.db"


@pytest.fixture
def serve(database: str) -> Iterator[Callable[..., TestClient]]:
    """``serve(TableA, TableB, **app_options)``: a started sync client on a new app.

    The app is ``client.app``; every client is shut down (lifespan included) after the test.
    """
    clients: list[TestClient] = []

    def make(*tables: type[Table], **options: Any) -> TestClient:
        app = App(tables=list(tables), database=options.pop("database", database), **options)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)
