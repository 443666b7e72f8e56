"""A large document does not slow reads of its neighbours; databases of the old layout migrate.

On SQLite a table used to be ``WITHOUT ROWID``: each document lived inside the primary-key
b-tree, and a seek comparing a key with a large row's read the whole row, so one 9 MB record
made point reads near it read megabytes (6x slower over HTTP). Tables are now rowid tables.
The tests assert that layout and what it buys (bytes read from the file, not time), and that a
database written by the old layout is rebuilt at start without losing anything.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from charter import App, Field, Table
from charter.testing import TestClient

BIG = 9 * 1024 * 1024


class Note(Table):
    id: str = Field(primary_key=True)
    n: int = Field(0, indexed=True)
    text: str = ""


class Counter(Table):
    id: int = Field(primary_key=True)
    label: str = Field("", indexed=True)


def _key(i: int) -> str:
    return f"note-{i:04}"


MIDDLE = 20
NEIGHBOURS = [_key(i) for i in range(MIDDLE - 10, MIDDLE + 11) if i != MIDDLE]


def _fill(client: TestClient) -> None:
    """41 notes in id order, the middle one with a 9 MB text."""
    for i in range(2 * MIDDLE + 1):
        text = "x" * BIG if i == MIDDLE else f"note {i}"
        response = client.put(f"/Note/{_key(i)}", json={"n": i, "text": text})
        assert response.status_code == 204, response.text


def _bytes_read() -> int:
    """Bytes this process has read through read()/pread() so far (SQLite reads pages so)."""
    io = Path("/proc/self/io")
    if not io.exists():
        pytest.skip("needs Linux's /proc/self/io")
    for line in io.read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def _copied_into_the_file(database: str) -> None:
    """Wait until the WAL is wholly copied into the database file: the checkpoint, which
    reads the WAL in this process, is then over before anything is measured."""
    deadline = time.monotonic() + 10
    with _sqlite(database) as conn:
        while True:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if (busy == 0 and frames == copied) or time.monotonic() > deadline:
                return
            time.sleep(0.05)


@contextlib.contextmanager
def _sqlite(database: str) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(database.removeprefix("sqlite:///"))) as conn:
        yield conn


def _table_sql(conn: sqlite3.Connection, name: str) -> str:
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    assert row is not None, f"no table {name}"
    return str(row[0])


def test_a_large_document_and_its_neighbours_are_served(database: str) -> None:
    with TestClient(App(tables=[Note], database=database)) as client:
        _fill(client)
        for key in NEIGHBOURS:
            assert client.get(f"/Note/{key}").json() == {
                "id": key,
                "n": int(key[-4:]),
                "text": f"note {int(key[-4:])}",
            }
        big = client.get(f"/Note/{_key(MIDDLE)}").json()
        assert len(big["text"]) == BIG
        # conditions (json_extract / ->> on the document) and indexes still work on it
        found = client.get(f"/Note/?n={MIDDLE}&select(id)").json()
        assert found == [_key(MIDDLE)]
        found = client.get("/Note/?text=sw=xxxx&select(id)").json()
        assert found == [_key(MIDDLE)]
        ids = client.get(f"/Note/?n=ge={MIDDLE - 10}&n=le={MIDDLE + 10}&sort(n)&select(id)")
        assert ids.json() == sorted([*NEIGHBOURS, _key(MIDDLE)])
        assert client.get("/Note/?sort(id)&select(n)").json() == list(range(2 * MIDDLE + 1))


@pytest.mark.sqlite_only
def test_reading_the_neighbours_does_not_read_the_large_document(database: str) -> None:
    with TestClient(App(tables=[Note], database=database)) as client:
        _fill(client)
        _copied_into_the_file(database)  # (not the checkpoint thread's reads in what follows)
        for key in NEIGHBOURS:  # warm the readers' caches
            assert client.get(f"/Note/{key}").status_code == 200
        before = _bytes_read()
        for _ in range(3):
            for key in NEIGHBOURS:
                assert client.get(f"/Note/{key}").status_code == 200
            listed = client.get(f"/Note/?n=ge={MIDDLE + 1}&n=le={MIDDLE + 10}&select(id)")
            assert len(listed.json()) == 10
        read = _bytes_read() - before
    # The old layout read the 9 MB document again whenever a seek compared a key with it.
    assert read < 1024 * 1024, f"reading 20 small neighbours read {read} bytes"


@pytest.mark.sqlite_only
def test_documents_live_in_rowid_tables(database: str) -> None:
    with TestClient(App(tables=[Note, Counter], database=database)) as client:
        _fill(client)
        assert client.put("/Counter/7", json={"label": "seven"}).status_code == 204
        # an index ends with id: its order is the sort's total order, walked without sorting
        plan = client.get("/Note/?n=gt=3&sort(n)&limit(3)&explain(true)").json()["sqlite"]
        assert any("Note__n" in line for line in plan), plan
        assert not any("TEMP B-TREE" in line for line in plan), plan
    with _sqlite(database) as conn:
        for name in ("Note", "Counter"):
            assert "WITHOUT ROWID" not in _table_sql(conn, name).upper()
        # the document is in the table's b-tree, keyed by rowid, not in the key's index
        assert conn.execute(
            'SELECT length(data) > ? FROM "Note" WHERE rowid = '
            '(SELECT rowid FROM "Note" WHERE id = ?)',
            (BIG, _key(MIDDLE)),
        ).fetchone() == (1,)
        # an integer key is the rowid itself: no second b-tree to seek
        assert conn.execute('SELECT rowid, id FROM "Counter"').fetchall() == [(7, 7)]
        key_indexes = [
            row[1] for row in conn.execute("PRAGMA index_list('Counter')") if row[3] == "pk"
        ]
        assert key_indexes == []


# -- migration of the previous layout ------------------------------------------------------

# The DDL the previous code ran (charter/storage/sqlite_schema.py before the rowid layout).
OLD_LAYOUT = [
    "CREATE TABLE _charter_tables "
    "(name TEXT PRIMARY KEY, fields TEXT NOT NULL, indexes TEXT NOT NULL)",
    "CREATE TABLE _charter_archive (tbl TEXT NOT NULL, id ANY, "
    "field TEXT NOT NULL, value TEXT, archived INTEGER NOT NULL)",
    'CREATE TABLE "Note" (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, '
    "version INTEGER NOT NULL) WITHOUT ROWID",
    'CREATE INDEX "Note__n" ON "Note" (json_extract(data, \'$.n\'))',
    'CREATE TABLE "Counter" (id INTEGER PRIMARY KEY NOT NULL, data TEXT NOT NULL, '
    "version INTEGER NOT NULL) WITHOUT ROWID",
    'CREATE INDEX "Counter__label" ON "Counter" (json_extract(data, \'$.label\'))',
]
OLD_TABLES = [
    ("Note", '["id", "n", "text"]', '["Note__n"]'),
    ("Counter", '["id", "label"]', '["Counter__label"]'),
]
NOTES = {
    _key(i): ({"id": _key(i), "n": i, "text": "x" * BIG if i == 37 else f"note {i}"}, 1_700_000 + i)
    for i in range(300, 0, -1)  # written out of id order
}
COUNTERS = {i: ({"id": i, "label": f"c{i % 7}"}, 1_800_000 + i) for i in range(1, 101)}


def _write_old_layout(path: Path, counters: dict[int | str, tuple[dict, int]]) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN")
        for statement in OLD_LAYOUT:
            conn.execute(statement)
        conn.executemany("INSERT INTO _charter_tables VALUES (?, ?, ?)", OLD_TABLES)
        conn.executemany(
            'INSERT INTO "Note" (id, data, version) VALUES (?, ?, ?)',
            [(key, json.dumps(doc), version) for key, (doc, version) in NOTES.items()],
        )
        conn.executemany(
            'INSERT INTO "Counter" (id, data, version) VALUES (?, ?, ?)',
            [(key, json.dumps(doc), version) for key, (doc, version) in counters.items()],
        )
        conn.execute("COMMIT")


class NoteV2(Table, name="Note"):
    id: str = Field(primary_key=True)
    n: int = Field(0, indexed=True)
    text: str = ""
    tag: str = Field("none", indexed=True)


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    return sorted(
        (kind, name, sql or "")
        for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master")
    )


@pytest.mark.sqlite_only
def test_a_database_of_the_old_layout_migrates_and_serves_every_record(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _write_old_layout(path, dict(COUNTERS))
    database = f"sqlite:///{path}"
    # a changed declaration too (a new indexed field): both migrations in one start
    with TestClient(App(tables=[NoteV2, Counter], database=database)) as client:
        for key, (doc, version) in NOTES.items():
            response = client.get(f"/Note/{key}")
            assert response.status_code == 200, key
            assert response.json() == {**doc, "tag": "none"}
            assert response.headers["etag"] == f'"{version}"'  # versions kept
        for key, (doc, version) in COUNTERS.items():
            response = client.get(f"/Counter/{key}")
            assert response.json() == doc
            assert response.headers["etag"] == f'"{version}"'
        listed = client.get("/Note/?sort(n)&select(id)").json()
        assert listed == [_key(i) for i in range(1, 301)]
        query = "n=gt=250&sort(-n)&limit(3)"
        assert client.get(f"/Note/?{query}&select(n)").json() == [300, 299, 298]
        plan = client.get(f"/Note/?{query}&explain(true)").json()["sqlite"]
        assert any("Note__n" in line for line in plan), plan
        plan = client.get("/Note/?tag=none&sort(id)&limit(3)&explain(true)").json()["sqlite"]
        assert not any("TEMP B-TREE FOR ORDER BY" in line for line in plan), plan
        assert len(client.get("/Note/?tag=none&select(id)").json()) == 300
        labelled = client.get("/Counter/?label=c3&sort(id)&select(id)").json()
        assert labelled == [i for i in COUNTERS if i % 7 == 3]
        # writes after the migration: a version never goes back
        patched = client.patch(f"/Note/{_key(37)}", json={"n": 1000})
        assert patched.status_code in (200, 204), patched.text
        assert int(client.get(f"/Note/{_key(37)}").headers["etag"].strip('"')) > 1_700_037
        assert client.put("/Counter/500", json={"label": "new"}).status_code == 204
        assert client.get(f"/Note/{_key(37)}").json()["text"] == "x" * BIG

    with _sqlite(database) as conn:
        for name in ("Note", "Counter"):
            assert "WITHOUT ROWID" not in _table_sql(conn, name).upper()
        names = {name for kind, name, _ in _schema(conn) if kind in ("table", "index")}
        assert {"Note__n", "Note__tag", "Counter__label"} <= names
        assert not [name for name in names if "rebuild" in name]
        assert conn.execute('SELECT count(*) FROM "Note"').fetchone() == (300,)
        assert conn.execute('SELECT count(*) FROM "Counter"').fetchone() == (101,)
        layout = _schema(conn)

    # A second start finds the new layout and changes nothing.
    with TestClient(App(tables=[NoteV2, Counter], database=database)) as client:
        assert len(client.get("/Note/?select(id)").json()) == 300
    with _sqlite(database) as conn:
        assert _schema(conn) == layout


@pytest.mark.sqlite_only
def test_a_migration_that_cannot_copy_a_record_changes_nothing(tmp_path: Path) -> None:
    # The old layout let an INTEGER key column hold text; a rowid key cannot.
    path = tmp_path / "odd.db"
    _write_old_layout(path, {**COUNTERS, "seven": ({"id": "seven", "label": "c0"}, 1)})
    with _sqlite(f"sqlite:///{path}") as conn:
        before = _schema(conn)
    app = App(tables=[NoteV2, Counter], database=f"sqlite:///{path}")
    with pytest.raises(RuntimeError, match="Counter"), TestClient(app):
        pass
    with _sqlite(f"sqlite:///{path}") as conn:
        assert _schema(conn) == before  # still the old layout, nothing dropped or added
        assert conn.execute('SELECT count(*) FROM "Note"').fetchone() == (300,)
        assert conn.execute('SELECT count(*) FROM "Counter"').fetchone() == (101,)
