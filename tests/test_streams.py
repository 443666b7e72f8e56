"""Streams in and out of methods: 500 MB each way without buffering on the server."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.servers import Server

APP = """
import hashlib
from collections.abc import AsyncIterator

from charter import App, Field, Table, get, post


class Blob(Table):
    id: str = Field(primary_key=True)

    @post
    @staticmethod
    async def upload(data: AsyncIterator[bytes]) -> dict:
        digest, size = hashlib.sha256(), 0
        async for chunk in data:
            digest.update(chunk)
            size += len(chunk)
        return {"size": size, "sha256": digest.hexdigest()}

    @get
    @staticmethod
    async def download(megabytes: int) -> AsyncIterator[bytes]:
        block = bytes(range(256)) * 4096  # 1 MiB
        for _ in range(megabytes):
            yield block


app = App(tables=[Blob])
"""

MEGABYTES = 500
BLOCK = bytes(range(256)) * 4096


def _peak_rss_kb(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _body() -> Iterator[bytes]:
    for _ in range(MEGABYTES):
        yield BLOCK


def test_500_mb_up_and_down_without_buffering(tmp_path: Path) -> None:
    app_file = tmp_path / "blobs.py"
    app_file.write_text(APP)
    server = Server(f"{app_file}:app", "--database", f"sqlite:///{tmp_path}/b.db").start()
    try:
        assert server.proc is not None
        with httpx.Client(base_url=server.url, timeout=120) as client:
            warm = client.post("/Blob/upload", content=iter([BLOCK]))  # warm up every code path
            assert warm.json()["size"] == len(BLOCK)
            assert len(client.get("/Blob/download?megabytes=1").content) == len(BLOCK)
            baseline = _peak_rss_kb(server.proc.pid)

            uploaded = client.post("/Blob/upload", content=_body())
            assert uploaded.status_code == 200, uploaded.text
            expected = hashlib.sha256()
            for block in _body():
                expected.update(block)
            assert uploaded.json() == {
                "size": MEGABYTES * len(BLOCK),
                "sha256": expected.hexdigest(),
            }

            received, digest = 0, hashlib.sha256()
            with client.stream("GET", f"/Blob/download?megabytes={MEGABYTES}") as response:
                assert response.status_code == 200
                assert response.headers["content-type"] == "application/octet-stream"
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    digest.update(chunk)
            assert received == MEGABYTES * len(BLOCK)
            assert digest.hexdigest() == expected.hexdigest()
            grown_mb = (_peak_rss_kb(server.proc.pid) - baseline) / 1024
        assert grown_mb < 50, f"server RSS grew by {grown_mb:.1f} MB"
    finally:
        server.stop()
