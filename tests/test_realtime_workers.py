"""Events reach subscribers on every worker (issue 12 points 3 and 8): ``charter serve --workers
2`` on both backends, SSE subscribers spread over both workers, writes spread over both.

- Every subscriber gets every record's events, in commit order, none missing, none twice,
  whichever worker took the write (PostgreSQL: LISTEN/NOTIFY; SQLite: datagrams between the
  workers). The write-to-receive latency across workers is printed (run with ``-s``), never
  asserted.
- ``kill -9`` of a worker while writes go on: every write acknowledged with a 2xx has its event
  delivered to every subscriber after it reconnects with ``Last-Event-ID``.

Each response carries the pid of the worker that served it (a middleware of the app below).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from charter.realtime.wakeup_local import wake_folder
from charter.storage import Change, open_storage
from charter.storage.base import PUBLISH
from tests.servers import Server

pytestmark = pytest.mark.slow

APP = """
import os
import charter.realtime.wakeup
from charter import App, Field, Table

# The wake-ups alone must deliver here: the safety net is tested apart (SAFETY_NET below).
charter.realtime.wakeup.SAFETY_NET = float({safety_net})
{extra}

class Note(Table):
    id: str = Field(primary_key=True)
    n: int = 0

async def worker(ctx, call_next):
    response = await call_next()
    response.headers["x-worker"] = str(os.getpid())
    return response

app = App(tables=[Note], middleware=[worker], keepalive=1, shared={shared!r})
"""
REDIS = os.environ.get("CHARTER_TEST_REDIS", "redis://127.0.0.1:6379/0")
# Only Redis wakes the other worker: the datagrams between SQLite workers are off.
NO_DATAGRAMS = "charter.realtime.wakeup.bind_local_wakeups = lambda hub: None"


SSE = {"accept": "text/event-stream"}
DEADLINE = 30.0  # seconds a test waits for what it expects before it reports what is missing


@pytest.fixture
def server(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    app_file = tmp_path / "realtime_workers_app.py"
    options = {"safety_net": 1e6, "extra": "", "shared": None, **getattr(request, "param", {})}
    app_file.write_text(APP.format(**options))
    with Server(f"{app_file}:app", "--workers", "2", "--database", database) as running:
        yield running


async def _messages(response: httpx.Response) -> AsyncIterator[tuple[int | None, dict[str, Any]]]:
    """The SSE messages of ``response``: (its ``id:``, its JSON data); comments skipped."""
    position: int | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield position, json.loads("\n".join(data))
            position, data = None, []
        elif line.startswith("id:"):
            position = int(line[3:].strip())
        elif line.startswith("data:"):
            data.append(line[5:].strip())


class Listener:
    """One SSE subscriber of ``/Note/`` that reconnects with ``Last-Event-ID`` when dropped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[tuple[int, str, int]] = []  # (position, id, n)
        self.arrived: dict[tuple[str, int], float] = {}  # (id, n) -> when it arrived
        self.workers: list[str] = []  # the worker of each connection, in order
        self.last: int | None = None
        self.connected = asyncio.Event()
        self.expected: set[tuple[str, int]] | None = None
        self.done = asyncio.Event()
        self.errors: list[str] = []

    def expect(self, expected: set[tuple[str, int]]) -> None:
        self.expected = expected
        self.done.clear()
        self._check()

    def _check(self) -> None:
        if self.expected is not None and self.expected <= self.arrived.keys():
            self.done.set()

    async def run(self) -> None:
        timeout = httpx.Timeout(10, read=None)
        async with httpx.AsyncClient(base_url=self.url, timeout=timeout) as client:
            while True:
                headers = dict(SSE)
                if self.last is not None:
                    headers["last-event-id"] = str(self.last)
                try:
                    async with client.stream("GET", "/Note/", headers=headers) as response:
                        if response.status_code != 200:
                            self.errors.append(f"{response.status_code}: {await response.aread()}")
                            raise httpx.TransportError("refused")
                        self.workers.append(response.headers["x-worker"])
                        self.connected.set()
                        async for position, data in _messages(response):
                            self._received(position, data)
                except httpx.TransportError:
                    await asyncio.sleep(0.05)  # dropped (a worker killed): resume

    def _received(self, position: int | None, data: dict[str, Any]) -> None:
        if data.get("type") not in ("put", "publish"):
            self.errors.append(f"unexpected event {data}")
            return
        assert position is not None
        self.last = position
        self.events.append((position, data["id"], data["value"]["n"]))
        self.arrived.setdefault((data["id"], data["value"]["n"]), time.monotonic())
        self._check()


