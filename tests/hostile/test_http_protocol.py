"""Hostile HTTP: requests the parser refuses, bad escapes in paths, OPTIONS, cut bodies.

Over a real ``charter serve`` socket where the server's parser is involved, in-process
otherwise; every app runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from charter import App, Field, Table, get
from charter.testing import TestClient
from tests.servers import Server

APP = """
from collections.abc import AsyncIterator

from charter import App, Field, Table, get


class Note(Table):
    id: str = Field(primary_key=True)
    text: str = ""

    @get
    @staticmethod
    async def broken() -> AsyncIterator[bytes]:
        yield b"first part of the body;"
        raise RuntimeError("the stream failed after the status line")


app = App(tables=[Note])
"""


@pytest.fixture
def server(tmp_path: Path, database: str) -> Iterator[Server]:
    app_file = tmp_path / "protocol_app.py"
    app_file.write_text(APP)
    with Server(f"{app_file}:app", "--database", database) as running:
        yield running


def exchange(server: Server, request: bytes, wait: float = 10) -> bytes:
    """Send raw bytes, read until the server closes (or ``wait`` passes): what came back."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        # The server may refuse and close before it has read everything.
        with contextlib.suppress(OSError):
            sock.sendall(request)
        received = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk
    raise AssertionError(f"the server kept the connection open; received {received[:300]!r}")


def envelope(response: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    """Status, headers and JSON body of one raw response."""
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, msgspec.json.decode(body)


# -- errors below the app ------------------------------------------------------------------------


def test_an_over_long_request_line_is_414_in_the_envelope(server: Server) -> None:
    status, headers, body = envelope(
        exchange(server, b"GET /Note/" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    )
    assert status == 414
    assert headers["content-type"] == "application/json"
    assert body["error"]["code"] == "URI_TOO_LONG"  # type: ignore[index]
    assert body["error"]["status"] == 414  # type: ignore[index]


def test_a_request_line_that_never_ends_is_414(server: Server) -> None:
    status, _, body = envelope(exchange(server, b"GET /" + b"a" * 1_000_000))
    assert status == 414
    assert body["error"]["code"] == "URI_TOO_LONG"  # type: ignore[index]


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"b" * 200_000 + b"\r\n",  # one huge header
        b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(2000)),  # very many
    ],
    ids=["one-huge", "many"],
)
def test_headers_too_large_are_431_in_the_envelope(server: Server, headers: bytes) -> None:
    status, _, body = envelope(
        exchange(server, b"GET /Note/ HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    )
    assert status == 431
    assert body["error"]["code"] == "HEADERS_TOO_LARGE"  # type: ignore[index]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /Note/ HTTP/9.9\r\n\r\n",
        b"GET /Note/ HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
        b"POST /Note/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /Note/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["no-method", "version", "header-name", "content-length", "chunk-size"],
)
def test_unparseable_requests_are_400_in_the_envelope(server: Server, request_bytes: bytes) -> None:
    status, _, body = envelope(exchange(server, request_bytes))
    assert status == 400
    assert body["error"]["code"] == "MALFORMED_INPUT"  # type: ignore[index]
    assert httpx.get(server.url + "/Note/").json() == []  # nothing changed, still serving


def test_requests_within_the_limits_still_pass(server: Server) -> None:
    long_id = "k" * 1900  # keys are at most 1,978 bytes (docs/limits.md)
    assert httpx.put(f"{server.url}/Note/{long_id}", json={"text": "x"}).status_code == 204
    big_headers = {f"x-h{i}": "v" * 100 for i in range(200)}  # ~22 KB of headers
    response = httpx.get(f"{server.url}/Note/{long_id}", headers=big_headers)
    assert response.status_code == 200
    assert response.json()["text"] == "x"
    long_query = f"{server.url}/Note/?text=ne={'y' * 8000}"  # an 8 KB request line
    assert [n["text"] for n in httpx.get(long_query).json()] == ["x"]


# -- invalid UTF-8 in a path ---------------------------------------------------------------------


class Page(Table):
    id: str = Field(primary_key=True)
    text: str = ""

    @get
    @staticmethod
    async def echo(word: str) -> str:
        return word


@pytest.mark.parametrize("escape", ["%ff", "%fe", "%c3", "%c3%28", "a%80b", "%ed%a0%80"])
def test_a_path_escape_that_is_not_utf8_is_400(serve, escape: str) -> None:
    client = serve(Page)
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = client.request(method, f"/Page/{escape}", json={"text": "x"})
        assert response.status_code == 400, (method, escape, response.text)
        assert response.json()["error"]["code"] == "MALFORMED_INPUT"
    assert client.get("/Page/").json() == []  # nothing was written


def test_ff_and_fe_no_longer_name_the_same_record(serve) -> None:
    client = serve(Page)
    assert client.put("/Page/%ff", json={"text": "x"}).status_code == 400
    assert client.get("/Page/%fe").status_code == 400
    assert client.put("/Page/%C3%A9", json={"text": "é"}).status_code == 204  # valid UTF-8
    assert client.get("/Page/%C3%A9").json() == {"id": "é", "text": "é"}
    assert client.get("/Page/").json() == [{"id": "é", "text": "é"}]


def test_a_query_escape_that_is_not_utf8_is_400(serve) -> None:
    client = serve(Page)
    assert client.get("/Page/echo?word=%C3%A9").json() == "é"
    response = client.get("/Page/echo?word=%ff")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MALFORMED_INPUT"


def test_a_path_escape_that_is_not_utf8_is_400_over_a_socket(server: Server) -> None:
    status, _, body = envelope(
        exchange(server, b"GET /Note/%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    )
    assert status == 400
    assert body["error"]["code"] == "MALFORMED_INPUT"  # type: ignore[index]


# -- OPTIONS ---------------------------------------------------------------------------------------


def test_options_is_204_with_allow_over_a_socket(server: Server) -> None:
    response = httpx.options(server.url + "/Note/a")
    assert response.status_code == 204
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"} <= allowed
    response = httpx.options(server.url + "/Note/broken")
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "HEAD", "OPTIONS"} <= allowed


# -- a body that fails after the status line -----------------------------------------------------


def test_a_body_failing_mid_stream_drops_the_connection(server: Server) -> None:
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(server.url + "/Note/broken")
    raw = exchange(server, b"GET /Note/broken HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not raw.endswith(b"0\r\n\r\n")  # never the chunk that says "complete"
    assert httpx.get(server.url + "/Note/").status_code == 200  # the server lives on
    assert "failed while its body was sent" in server.read_log()


def test_the_test_client_raises_on_a_body_failing_mid_stream(serve) -> None:
    class Stream(Table):
        id: str = Field(primary_key=True)

        @get
        @staticmethod
        async def broken() -> AsyncIterator[bytes]:
            yield b"first part of the body;"
            raise RuntimeError("the stream failed after the status line")

    client = serve(Stream)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/Stream/broken")
    assert client.get("/Stream/").status_code == 200


async def test_the_async_test_client_raises_on_a_body_failing_mid_stream(database: str) -> None:
    class Flow(Table):
        id: str = Field(primary_key=True)

        @get
        @staticmethod
        async def broken() -> AsyncIterator[bytes]:
            yield b"first part of the body;"
            raise RuntimeError("the stream failed after the status line")

    async with TestClient(App(tables=[Flow], database=database)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/Flow/broken")
        assert (await client.get("/Flow/")).status_code == 200
