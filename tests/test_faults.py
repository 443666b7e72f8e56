"""Faults: a worker killed under load, the database restarted, a handler failing half-way.

Acknowledged means committed: whatever got its 2xx survives a ``kill -9`` of the worker that
answered. A PostgreSQL restart gives 503 UNAVAILABLE (with Retry-After) to the requests it
catches and the server recovers by itself. A request that fails leaves none of its writes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from charter import Field, Table
from tests.servers import Server

APP = """
from charter import App, Field, Table

class Note(Table):
    id: str = Field(primary_key=True)
    text: str

app = App(tables=[Note])
"""


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "faults_app.py"
    path.write_text(APP)
    return path


def _workers(parent: int) -> list[int]:
    """The uvicorn worker processes of a server (children running multiprocessing's spawn)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry))
    return found


async def _write_until(url: str, stop: asyncio.Event, acknowledged: set[str]) -> int:
    """Writers creating notes until ``stop``; the ids that got 201, and how many failed."""
    failed = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def writer(w: int) -> None:
            nonlocal failed
            i = 0
            while not stop.is_set():
                key = f"k{w}-{i}"
                i += 1
                try:
                    response = await client.post("/Note/", json={"id": key, "text": "x"})
                except httpx.TransportError:  # the connection's worker was killed
                    failed += 1
                    continue
                if response.status_code == 201:
                    acknowledged.add(key)
                else:
                    failed += 1

        await asyncio.gather(*(writer(w) for w in range(16)))
    return failed


@pytest.mark.slow
def test_kill_9_of_a_worker_under_write_load_loses_no_acknowledged_write(
    app_file: Path, database: str
) -> None:
    server = Server(f"{app_file}:app", "--workers", "2", "--database", database).start()
    acknowledged: set[str] = set()
    try:
        assert server.proc is not None
        parent = server.proc.pid

        async def scenario() -> None:
            stop = asyncio.Event()
            load = asyncio.create_task(_write_until(server.url, stop, acknowledged))
            await asyncio.sleep(1.5)
            workers = _workers(parent)
            assert len(workers) == 2
            os.kill(workers[0], signal.SIGKILL)
            await asyncio.sleep(1.5)
            stop.set()
            await load

        asyncio.run(scenario())
    finally:
        server.kill(signal.SIGKILL)
        server.stop()
    assert len(acknowledged) > 50
    with Server(f"{app_file}:app", "--database", database) as restarted:
        stored = httpx.get(restarted.url + "/Note/?select(id)&limit(1000000)", timeout=60).json()
    assert acknowledged <= set(stored)


def test_a_request_failing_half_way_leaves_none_of_its_writes(serve) -> None:
    class Side(Table):
        id: str = Field(primary_key=True)
        n: int = 0

    class Pair(Table):
        id: str = Field(primary_key=True)
        n: int = 0

        async def post(self, data: dict) -> Table:  # type: ignore[override]
            await Side.put({"id": "side", "n": 1})
            await Side.add_to("side", "n", 5)
            created = await super().post(data)
            if data.get("n") == 13:
                raise RuntimeError("unlucky")
            return created  # type: ignore[no-any-return]

    client = serve(Pair, Side)
    failed = client.post("/Pair/", json={"id": "p", "n": 13})
    assert failed.status_code == 500
    assert "unlucky" not in failed.text
    assert client.get("/Pair/p").status_code == 404
    assert client.get("/Side/side").status_code == 404
    assert client.post("/Pair/", json={"id": "q", "n": 1}).status_code == 201
    assert client.get("/Side/side").json() == {"id": "side", "n": 6}


# -- a PostgreSQL restart (runs last: it disturbs every test using the server) ----------------


def _cluster() -> list[str] | None:
    """``pg_ctlcluster VERSION main`` for the local cluster, when this test may drive it."""
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        return None
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


@pytest.mark.serial
@pytest.mark.postgres_only
@pytest.mark.slow
def test_a_postgresql_restart_gives_503_then_recovers_without_a_server_restart(
    app_file: Path, database: str
) -> None:
    cluster = _cluster()
    if cluster is None:
        pytest.skip("needs root and pg_ctlcluster to restart the local PostgreSQL")
    server = Server(f"{app_file}:app", "--database", database).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.post("/Note/", json={"id": "before", "text": "x"}).status_code == 201
            statuses: list[int] = []
            bodies: list[httpx.Response] = []

            async def hammer(stop: asyncio.Event) -> None:
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:

                    async def one(w: int) -> None:
                        i = 0
                        while not stop.is_set():
                            i += 1
                            r = await c.put(f"/Note/h{w}-{i}", json={"text": "x"})
                            statuses.append(r.status_code)
                            if r.status_code >= 500:
                                bodies.append(r)
                            await asyncio.sleep(0.005)

                    await asyncio.gather(*(one(w) for w in range(8)))

            async def scenario() -> None:
                stop = asyncio.Event()
                load = asyncio.create_task(hammer(stop))
                await asyncio.sleep(0.5)
                await asyncio.to_thread(
                    subprocess.run, [*cluster, "restart"], check=True, capture_output=True
                )
                await asyncio.sleep(0.5)
                stop.set()
                await load

            asyncio.run(scenario())
            assert 503 in statuses, "no request caught the restart"
            log = server.read_log().splitlines()
            errors = "\n".join(line for line in log if "database unavailable" not in line)
            assert {r.status_code for r in bodies} == {503}, errors[-4000:]  # never a 500
            unavailable = bodies[0]
            assert unavailable.json()["error"]["code"] == "UNAVAILABLE"
            assert unavailable.headers["retry-after"]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the same server process recovers
                response = client.post("/Note/", json={"id": "after", "text": "y"})
                if response.status_code == 201:
                    break
                time.sleep(0.2)
            assert response.status_code == 201
            assert client.get("/Note/before").status_code == 200
    finally:
        server.stop()
        subprocess.run([*cluster, "start"], capture_output=True)  # whatever happened, PG runs