async def _listen(url: str, count: int) -> tuple[list[Listener], list[asyncio.Task[None]]]:
    """``count`` subscribers, each on its own connection, all connected."""
    listeners = [Listener(url) for _ in range(count)]
    tasks = [asyncio.create_task(listener.run()) for listener in listeners]
    await asyncio.wait_for(asyncio.gather(*(li.connected.wait() for li in listeners)), DEADLINE)
    return listeners, tasks


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _await_all(listeners: list[Listener], expected: set[tuple[str, int]]) -> bool:
    """Whether every listener has every expected event (waits up to ``DEADLINE``)."""
    for listener in listeners:
        listener.expect(expected)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(li.done.wait() for li in listeners)), DEADLINE)
    return all(listener.done.is_set() for listener in listeners)


def _check_order(listener: Listener) -> list[str]:
    """Positions only grow, nothing twice, each record's values in the order written."""
    problems: list[str] = []
    positions = [position for position, _, _ in listener.events]
    if positions != sorted(set(positions)):
        problems.append(f"positions not strictly growing: {positions}")
    last: dict[str, int] = {}
    for _, key, n in listener.events:
        if n <= last.get(key, 0):
            problems.append(f"{key}: {n} after {last[key]}")
        last[key] = n
    return problems


async def _clients_on_both(url: str, each: int) -> list[list[httpx.AsyncClient]]:
    """``each`` clients connected to each worker (a client holds one kept-alive connection)."""
    found: dict[str, list[httpx.AsyncClient]] = {}
    spare: list[httpx.AsyncClient] = []
    for _ in range(100):
        client = httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=1))
        worker = (await client.get("/Note/")).headers["x-worker"]
        group = found.setdefault(worker, [])
        (group if len(group) < each else spare).append(client)
        if len(found) == 2 and all(len(group) == each for group in found.values()):
            break
    for client in spare:
        await client.aclose()
    assert len(found) == 2, "every connection went to one worker"
    return list(found.values())


def _missing(listeners: list[Listener]) -> list[str]:
    """What each listener still waits for (an assertion's message)."""
    return [
        f"subscriber {index} on {listener.workers} misses {sorted(missing)}"
        for index, listener in enumerate(listeners)
        if (missing := (listener.expected or set()) - listener.arrived.keys())
    ]


def _summary(values: list[float]) -> str:
    values = sorted(values)
    if not values:
        return "none"
    p99 = values[max(0, int(len(values) * 0.99) - 1)]
    return f"p50 {statistics.median(values):.1f} ms, p99 {p99:.1f} ms, max {values[-1]:.1f} ms"


def _pids(listeners: list[Listener]) -> set[str]:
    return {worker for listener in listeners for worker in listener.workers}


async def _listen_on_both(url: str) -> tuple[list[Listener], list[asyncio.Task[None]]]:
    """At least 8 subscribers, some on each worker."""
    listeners, tasks = await _listen(url, 8)
    while len(_pids(listeners)) < 2 and len(listeners) < 40:
        more, more_tasks = await _listen(url, 4)
        listeners += more
        tasks += more_tasks
    assert len(_pids(listeners)) == 2, "the subscribers all went to one worker"
    return listeners, tasks


