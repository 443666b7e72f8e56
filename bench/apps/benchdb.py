"""SQLite plumbing shared by the peer apps, so every peer does exactly the same SQLite work.

Only the peers (FastAPI, Litestar, bare ASGI) use this module; Charter brings its own storage.
The settings here (WAL, synchronous=NORMAL, one connection per thread, one writer at a time)
are the ones the benchmark README promises for every app.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from typing import Any
from urllib.parse import parse_qsl, unquote

DEFAULT_DB = "sqlite:///bench/.work/peer.db"

COLUMNS = ("id", "name", "category", "price", "stock")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS item (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        category TEXT NOT NULL,
        price REAL NOT NULL CHECK (price >= 0),
        stock INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS item_category ON item (category)",
    "CREATE INDEX IF NOT EXISTS item_price ON item (price)",
)

SELECT_BY_ID = "SELECT id, name, category, price, stock FROM item WHERE id = ?"
SELECT_BY_CATEGORY = "SELECT id, name, category, price, stock FROM item WHERE category = ? LIMIT ?"
# The query scenario's statement, written by hand the way an application would: an equality, a
# range, a sort and a limit, every value a bound parameter. SQLite picks the index (category or
# price) itself.
SELECT_PRICE_ABOVE_DESC = (
    "SELECT id, name, category, price, stock FROM item"
    " WHERE category = ? AND price > ? ORDER BY price DESC LIMIT ?"
)
INSERT = "INSERT INTO item (id, name, category, price, stock) VALUES (?, ?, ?, ?, ?)"

DEFAULT_LIMIT = 100
_LIMIT_RE = re.compile(r"(?:^|&)limit\((\d+)\)(?:&|$)")
_PRICE_GT_RE = re.compile(r"(?:^|&)price=gt=(\d+(?:\.\d+)?)(?:&|$)")
_SORT_PRICE_DESC_RE = re.compile(r"(?:^|&)sort\(-price\)(?:&|$)")

# SQLite allows one writer at a time. Without this lock, concurrent writers from a thread pool
# wait in SQLite's busy handler, which sleeps for whole milliseconds between retries;
# serializing writes in-process is what a careful application does.
WRITE_LOCK = threading.Lock()

_local = threading.local()


def db_path(url: str | None = None) -> str:
    """The file path from BENCH_DB: ``sqlite:///relative/x.db``, ``sqlite:////abs/x.db`` or a
    plain path."""
    url = url if url is not None else os.environ.get("BENCH_DB", DEFAULT_DB)
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :]
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :]
    return url


def connect(path: str | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(path or db_path(), isolation_level=None, check_same_thread=True)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def conn() -> sqlite3.Connection:
    """This thread's connection (opened on first use)."""
    c: sqlite3.Connection | None = getattr(_local, "conn", None)
    if c is None:
        c = _local.conn = connect()
    return c


def create_schema() -> None:
    path = db_path()
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    c = connect(path)
    try:
        with WRITE_LOCK:
            for stmt in SCHEMA:
                c.execute(stmt)
    finally:
        c.close()


def fetch_one(item_id: str) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = conn().execute(SELECT_BY_ID, (item_id,)).fetchone()
    return row


def fetch_by_category(category: str, limit: int) -> list[tuple[Any, ...]]:
    return conn().execute(SELECT_BY_CATEGORY, (category, limit)).fetchall()


def fetch_price_above_desc(category: str, price_gt: float, limit: int) -> list[tuple[Any, ...]]:
    return conn().execute(SELECT_PRICE_ABOVE_DESC, (category, price_gt, limit)).fetchall()


def insert(row: tuple[Any, ...]) -> None:
    """Insert one row; raises sqlite3.IntegrityError on a duplicate id."""
    c = conn()
    with WRITE_LOCK:
        c.execute(INSERT, row)


def analyze(path: str | None = None) -> None:
    """``ANALYZE`` the database, so SQLite's planner knows the table's size and how selective
    each index is (the harness runs it on every peer's file after seeding; without it SQLite
    guesses, and picks the category index for the query scenario, a plan ~100x slower)."""
    c = connect(path or db_path())
    try:
        with WRITE_LOCK:
            c.execute("ANALYZE")
    finally:
        c.close()


QUERY_REFUSED = "only category=C, limit(N), and price=gt=N with sort(-price)"


def query_rows(category: str, query_string: str) -> list[tuple[Any, ...]] | None:
    """The rows of a peer's ``GET /Item/?category=C...``: ``limit(N)`` alone (the list
    scenario), or with ``price=gt=N&sort(-price)`` (the query scenario, hand-written SQL);
    None for any other use of ``price`` (the peer answers 400). Every SQLite peer serves its
    list through this, so they parse and query identically."""
    limit = parse_limit(query_string)
    keys = {key for key, _ in parse_qsl(query_string, keep_blank_values=True)}
    if "price" not in keys:
        return fetch_by_category(category, limit)
    price_gt = parse_price_query(query_string)
    if price_gt is None:
        return None
    return fetch_price_above_desc(category, price_gt, limit)


def parse_limit(query_string: str) -> int:
    """The ``n`` of a literal ``limit(n)`` in a raw query string (a minimal parse: the peers
    support only this one form of Charter's query language)."""
    m = _LIMIT_RE.search(unquote(query_string))
    return DEFAULT_LIMIT if m is None else int(m.group(1))


def parse_price_query(query_string: str) -> float | None:
    """``N`` when a raw query string asks for ``price=gt=N`` sorted by ``sort(-price)`` (the
    query scenario: ``category=c3&price=gt=20&sort(-price)&limit(10)``), else None. As minimal
    as parse_limit: these two literal forms, nothing else of the query language."""
    text = unquote(query_string)
    m = _PRICE_GT_RE.search(text)
    if m is None or _SORT_PRICE_DESC_RE.search(text) is None:
        return None
    return float(m.group(1))
