"""Clients that ask for a large collection and never read it hold no database connection.

Each such request's rows are drained into a spill (a few MB in memory, the rest in a temporary
file) and its connection goes back to the pool, so other clients' reads go on; when the slow
clients hang up, their spill files are deleted. Runs a real server on both backends, with a
pool of 4 connections on PostgreSQL and 12 stuck readers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import Server

APP = """
from charter import App, Field, Table


class Item(Table):
    id: str = Field(primary_key=True)
    text: str = ""


app = App(tables=[Item])
"""

ITEMS = 12_000  # ~12 MB as JSON: far more than the sockets' buffers hold
READERS = 12


def _fill(database: str) -> None:
    """Write the items straight into the storage layout (much faster than the API)."""
    if database.startswith("sqlite:"):
        conn = sqlite3.connect(database.removeprefix("sqlite:///"))
        conn.executemany(
            "INSERT INTO \"Item\" VALUES (?, json_object('id', ?, 'text', ?), 1)",
            ((f"i{n:05}", f"i{n:05}", "x" * 1000) for n in range(ITEMS)),
        )
        conn.commit()
        conn.close()
        return
    import asyncpg

    async def fill() -> None:
        conn = await asyncpg.connect(database)
        try:
            await conn.execute(
                """INSERT INTO "Item" SELECT to_jsonb('i' || lpad(g::text, 5, '0')),
                jsonb_build_object('id', 'i' || lpad(g::text, 5, '0'), 'text', repeat('x', 1000)),
                1 FROM generate_series(0, $1 - 1) AS g""",
                ITEMS,
            )
        finally:
            await conn.close()

    asyncio.run(fill())


@pytest.fixture
def server(tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    (tmp_path / "slow_app.py").write_text(APP)
    monkeypatch.setenv("CHARTER_POOL_SIZE", "4")
    monkeypatch.setenv("CHARTER_POOL_TIMEOUT", "5")
    with Server(f"{tmp_path / 'slow_app.py'}:app", "--database", database) as srv:
        _fill(database)
        yield srv


def _stuck_reader(url: str) -> socket.socket:
    """A client that asks for the whole collection, reads its first bytes, then stops."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /Item/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert sock.recv(64).startswith(b"HTTP/1.1 200")  # the query runs; now read no more
    return sock


def _spill_files(pid: int) -> int:
    found = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found += "charter-spill" in os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
    return found


def test_readers_that_never_read_do_not_starve_point_reads(server: Server) -> None:
    assert server.proc is not None
    readers = [_stuck_reader(server.url) for _ in range(READERS)]
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for n in range(0, ITEMS, ITEMS // 20):  # bounded: 20 reads, each within 10 s
                response = client.get(f"/Item/i{n:05}")
                assert response.status_code == 200, response.text
                assert response.json()["id"] == f"i{n:05}"
            # A whole collection still streams for a client that reads.
            assert len(client.get("/Item/", timeout=60).json()) == ITEMS
        # The stuck readers' rows wait on disk (each spills once its reader has taken nothing
        # for a moment; on a busy machine that moment may come after the reads above).
        deadline = time.monotonic() + 10
        while not _spill_files(server.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _spill_files(server.proc.pid) > 0, server.read_log()[-4000:]
    finally:
        for sock in readers:
            sock.close()
    deadline = time.monotonic() + 20
    while _spill_files(server.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _spill_files(server.proc.pid) == 0, "a spill file outlived its client"
