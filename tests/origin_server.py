"""A small HTTP origin for caching tables, served on loopback from a thread.

``Origin`` answers ``GET/PUT/DELETE /weather/{id}`` from a dict, counts the calls per id, and
can be made slow (``delay``), failing (``mode = "fail"``: 500), hanging past any timeout
(``"hang"``), flapping (``"flap"``: fail, succeed, fail...), or refusing connections
(``refuse()``: its port is closed). Tests talk to it with httpx, through ``OriginApi`` (a
``charter.Source``), whose base URL comes from ``ORIGIN_URL`` when not given (so that an app
file served by ``charter serve`` finds the origin of the test that started it).
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from charter import Source

__all__ = ["Origin", "OriginApi"]


class Origin:
    """The origin server and its knobs (thread-safe: handlers run on the server's threads)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self.mode = "ok"  # ok | fail | hang | flap
        self.delay = 0.0  # seconds each answer waits first
        self._flap = 0
        self._hung = threading.Event()  # set at close: hanging answers give up
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def gets(self, key: str) -> int:
        """How many GETs of ``key`` reached the origin."""
        with self._lock:
            return self.calls[("GET", key)]

    def _answer(self, method: str, key: str, body: bytes) -> tuple[int, bytes]:
        with self._lock:
            self.calls[(method, key)] += 1
            mode = self.mode
            if mode == "flap":
                self._flap += 1
                mode = "fail" if self._flap % 2 else "ok"
        if self.delay:
            time.sleep(self.delay)
        if mode == "hang":
            self._hung.wait(3600)
        if mode == "fail":
            return 500, b'{"error": "origin broke"}'
        with self._lock:
            if method == "GET":
                record = self.records.get(key)
                return (404, b"{}") if record is None else (200, json.dumps(record).encode())
            if method == "PUT":
                self.records[key] = json.loads(body)
                return 204, b""
            return (204, b"") if self.records.pop(key, None) is not None else (404, b"{}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                key = self.path.rsplit("/", 1)[-1]
                status, data = origin._answer(self.command, key, body)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler

    def refuse(self) -> None:
        """Close the port: connections are refused from now on."""
        self._server.shutdown()
        self._server.server_close()

    def close(self) -> None:
        self._hung.set()
        self.refuse()


class OriginApi(Source):
    """The ``Source`` of the tests' caching tables: the origin over HTTP with httpx."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or os.environ["ORIGIN_URL"]

    async def get(self, id: str) -> dict[str, Any] | None:
        async with httpx.AsyncClient(timeout=None) as client:
            response = await client.get(f"{self.url}/weather/{id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        record: dict[str, Any] = response.json()
        return record

    async def put(self, id: str, record: dict[str, Any]) -> None:
        async with httpx.AsyncClient(timeout=None) as client:
            response = await client.put(f"{self.url}/weather/{id}", json=record)
        response.raise_for_status()

    async def delete(self, id: str) -> None:
        async with httpx.AsyncClient(timeout=None) as client:
            response = await client.delete(f"{self.url}/weather/{id}")
        if response.status_code != 404:
            response.raise_for_status()
