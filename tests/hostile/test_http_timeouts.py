"""Hostile clients that take their time: every wait of the server on a client is bounded.

A real ``charter serve`` with one-second timeouts (``CHARTER_HEADER_TIMEOUT``,
``CHARTER_BODY_TIMEOUT``, ``CHARTER_IDLE_TIMEOUT``, ``CHARTER_SEND_TIMEOUT``), spoken to over
raw sockets, on SQLite and PostgreSQL. No timing is asserted: each test only bounds how long
it waits for the server to give up, far above the configured second.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.servers import Server

APP = """
from collections.abc import AsyncIterator

from charter import App, Field, Table, get

CLOSED: list[int] = []


class Note(Table):
    id: str = Field(primary_key=True)
    text: str = ""

    @get
    @staticmethod
    async def endless() -> AsyncIterator[bytes]:
        block = b"z" * 1024 * 1024
        try:
            for _ in range(2000):
                yield block
        finally:
            CLOSED.append(1)  # the stream was closed: what it held is released

    @get
    @staticmethod
    async def closed() -> int:
        return len(CLOSED)


app = App(tables=[Note])
"""

GIVE_UP = 15.0  # seconds a test waits for the server to act on a one-second timeout


@pytest.fixture
def server(tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for name in ("HEADER", "BODY", "IDLE", "SEND"):
        monkeypatch.setenv(f"CHARTER_{name}_TIMEOUT", "1")
    monkeypatch.setenv("CHARTER_POOL_SIZE", "1")  # a held database connection starves others
    app_file = tmp_path / "timeouts_app.py"
    app_file.write_text(APP)
    with Server(f"{app_file}:app", "--database", database) as running:
        yield running


def connect(server: Server, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(GIVE_UP)
    sock.connect(("127.0.0.1", server.port))
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails if it keeps the connection open."""
    received = b""
    deadline = time.monotonic() + GIVE_UP
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return received
        except TimeoutError:
            break
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server held the connection open; got {received[:300]!r}")


def error_code(response: bytes) -> tuple[int, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, msgspec.json.decode(body)["error"]["code"]


# -- reading a request ----------------------------------------------------------------------------


def test_a_body_that_never_completes_is_408(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /Note/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        assert error_code(read_until_closed(sock)) == (408, "REQUEST_TIMEOUT")
    assert httpx.get(server.url + "/Note/").json() == []


def test_a_chunked_body_that_never_ends_is_408(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /Note/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"
        )
        assert error_code(read_until_closed(sock)) == (408, "REQUEST_TIMEOUT")
    assert httpx.get(server.url + "/Note/").json() == []


def test_a_body_that_keeps_coming_is_not_cut(server: Server) -> None:
    # The body timeout bounds a stall, not a whole upload: pieces every half second pass.
    pieces = [b'{"id": "slow", ', b'"text": ', b'"arrived', b' in pieces"}']
    with connect(server) as sock:
        length = sum(len(p) for p in pieces)
        sock.sendall(
            b"POST /Note/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % length
        )
        for piece in pieces:
            time.sleep(0.5)
            sock.sendall(piece)
        assert read_until_closed(sock).startswith(b"HTTP/1.1 201")
    assert httpx.get(server.url + "/Note/slow").json()["text"] == "arrived in pieces"


def test_slowloris_headers_are_408(server: Server) -> None:
    request = b"GET /Note/ HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200 + b"\r\n\r\n"
    with connect(server) as sock:
        sock.settimeout(0.2)
        received = b""
        deadline = time.monotonic() + GIVE_UP
        for byte in request:  # a byte every 0.2 s: 40 s for the request if nobody stops it
            assert time.monotonic() < deadline, "the server waited for the headers"
            try:
                sock.sendall(bytes([byte]))
                received = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            break  # the server answered (or closed)
        sock.settimeout(GIVE_UP)
        received += read_until_closed(sock)
    assert error_code(received) == (408, "REQUEST_TIMEOUT")


def test_a_connection_that_never_sends_is_closed(server: Server) -> None:
    with connect(server) as sock:
        assert read_until_closed(sock) == b""


def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /Note/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200")


def test_stray_line_ends_do_not_keep_a_connection_open(server: Server) -> None:
    with connect(server) as sock:
        sock.settimeout(0.3)
        deadline = time.monotonic() + GIVE_UP
        while True:
            assert time.monotonic() < deadline, "the server kept the connection open"
            try:
                sock.sendall(b"\r\n")
                if sock.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break


# -- sending a response ---------------------------------------------------------------------------


def _wait_for_closed_streams(server: Server, count: int) -> None:
    deadline = time.monotonic() + GIVE_UP
    while httpx.get(server.url + "/Note/closed", timeout=GIVE_UP).json() < count:
        assert time.monotonic() < deadline, "the stream was never closed"
        time.sleep(0.1)


def test_a_client_that_stops_reading_a_stream_is_dropped_and_the_stream_closed(
    server: Server,
) -> None:
    with connect(server, receive_buffer=4096) as sock:
        sock.sendall(b"GET /Note/endless HTTP/1.1\r\nHost: x\r\n\r\n")
        _wait_for_closed_streams(server, 1)  # the server gave up on the send, closed the stream
        with contextlib.suppress(ConnectionResetError):
            received = read_until_closed(sock)
            assert len(received) < 2000 * 1024 * 1024
            assert not received.endswith(b"0\r\n\r\n")
    assert "stopped reading" in server.read_log()


def test_a_client_that_never_reads_a_big_collection_is_dropped(server: Server) -> None:
    text = "t" * 64 * 1024
    count = 300  # ~19 MB of JSON: far more than the socket buffers hold
    with httpx.Client(base_url=server.url, timeout=GIVE_UP) as client:
        for i in range(count):
            assert client.put(f"/Note/n{i}", json={"text": text}).status_code == 204
        full = len(client.get("/Note/").content)
    with connect(server, receive_buffer=4096) as sock:
        sock.sendall(b"GET /Note/ HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        # Others are served (the one pool connection is not kept by the stuck reader) ...
        got = httpx.get(server.url + "/Note/n7", timeout=GIVE_UP)
        assert got.status_code == 200
        assert got.json()["text"] == text
        # ... and the reader that never read is dropped with a cut body, not a whole one.
        deadline = time.monotonic() + GIVE_UP
        while "stopped reading" not in server.read_log():
            assert time.monotonic() < deadline, "the stuck send was never dropped"
            time.sleep(0.1)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            received = read_until_closed(sock)
        assert len(received) < full
