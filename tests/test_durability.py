"""An acknowledged write survives ``kill -9`` of the server."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.servers import Server

APP = """
from charter import App, Field, Table

class Entry(Table):
    id: str = Field(primary_key=True)
    seq: int = Field(indexed=True)
    body: str

app = App(tables=[Entry])
"""


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    app_file = tmp_path / "entries.py"
    app_file.write_text(APP)
    database = f"sqlite:///{tmp_path}/durable.db"
    server = Server(f"{app_file}:app", "--database", database).start()
    acknowledged: list[str] = []

    def write(i: int) -> str | None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            response = client.post("/Entry/", json={"id": f"e{i}", "seq": i, "body": "x" * 100})
            return f"e{i}" if response.status_code == 201 else None

    with ThreadPoolExecutor(16) as pool:
        acknowledged = [key for key in pool.map(write, range(400)) if key]
    patched = httpx.patch(server.url + "/Entry/e7", json={"body": "changed"})
    assert patched.status_code == 204
    server.kill(signal.SIGKILL)
    server.stop()
    assert len(acknowledged) == 400

    restarted = Server(f"{app_file}:app", "--database", database).start()
    try:
        rows = httpx.get(restarted.url + "/Entry/?limit(1000)").json()
        assert sorted(r["id"] for r in rows) == sorted(acknowledged)
        assert httpx.get(restarted.url + "/Entry/e7").json()["body"] == "changed"
    finally:
        restarted.stop()
