"""Opening SQLite: the file a URL names, and connections set up alike (WAL-friendly settings,
a busy timeout, read-only when asked)."""

from __future__ import annotations

import sqlite3

__all__ = ["BUSY_TIMEOUT", "connect", "path_from_url"]

BUSY_TIMEOUT = 30.0  # seconds a statement waits for a lock held by another process


def path_from_url(url: str) -> str:
    path = url.removeprefix("sqlite:")
    if path.startswith("///"):
        path = path[3:]
    elif path.startswith("//"):
        path = path[2:]
    return path or ":memory:"


def connect(
    path: str, *, readonly: bool = False, timeout: float = BUSY_TIMEOUT
) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=256,
        timeout=timeout,
        uri=path.startswith("file:"),
    )
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    conn.execute("PRAGMA synchronous = NORMAL")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    return conn


def journals_in_memory(conn: sqlite3.Connection, yes: bool) -> None:
    """Keep the writer's statement and savepoint journals in memory (``yes``) or let SQLite
    spill them to temporary files. In memory while it commits requests: each job's savepoint
    journal outgrew SQLite's 64 KiB and made it create, write and delete a file every few
    commits. On disk for a migration or a statement of the app's own (the storage proxy), whose
    journal may hold a whole table."""
    conn.execute(f"PRAGMA temp_store = {'MEMORY' if yes else 'DEFAULT'}")
