"""Collection results stream: a million rows through a real server in bounded memory, in every
format, and a client that goes away stops the query."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import cbor2
import httpx
import msgspec
import pytest

from tests.servers import Server

APP = """
from charter import App, Field, Table


class Line(Table):
    id: str = Field(primary_key=True)
    n: int = 0
    label: str = ""


app = App(tables=[Line])
"""

ROWS = 1_000_000


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def _fill(path: Path, count: int) -> None:
    """Write ``count`` records straight into the storage layout (id, JSON document, version)."""
    conn = sqlite3.connect(path)
    conn.execute(
        'CREATE TABLE "Line" (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, '
        "version INTEGER NOT NULL) WITHOUT ROWID"
    )
    rows = (
        (
            f"r{i:07}",
            json.dumps({"id": f"r{i:07}", "n": i, "label": f"line {i}"}, separators=(",", ":")),
            1,
        )
        for i in range(count)
    )
    conn.executemany('INSERT INTO "Line" VALUES (?, ?, ?)', rows)
    conn.commit()
    conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("stream")
    (root / "lines.py").write_text(APP)
    _fill(root / "l.db", ROWS)
    srv = Server(f"{root / 'lines.py'}:app", "--database", f"sqlite:///{root / 'l.db'}").start()
    yield srv
    srv.stop()


def _download(client: httpx.Client, path: str, accept: str) -> tuple[int, bytes, bytes]:
    size, head, tail = 0, b"", b""
    with client.stream("GET", path, headers={"accept": accept}) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            if not head:
                head = chunk[:32]
            size += len(chunk)
            tail = (tail + chunk)[-16:]
    return size, head, tail


@pytest.mark.slow
def test_a_million_rows_stream_in_bounded_memory(server: Server) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    with httpx.Client(base_url=server.url, timeout=300) as client:
        for accept in ("application/json", "application/msgpack", "application/cbor", "text/csv"):
            small = client.get("/Line/?sort(n)&limit(3)", headers={"accept": accept})
            assert small.status_code == 200
        assert json.loads(client.get("/Line/?n=lt=2&sort(n)").content) == [
            {"id": "r0000000", "n": 0, "label": "line 0"},
            {"id": "r0000001", "n": 1, "label": "line 1"},
        ]
        assert msgspec.msgpack.decode(
            client.get("/Line/?n=lt=20&sort(n)", headers={"accept": "application/msgpack"}).content
        ) == [{"id": f"r{i:07}", "n": i, "label": f"line {i}"} for i in range(20)]
        assert cbor2.loads(
            client.get("/Line/?n=lt=3&select(n)", headers={"accept": "application/cbor"}).content
        ) == [0, 1, 2]
        baseline = _peak_rss_kb(pid)

        size, head, tail = _download(client, "/Line/", "application/json")
        assert head.startswith(b'[{"id":"r0000000"') and tail.endswith(b"}]")
        assert size > 40 * ROWS
        size, head, _ = _download(client, "/Line/", "application/msgpack")
        assert head[:5] == b"\xdd" + ROWS.to_bytes(4, "big")  # array32 of exactly ROWS items
        size, head, tail = _download(client, "/Line/?select(n)", "application/cbor")
        assert head[:1] == b"\x9f" and tail.endswith(b"\xff")  # an indefinite-length array
        size, head, _ = _download(client, "/Line/", "text/csv")
        assert head.startswith(b"id,n,label")
        grown_mb = (_peak_rss_kb(pid) - baseline) / 1024
        assert grown_mb < 50, f"the server grew by {grown_mb:.1f} MB"


@pytest.mark.slow
def test_a_client_that_goes_away_stops_the_query(server: Server) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for accept in ("application/json", "text/csv"):
            with client.stream("GET", "/Line/", headers={"accept": accept}) as response:
                assert response.status_code == 200
                next(response.iter_raw())  # the first chunk, then hang up
            time.sleep(0.5)
            before = _cpu_seconds(pid)
            time.sleep(1.5)
            assert _cpu_seconds(pid) - before < 0.3, f"{accept}: the server kept reading"
            started = time.monotonic()
            put = client.put("/Line/extra", json={"n": -1, "label": "after"})
            assert put.status_code == 204
            assert time.monotonic() - started < 1