def test_a_write_on_one_worker_reaches_subscribers_on_every_worker(server: Server) -> None:
    records, writes, quiet = 20, 10, 40

    async def run() -> None:
        listeners, tasks = await _listen_on_both(server.url)
        on = await _clients_on_both(server.url, 4)
        sent: dict[tuple[str, int], float] = {}
        writer_of: dict[tuple[str, int], str] = {}
        failures: list[str] = []

        async def put(client: httpx.AsyncClient, key: str, n: int) -> None:
            sent[(key, n)] = time.monotonic()
            response = await client.put(f"/Note/{key}", json={"n": n})
            if response.status_code != 204:
                failures.append(f"PUT {key} {n}: {response.status_code} {response.text}")
            writer_of[(key, n)] = response.headers["x-worker"]

        async def write(index: int) -> None:
            for n in range(1, writes + 1):
                pool = on[n % 2]  # each record's writes alternate between the workers
                await put(pool[index % len(pool)], f"r{index}", n)

        try:
            # Many writers at once, then one write at a time (the latency of an idle server).
            await asyncio.gather(*(write(index) for index in range(records)))
            assert failures == []
            assert len(set(writer_of.values())) == 2, "the writes all went to one worker"
            busy = set(sent)
            if await _await_all(listeners, busy):
                for n in range(1, quiet + 1):
                    await put(on[n % 2][0], "quiet", n)
                    busy.add(("quiet", n))
                    if not await _await_all(listeners, set(busy)):
                        break
        finally:
            for client in on[0] + on[1]:
                await client.aclose()
            await _stop(tasks)
        assert failures == []

        expected = set(sent)
        latencies: dict[str, list[float]] = {}
        for index, listener in enumerate(listeners):
            missing = sorted(expected - listener.arrived.keys())
            assert missing == [], f"subscriber {index} ({listener.workers}) missed {missing}"
            assert len(listener.events) == len(expected), "an event arrived twice"
            assert _check_order(listener) == [], _check_order(listener)
            assert listener.errors == []
            for write_, arrived in listener.arrived.items():
                where = "across workers" if writer_of[write_] != listener.workers[0] else "same"
                load = "one at a time" if write_[0] == "quiet" else f"{records} writers"
                latencies.setdefault(f"{load}, {where}", []).append((arrived - sent[write_]) * 1e3)
        print("\nwrite-to-receive latency:")
        for name, values in sorted(latencies.items()):
            print(f"  {name}: {_summary(values)} ({len(values)} deliveries)")

    asyncio.run(run())


def test_every_acknowledged_write_survives_kill_9_of_a_worker(
    server: Server, database: str
) -> None:
    records = 12

    async def run() -> None:
        listeners, tasks = await _listen_on_both(server.url)
        victim = listeners[0].workers[0]
        acknowledged: set[tuple[str, int]] = set()
        stop_writing = asyncio.Event()

        async def write(key: str) -> None:
            n = 0
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                while not stop_writing.is_set():
                    n += 1
                    try:
                        response = await client.put(f"/Note/{key}", json={"n": n})
                    except httpx.TransportError:
                        continue  # unacknowledged: its event may or may not come
                    if response.status_code == 204:
                        acknowledged.add((key, n))
                    elif response.status_code < 500:
                        raise AssertionError(f"PUT {key} {n}: {response.status_code}")

        writers = [asyncio.create_task(write(f"k{i}")) for i in range(records)]
        while len(acknowledged) < 100:
            await asyncio.sleep(0.01)
        os.kill(int(victim), signal.SIGKILL)
        before = len(acknowledged)
        while len(acknowledged) < before + 100:  # writes go on after the kill
            await asyncio.sleep(0.01)
        stop_writing.set()
        await asyncio.gather(*writers)

        await _await_all(listeners, set(acknowledged))
        await _stop(tasks)
        dropped = [li for li in listeners if li.workers[0] == victim]
        assert dropped, "no subscriber was on the killed worker"
        for index, listener in enumerate(listeners):
            missing = sorted(acknowledged - listener.arrived.keys())
            assert missing == [], f"subscriber {index} ({listener.workers}) missed {missing}"
            assert _check_order(listener) == [], _check_order(listener)
            assert listener.errors == []
        for listener in dropped:
            assert len(listener.workers) >= 2, "a subscriber of the killed worker kept going"
        if database.startswith("sqlite"):  # the killed worker's socket is cleared by a sender
            folder = Path(wake_folder(database.removeprefix("sqlite:///")))
            if folder.exists():
                assert not [p for p in folder.iterdir() if p.name.startswith(f"{victim}-")]

    asyncio.run(run())


