"""SQLite errors answer by their result code (issue 10): each class provoked for real.

A locked database, a full one, a read-only file, a vanished folder, a value over SQLite's
length limit: each is a 4xx or a 503 with the error envelope (never a bare 500), and leaves
what is stored as it was. The table itself is checked against errors SQLite really raises.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from charter import App, Field, Table
from charter.storage import StorageFull, sqlite_errors
from charter.storage import sqlite as sqlite_storage
from charter.testing import TestClient

pytestmark = pytest.mark.sqlite_only


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = ""


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code
    assert "sqlite" not in response.text.lower()  # SQLite's own text is never sent
    return body["error"]  # type: ignore[no-any-return]


class _Releasing:
    """Stands in for ``sqlite_errors.pause``: the first pause between two attempts runs
    ``release`` (deterministically, "the lock went away while the request was retried")."""

    def __init__(self, release: Callable[[], Any]) -> None:
        self.release = release
        self.pauses = 0

    def __call__(self, seconds: float) -> None:
        self.pauses += 1
        if self.pauses == 1:
            self.release()
        time.sleep(seconds)


def _rollback(conn: sqlite3.Connection) -> Callable[[], Any]:
    return lambda: conn.execute("ROLLBACK") if conn.in_transaction else None


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CHARTER_POOL_TIMEOUT", "0.1")  # SQLite's busy timeout
    yield


# -- BUSY: another process holds the write lock --------------------------------------------------


@pytest.mark.usefixtures("short_busy_timeout")
def test_a_database_locked_by_another_process_is_a_503_and_changes_nothing(
    tmp_path: Path,
) -> None:
    app = App(tables=[Product], database=f"sqlite:///{tmp_path}/t.db")
    assert app.database.busy_timeout == 0.1  # type: ignore[attr-defined]
    with TestClient(app) as client:
        assert client.post("/Product/", json={"id": "p1", "name": "a"}).status_code == 201
        other = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process writing, for longer than a while
        try:
            response = client.post("/Product/", json={"id": "p2", "name": "b"})
            error_of(response, 503, "UNAVAILABLE")
            assert response.headers["retry-after"] == "1"
            patched = client.patch("/Product/p1", json={"name": "changed"})
            error_of(patched, 503, "UNAVAILABLE")
            # Reads do not wait on the lock; nothing was written.
            assert client.get("/Product/p1").json() == {"id": "p1", "name": "a"}
            assert client.get("/Product/p2").status_code == 404
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert client.post("/Product/", json={"id": "p2", "name": "b"}).status_code == 201


@pytest.mark.usefixtures("short_busy_timeout")
def test_a_lock_released_while_the_write_is_retried_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = App(tables=[Product], database=f"sqlite:///{tmp_path}/t.db")
    with TestClient(app) as client:
        other = sqlite3.connect(tmp_path / "t.db", isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        clock = _Releasing(_rollback(other))
        monkeypatch.setattr(sqlite_errors, "pause", clock)
        try:
            response = client.post("/Product/", json={"id": "p1", "name": "a"})
        finally:
            if other.in_transaction:
                other.execute("ROLLBACK")
            other.close()
        assert response.status_code == 201, response.text
        assert clock.pauses == 1
        assert client.get("/Product/p1").json() == {"id": "p1", "name": "a"}


# -- LOCKED: a shared-cache memory database, a table held by another connection ------------------


def test_a_locked_table_is_retried_then_a_503_for_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    app = App(tables=[Product], database="sqlite:///:memory:")
    with TestClient(app) as client:
        assert client.post("/Product/", json={"id": "p1", "name": "a"}).status_code == 201
        path = app.database.path  # type: ignore[attr-defined]
        other = sqlite3.connect(path, uri=True, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE \"Product\" SET version = version WHERE id = 'p1'")
        try:
            for url in ("/Product/p1", "/Product/", "/Product/?limit(10)"):
                response = client.get(url)
                error_of(response, 503, "UNAVAILABLE")
                assert response.headers["retry-after"] == "1"
            monkeypatch.setattr(sqlite_errors, "pause", _Releasing(_rollback(other)))
            assert client.get("/Product/p1").json() == {"id": "p1", "name": "a"}
        finally:
            if other.in_transaction:
                other.execute("ROLLBACK")
            other.close()
        assert client.get("/Product/").json() == [{"id": "p1", "name": "a"}]


# -- FULL: the database cannot grow --------------------------------------------------------------


async def test_a_full_database_is_a_503_storage_full_and_changes_nothing(tmp_path: Path) -> None:
    app = App(tables=[Product], database=f"sqlite:///{tmp_path}/t.db")
    async with TestClient(app) as client:
        assert (await client.post("/Product/", json={"id": "p1", "name": "a"})).status_code == 201
        await app.storage.carts.set("k", 1)

        def fill(conn: sqlite3.Connection) -> None:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")  # no page more

        database: Any = app.database
        await database.run_write(fill)
        big = "x" * 200_000  # needs overflow pages
        response = await client.post("/Product/", json={"id": "p2", "name": big})
        error_of(response, 503, "STORAGE_FULL")
        assert response.headers["retry-after"] == "30"
        error_of(await client.put("/Product/p1", json={"name": big}), 503, "STORAGE_FULL")
        error_of(await client.patch("/Product/p1", json={"name": big}), 503, "STORAGE_FULL")
        with pytest.raises(StorageFull):  # the storage proxy's writes too
            await app.storage.carts.set("k", big)
        assert (await client.get("/Product/p2")).status_code == 404
        assert (await client.get("/Product/p1")).json() == {"id": "p1", "name": "a"}
        assert await app.storage.carts.get("k") == 1
        # Writes that fit still commit, and the writer carries on once there is room.
        assert (await client.patch("/Product/p1", json={"name": "b"})).status_code == 204
        await database.run_write(lambda conn: conn.execute("PRAGMA max_page_count = 1000000"))
        assert (await client.post("/Product/", json={"id": "p2", "name": big})).status_code == 201


# -- READONLY, CANTOPEN: a file that cannot be written, a folder gone ----------------------------


def test_a_read_only_database_file_reads_and_answers_writes_503(tmp_path: Path) -> None:
    with TestClient(App(tables=[Product], database=f"sqlite:///{tmp_path}/t.db")) as client:
        assert client.post("/Product/", json={"id": "p1", "name": "a"}).status_code == 201
    read_only = App(tables=[Product], database=f"sqlite:///file:{tmp_path}/t.db?mode=ro")
    with TestClient(read_only) as client:
        assert client.get("/Product/p1").json() == {"id": "p1", "name": "a"}
        response = client.post("/Product/", json={"id": "p2", "name": "b"})
        error_of(response, 503, "UNAVAILABLE")
        assert response.headers["retry-after"] == "1"
        error_of(client.delete("/Product/p1"), 503, "UNAVAILABLE")
        assert client.get("/Product/").json() == [{"id": "p1", "name": "a"}]


def test_a_database_whose_folder_is_gone_answers_reads_503(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    app = App(tables=[Product], database=f"sqlite:///{folder}/t.db")
    with TestClient(app) as client:
        assert client.post("/Product/", json={"id": "p1", "name": "a"}).status_code == 201
        shutil.rmtree(folder)  # a volume gone: a new connection cannot open the file
        for url in ("/Product/p1", "/Product/", "/Product/?limit(5)"):
            response = client.get(url)
            error_of(response, 503, "UNAVAILABLE")
            assert response.headers["retry-after"] == "1"


# -- TOOBIG: a value over SQLite's length limit --------------------------------------------------


async def test_a_value_over_sqlites_length_limit_is_a_413_and_changes_nothing(
    tmp_path: Path,
) -> None:
    app = App(tables=[Product], database=f"sqlite:///{tmp_path}/t.db")
    async with TestClient(app) as client:
        assert (await client.post("/Product/", json={"id": "p1", "name": "a"})).status_code == 201
        database: Any = app.database
        await database.run_write(lambda c: c.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000))
        big = "x" * 20_000
        error_of(
            await client.post("/Product/", json={"id": "p2", "name": big}),
            413,
            "PAYLOAD_TOO_LARGE",
        )
        error_of(await client.patch("/Product/p1", json={"name": big}), 413, "PAYLOAD_TOO_LARGE")
        error_of(await client.put("/Product/p1", json={"name": big}), 413, "PAYLOAD_TOO_LARGE")
        assert (await client.get("/Product/p2")).status_code == 404
        assert (await client.get("/Product/p1")).json() == {"id": "p1", "name": "a"}
        assert (await client.put("/Product/p1", json={"name": "b"})).status_code == 204


# -- CONSTRAINT: duplicates through the API, every kind through the table ------------------------


def test_a_duplicate_key_is_a_409_naming_the_record(tmp_path: Path) -> None:
    with TestClient(App(tables=[Product], database=f"sqlite:///{tmp_path}/t.db")) as client:
        assert client.post("/Product/", json={"id": "p1", "name": "a"}).status_code == 201
        error = error_of(client.post("/Product/", json={"id": "p1", "name": "b"}), 409, "CONFLICT")
        assert error["message"] == "Product 'p1' already exists"
        assert client.get("/Product/p1").json() == {"id": "p1", "name": "a"}


def _raised(conn: sqlite3.Connection, sql: str, *params: Any) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as caught:
        conn.execute(sql, params)
    return caught.value


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    conn.executescript(
        """
        PRAGMA foreign_keys = ON;
        CREATE TABLE parent (id INTEGER PRIMARY KEY, code TEXT UNIQUE,
                             note TEXT NOT NULL DEFAULT '', n INT CHECK (n >= 0));
        CREATE TABLE child (id INTEGER PRIMARY KEY, parent INT REFERENCES parent (id));
        CREATE TABLE strict (id INTEGER PRIMARY KEY, n INT) STRICT;
        CREATE TABLE guarded (id INTEGER PRIMARY KEY);
        CREATE TRIGGER refuse BEFORE INSERT ON guarded BEGIN SELECT RAISE(ABORT, 'no'); END;
        INSERT INTO parent (id, code) VALUES (1, 'a');
        """
    )
    yield conn
    conn.close()


def test_each_constraint_kind_has_its_status(conn: sqlite3.Connection) -> None:
    cases = {
        "INSERT INTO parent (id) VALUES (1)": (409, "CONFLICT"),  # PRIMARYKEY
        "INSERT INTO parent (id, code) VALUES (2, 'a')": (409, "CONFLICT"),  # UNIQUE
        "INSERT INTO child (parent) VALUES (99)": (409, "CONFLICT"),  # FOREIGNKEY
        "INSERT INTO guarded DEFAULT VALUES": (409, "CONFLICT"),  # TRIGGER
        "INSERT INTO parent (id, note) VALUES (3, NULL)": (422, "INVALID_PROPERTIES"),
        "INSERT INTO parent (id, n) VALUES (3, -1)": (422, "INVALID_PROPERTIES"),  # CHECK
        "INSERT INTO strict (n) VALUES ('x')": (422, "INVALID_PROPERTIES"),  # DATATYPE
        "INSERT INTO parent (id) VALUES ('x')": (422, "INVALID_PROPERTIES"),  # MISMATCH
    }
    for sql, (status, code) in cases.items():
        exc = _raised(conn, sql)
        error = sqlite_errors.translate(exc)
        assert error is not None, (sql, exc.sqlite_errorname)
        assert (error.status_code, error.code) == (status, code), sql
        assert str(exc) not in error.message  # a message of its own, not SQLite's
    duplicates = [_raised(conn, sql) for sql in list(cases)[:2]]
    assert all(sqlite_errors.is_duplicate(exc) for exc in duplicates)
    assert not sqlite_errors.is_duplicate(_raised(conn, "INSERT INTO child (parent) VALUES (99)"))


def test_the_table_reads_codes_never_messages(conn: sqlite3.Connection) -> None:
    assert sqlite_errors.translate(_raised(conn, "SELEKT 1")) is None  # SQLITE_ERROR: a 500
    assert sqlite_errors.translate(sqlite3.OperationalError("database is locked")) is None
    assert sqlite_errors.translate(ValueError("database is full")) is None
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 100)
    too_big = _raised(conn, "SELECT ?", "x" * 200)
    assert too_big.sqlite_errorcode == sqlite3.SQLITE_TOOBIG
    error = sqlite_errors.translate(too_big)
    assert error is not None and error.status_code == 413


def test_a_write_blocked_by_a_reader_of_a_memory_table_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer meets LOCKED (a shared-cache reader holds the table) and commits once the
    reader is done, instead of failing the request."""
    app = App(tables=[Product], database="sqlite:///:memory:")
    with TestClient(app) as client:
        assert client.post("/Product/", json={"id": "p1", "name": "a"}).status_code == 201
        path = app.database.path  # type: ignore[attr-defined]
        reader = sqlite3.connect(path, uri=True, isolation_level=None, check_same_thread=False)
        reader.execute("BEGIN")
        reader.execute('SELECT count(*) FROM "Product"').fetchall()  # holds a read lock
        clock = _Releasing(lambda: reader.execute("COMMIT"))
        monkeypatch.setattr(sqlite_storage, "pause", clock)
        try:
            response = client.post("/Product/", json={"id": "p2", "name": "b"})
        finally:
            reader.close()
        assert response.status_code == 201, response.text
        assert clock.pauses == 1
        assert client.get("/Product/p2").json() == {"id": "p2", "name": "b"}