@pytest.mark.parametrize("server", [{"safety_net": 1}], indirect=True)
def test_the_safety_net_delivers_what_no_wake_up_announced(server: Server, database: str) -> None:
    """Events written by a process without a hub (no datagram; on PostgreSQL the NOTIFY still
    goes) reach the subscribers by the periodic read that runs while anybody listens."""

    async def run() -> None:
        listeners, tasks = await _listen_on_both(server.url)
        storage = open_storage(database)
        await storage.open([])
        try:
            for n in range(1, 6):
                message = json.dumps({"n": n})
                await storage.commit([Change(PUBLISH, "Note", "outside", message, event="publish")])
            delivered = await _await_all(listeners, {("outside", n) for n in range(1, 6)})
        finally:
            await storage.close()
            await _stop(tasks)
        assert delivered, _missing(listeners)
        for listener in listeners:
            assert _check_order(listener) == []

    asyncio.run(run())


async def _write_on_both(url: str, key: str, count: int) -> set[tuple[str, int]]:
    """``count`` writes of ``key``, alternately through each worker: the acknowledged ones."""
    on = await _clients_on_both(url, 1)
    done: set[tuple[str, int]] = set()
    try:
        for n in range(1, count + 1):
            response = await on[n % 2][0].put(f"/Note/{key}", json={"n": n})
            assert response.status_code == 204, response.text
            done.add((key, n))
    finally:
        for client in on[0] + on[1]:
            await client.aclose()
    return done


@pytest.mark.sqlite_only
@pytest.mark.parametrize("server", [{"extra": NO_DATAGRAMS, "shared": REDIS}], indirect=True)
def test_redis_pub_sub_wakes_the_other_workers(server: Server) -> None:
    async def run() -> None:
        listeners, tasks = await _listen_on_both(server.url)
        try:
            written = await _write_on_both(server.url, "by-redis", 20)
            delivered = await _await_all(listeners, written)
        finally:
            await _stop(tasks)
        assert delivered, _missing(listeners)
        for listener in listeners:
            assert _check_order(listener) == []

    asyncio.run(run())


@pytest.mark.postgres_only
def test_the_listen_connection_comes_back_after_it_is_terminated(
    server: Server, database: str
) -> None:
    """Terminate every LISTEN connection of the workers: each worker connects again, listens,
    and delivers the other's writes (the safety net is off: only LISTEN can deliver them)."""
    import asyncpg

    ours = "application_name = 'charter-wake' AND datname = current_database()"

    async def run() -> None:
        listeners, tasks = await _listen_on_both(server.url)
        admin = await asyncpg.connect(database)
        try:
            before = await admin.fetch(f"SELECT pid FROM pg_stat_activity WHERE {ours}")
            assert len(before) == 2, before  # one per worker
            await admin.fetch(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {ours}"
            )
            written = await _write_on_both(server.url, "after", 10)
            delivered = await _await_all(listeners, written)
            now = await admin.fetch(f"SELECT pid FROM pg_stat_activity WHERE {ours}")
        finally:
            await admin.close()
            await _stop(tasks)
        assert delivered, _missing(listeners)
        assert len(now) == 2 and not {r["pid"] for r in now} & {r["pid"] for r in before}
        for listener in listeners:
            assert _check_order(listener) == []

    asyncio.run(run())


def test_a_worker_that_starts_later_is_woken_too(tmp_path: Path) -> None:
    """The sender lists the wake-up folder again when it changes (not at every commit): a
    socket bound long after the first send still gets the next one."""
    from charter.realtime.wakeup_local import LocalWakeups

    async def run() -> None:
        folder = str(tmp_path / "wake")
        first, second = LocalWakeups(folder), LocalWakeups(folder)
        woken = asyncio.Event()
        first.bind(lambda: None)
        try:
            first.send()  # lists the folder: nobody else yet
            await asyncio.sleep(1.2)  # past the window in which it lists at every send
            first.send()
            second.bind(woken.set)
            first.send()
            await asyncio.wait_for(woken.wait(), 2)
        finally:
            first.close()
            second.close()

    asyncio.run(run())
