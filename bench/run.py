"""Charter's benchmark harness: the same SQLite-backed REST work served by Charter and by its
peers (FastAPI, Litestar, a bare ASGI app), each under one uvicorn worker pinned to one core,
loaded by wrk pinned to the other; for the query scenarios also HarperDB 4.7 (one worker thread,
pinned the same way) when node and npm are there. With ``--backend postgres``: Charter and
FastAPI + asyncpg on PostgreSQL; with ``--workers 1,2``: each app under 1 and 2 uvicorn workers.

    python bench/run.py [--quick] [--only charter,fastapi,harperdb] [--scenario query,query-c1]
                        [--duration 10] [--connections 64] [--no-write]
                        [--backend sqlite,postgres] [--workers 1,2]

What is measured is data, not code: APPS, DATASETS, SCENARIOS, BACKENDS and TARGETS below. A new
scenario (an RPC call, a richer query) is one more Scenario entry with its wrk Lua
``request()``; a new database is one more Backend. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from types import ModuleType
from typing import Any, TypeVar

import httpx

from charter.storage.sqlite_schema import Statistics

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
APPS_DIR = BENCH_DIR / "apps"
WORK_DIR = BENCH_DIR / ".work"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
R = TypeVar("R")  # a bench's results, as its report reads them

CLK_TCK = os.sysconf("SC_CLK_TCK")
SEED_COUNT = 10_000  # rows seeded per app (--seed-count, for trying the harness out)
CATEGORIES = 10


# --------------------------------------------------------------------------------------------
# What is benchmarked
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppDef:
    """One server under test. ``kind`` says how it is run: "asgi" is an ASGI app in
    bench/apps/ that uvicorn loads (``target`` is its "module:attribute"); "harperdb" is
    HarperDB 4.7 run by bench/harperdb/peer.py (``target`` unused). ``scenarios``: the only
    scenarios it serves (None: every one). ``backends`` are the BACKENDS it runs on (the SQLite
    peers share benchdb.py, so SQLite only)."""

    name: str
    target: str
    description: str
    kind: str = "asgi"
    scenarios: frozenset[str] | None = None
    backends: frozenset[str] = frozenset({"sqlite"})


APPS: list[AppDef] = [
    AppDef(
        "charter",
        "charter_app:app",
        "Charter (its generated REST resource)",
        backends=frozenset({"sqlite", "postgres"}),
    ),
    AppDef("fastapi", "fastapi_app:app", "FastAPI + pydantic, def endpoints in the threadpool"),
    AppDef("litestar", "litestar_app:app", "Litestar + msgspec (strict), sync_to_thread handlers"),
    AppDef(
        "bare_inline",
        "bare_app:inline_app",
        "raw ASGI + msgspec, sqlite3 inline on the event loop (the ceiling)",
    ),
    AppDef(
        "bare_offload",
        "bare_app:offload_app",
        "raw ASGI + msgspec, each sqlite3 call in run_in_executor",
    ),
    AppDef(
        "harperdb",
        "",
        "HarperDB 4.7 (npm harperdb), one worker thread, its REST query language",
        kind="harperdb",
        # Its REST POST answers the new id, not the record, and it has no RPC of this shape.
        scenarios=frozenset({"get", "list", "query", "query-c1"}),
    ),
    AppDef(
        "fastapi_pg",
        "fastapi_pg_app:app",
        "FastAPI + asyncpg: a pool made in the lifespan, async endpoints, pydantic",
        backends=frozenset({"postgres"}),
    ),
    AppDef(
        "fastapi_pg_batch",
        "fastapi_pg_batch_app:app",
        "fastapi_pg, GET by id through a batching loader (one = ANY($1) per loop iteration)",
        backends=frozenset({"postgres"}),
    ),
]
REFERENCE = "charter"  # ratios are REFERENCE req/s divided by each peer's
# A measured run during which other processes (not the server, wrk or this harness) used more
# than this many cores' worth of CPU is marked noisy: the machine was not quiet.
NOISY_CORES = 0.15


@dataclass(frozen=True)
class Dataset:
    """The rows an app is seeded with before a scenario runs: ``seed_record(i)`` for i in
    ``range(rows)``. Each dataset an app's scenarios use gets its own fresh database and server
    start, seeded through the app's own API (``POST /Item/``; HarperDB: peer.load)."""

    name: str
    rows: int
    description: str


DATASETS: dict[str, Dataset] = {
    "base": Dataset("base", SEED_COUNT, "the CRUD and RPC scenarios"),
    "large": Dataset("large", 100_000, "the query scenarios"),
}

# The query of issue 4: an indexed equality, a range, a sort and a limit. Charter and HarperDB
# answer it with their query language; the SQLite peers parse exactly this URL and run
# hand-written SQL (benchdb.query_rows, benchdb.SELECT_PRICE_ABOVE_DESC).
QUERY_PATH = "/Item/?category=c3&price=gt=20&sort(-price)&limit(10)"
QUERY_CATEGORY, QUERY_PRICE_GT, QUERY_LIMIT = "c3", 20.0, 10
QUERY_LUA = """
local req
function request()
  if req == nil then req = wrk.format("GET", "$query_path") end
  return req
end
"""


@dataclass(frozen=True)
class Scenario:
    """One wrk run against every app that supports it.

    ``lua`` must define ``request()`` (it may use ``tid``, this wrk thread's number from 1, and
    ``init_scenario()``, called once per thread); ``$seed_count`` (the dataset's rows),
    ``$categories`` and ``$query_path`` are substituted. Status counting and the
    machine-readable summary come from LUA_PRELUDE. ``checks`` name entries of CHECKS, run once
    per app and dataset before any load. ``apps`` limits the scenario to those apps (None:
    every app whose own ``scenarios`` allow it).
    """

    name: str
    title: str
    lua: str
    expect_status: int = 200
    writes: bool = False  # run after every read-only scenario, so reads see the seeded table
    apps: frozenset[str] | None = None  # None: every app that serves it
    dataset: str = "base"  # a key of DATASETS
    connections: int | None = None  # wrk -c for this scenario; None: --connections
    timeout: int | None = None  # wrk --timeout (s) for this scenario; None: --timeout
    checks: tuple[str, ...] = ()

    def serves(self, app: AppDef) -> bool:
        if self.apps is not None and app.name not in self.apps:
            return False
        return app.scenarios is None or self.name in app.scenarios


SCENARIOS: list[Scenario] = [
    Scenario(
        name="get",
        title="GET /Item/{id} (random one of the seeded rows)",
        lua="""
function request()
  return wrk.format("GET", "/Item/item-" .. math.random(0, $seed_count - 1))
end
""",
        checks=("get",),
    ),
    Scenario(
        name="post",
        title="POST /Item/ (create, id generated by the server)",
        expect_status=201,
        writes=True,
        lua="""
local n = 0
local headers = {["Content-Type"] = "application/json"}
function request()
  n = n + 1
  local body = string.format(
    '{"name":"bench-%d-%d","category":"c%d","price":%d.5,"stock":%d}',
    tid, n, n % $categories, n % 1000, n % 50)
  return wrk.format("POST", "/Item/", headers, body)
end
""",
        checks=("post",),
    ),
    Scenario(
        name="rpc",
        title="POST /rpc/quote: an RPC with a validated nested object argument (no database)",
        lua="""
local req
function request()
  if req == nil then
    req = wrk.format("POST", "/rpc/quote", {["Content-Type"] = "application/json"},
      '{"order":{"product_id":"p1","qty":3,"address":{"city":"Oslo","zip":"0150"},'
      .. '"tags":["gift","fragile"],"express":true}}')
  end
  return req
end
""",
        checks=("rpc",),
    ),
    Scenario(
        name="list",
        title="GET /Item/?category=c3&limit(10)",
        lua="""
local req
function request()
  if req == nil then req = wrk.format("GET", "/Item/?category=c3&limit(10)") end
  return req
end
""",
        checks=("list",),
    ),
    Scenario(
        name="query",
        title=f"GET {QUERY_PATH} (category and price indexed)",
        lua=QUERY_LUA,
        dataset="large",
        timeout=30,  # a one-thread HarperDB at ~70 ms a query keeps 64 connections waiting ~4 s
        checks=("query",),
    ),
    Scenario(
        name="query-c1",
        title="the same query at one connection (wrk -c1): the latency of one request",
        lua=QUERY_LUA,
        dataset="large",
        connections=1,
        checks=("query",),
    ),
]


@dataclass(frozen=True)
class Target:
    """A goal for REFERENCE in one scenario on one backend: a throughput ratio against a peer
    (``Target(scenario, peer, min_ratio)``: REFERENCE req/s / peer req/s >= min_ratio, both
    with one worker), a latency bound (``Target(scenario, max_p50_ms=2.0)``: REFERENCE's p50
    below it), or a scaling ratio (``Target(scenario, min_ratio=1.6, workers=2)``: REFERENCE
    with ``workers`` uvicorn workers over REFERENCE with one; listed only when ``--workers``
    includes that count)."""

    scenario: str
    peer: str | None = None
    min_ratio: float | None = None
    max_p50_ms: float | None = None
    backend: str = "sqlite"
    workers: int | None = None

    def __post_init__(self) -> None:
        kinds = [
            self.peer is not None and self.min_ratio is not None and self.workers is None,
            self.max_p50_ms is not None and self.min_ratio is None and self.peer is None,
            self.workers is not None and self.min_ratio is not None and self.peer is None,
        ]
        if kinds.count(True) != 1 or (self.max_p50_ms is not None and self.workers is not None):
            raise ValueError(
                f"{self}: give peer and min_ratio, or max_p50_ms, or workers and min_ratio"
            )

    @property
    def label(self) -> str:
        if self.max_p50_ms is not None:
            return f"{self.scenario}: {REFERENCE} p50 < {self.max_p50_ms:g} ms"
        if self.workers is not None:
            return (
                f"{self.scenario}: {REFERENCE} {self.workers} workers >= {self.min_ratio:.1f}x"
                " 1 worker"
            )
        return f"{self.scenario}: {REFERENCE} >= {self.min_ratio:.1f}x {self.peer}"


# Every target in one table: Charter's req/s over each peer's (both one worker) must be at
# least this, for EVERY pair of scenario and peer that runs on a backend, whether Charter wins
# there or not (check_targets() refuses a pair without one). The bare peers are not rivals but
# bounds: ``bare_inline`` is the ceiling (sqlite3 on the event loop, no framework), so a ratio
# below 1 against it is expected; ``bare_offload`` pays a thread hop per call, as Charter's
# design avoids. ``fastapi_pg_batch`` has Charter's batching of point reads.
RATIO_TARGETS: dict[tuple[str, str], dict[str, float]] = {
    ("sqlite", "get"): {
        "fastapi": 2.0,
        "litestar": 1.5,
        "bare_offload": 1.0,
        "bare_inline": 0.7,
        "harperdb": 1.5,
    },
    ("sqlite", "list"): {
        "fastapi": 2.0,
        "litestar": 1.2,
        "bare_offload": 0.8,
        "bare_inline": 0.6,
        "harperdb": 1.5,
    },
    ("sqlite", "post"): {"fastapi": 1.5, "litestar": 1.2, "bare_offload": 1.0, "bare_inline": 0.7},
    ("sqlite", "rpc"): {"fastapi": 2.0, "litestar": 1.3, "bare_offload": 0.7, "bare_inline": 0.7},
    # Issue 9: >= 1.5x FastAPI (with ANALYZE) and >= 1.2x Litestar on the 100k-row query.
    ("sqlite", "query"): {
        "fastapi": 1.5,
        "litestar": 1.2,
        "bare_offload": 1.0,
        "bare_inline": 0.7,
        "harperdb": 3.0,
    },
    ("sqlite", "query-c1"): {
        "fastapi": 1.5,
        "litestar": 1.2,
        "bare_offload": 1.0,
        "bare_inline": 0.7,
        "harperdb": 3.0,
    },
    ("postgres", "get"): {"fastapi_pg": 2.0, "fastapi_pg_batch": 1.2},
    ("postgres", "list"): {"fastapi_pg": 1.5, "fastapi_pg_batch": 1.5},
    ("postgres", "post"): {"fastapi_pg": 1.2, "fastapi_pg_batch": 1.2},
}

TARGETS: list[Target] = [
    *(
        Target(scenario, peer, ratio, backend=backend)
        for (backend, scenario), peers in RATIO_TARGETS.items()
        for peer, ratio in peers.items()
    ),
    Target("query-c1", max_p50_ms=2.0),
    # Scaling with uvicorn workers (--workers 1,2): the server is not pinned then, and on a
    # 2-core machine its two workers share the cores with wrk (and PostgreSQL).
    *(
        Target(sc, min_ratio=1.6, workers=2, backend=be)
        for be in ("sqlite", "postgres")
        for sc in ("get", "post")
    ),
]


@dataclass(frozen=True)
class Backend:
    """Where an app keeps its data. ``prepare(app_name)`` gives a fresh, empty database and
    returns the BENCH_DB value the app is started with. ``analyze(app_name, url)`` runs after
    seeding, so every database's planner knows its data; it returns a problem or None.
    ``scenarios``: the only scenarios run on it (None: every one). ``server_process``: the
    process name (``comm``) of a database server whose CPU time counts as the server's, not as
    "others", in the noise figure."""

    name: str
    prepare: Callable[[str], str]
    describe: str
    analyze: Callable[[str, str], str | None]
    scenarios: frozenset[str] | None = None
    server_process: str | None = None


def _fresh_sqlite(app_name: str) -> str:
    path = WORK_DIR / f"{app_name}.db"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"  # an absolute path, so sqlite:////abs/...


def _analyze_sqlite(app_name: str, url: str) -> str | None:
    """``ANALYZE`` a peer's SQLite file. Charter's is left alone: Charter keeps its own
    statistics fresh (docs/storage.md), and this checks that it did."""
    path = url.removeprefix("sqlite://")
    conn = sqlite3.connect(path, timeout=30)
    try:
        if app_name != REFERENCE:
            conn.execute("ANALYZE")
            return None
        try:
            tables = {row[0] for row in conn.execute("SELECT tbl FROM sqlite_stat1")}
        except sqlite3.OperationalError:
            tables = set()
        rows = conn.execute('SELECT count(*) FROM "Item"').fetchone()[0]
        if "Item" in tables or rows < Statistics.MIN_CHANGES:  # too few rows to analyse
            return None
        return f"Charter did not analyse its table after seeding {rows:,} rows"
    finally:
        conn.close()


def _psql(url: str, *statements: str) -> subprocess.CompletedProcess[str]:
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]
    for statement in statements:
        argv += ["-c", statement]
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise RuntimeError(f"psql: {exc}") from exc


def _analyze_postgres(app_name: str, url: str) -> str | None:
    """``ANALYZE`` every app's database, Charter's included: PostgreSQL's autovacuum would, but
    only within a minute or so of the load, after the measured runs may have started."""
    proc = _psql(url, "ANALYZE")
    return None if proc.returncode == 0 else f"ANALYZE failed: {proc.stderr.strip()}"


# The PostgreSQL server (trust auth); each app gets a fresh database bench_<app> on it.
PG_SERVER = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def _fresh_postgres(app_name: str) -> str:
    """DROP and CREATE ``bench_<app>`` (C collation, the order Charter's docs ask for, for the
    peer too) with psql; returns its URL."""
    name = f"bench_{app_name}"
    statements = [
        f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
        f"CREATE DATABASE {name} LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0",
    ]
    proc = _psql(f"{PG_SERVER}/postgres", *statements)
    if proc.returncode != 0:
        raise RuntimeError(f"psql could not create {name}: {proc.stderr.strip()}")
    return f"{PG_SERVER}/{name}"


BACKENDS: dict[str, Backend] = {
    "sqlite": Backend(
        "sqlite",
        _fresh_sqlite,
        "SQLite file per app, WAL, synchronous=NORMAL, ANALYZE after seeding",
        _analyze_sqlite,
    ),
    "postgres": Backend(
        "postgres",
        _fresh_postgres,
        "PostgreSQL (local server, not pinned), a fresh database per app, ANALYZE after seeding",
        _analyze_postgres,
        scenarios=frozenset({"get", "list", "post"}),
        server_process="postgres",
    ),
}


def check_targets() -> None:
    """Every pair of scenario and peer that runs on a backend has a ratio target (issue 9:
    targets for every pair, not only where Charter wins), and no target names a pair that
    cannot run."""
    runnable = {
        (backend.name, scenario.name, app.name)
        for backend in BACKENDS.values()
        for scenario in SCENARIOS
        if backend.scenarios is None or scenario.name in backend.scenarios
        for app in APPS
        if app.name != REFERENCE and backend.name in app.backends and scenario.serves(app)
    }
    targeted = {
        (backend, scenario, peer)
        for (backend, scenario), peers in RATIO_TARGETS.items()
        for peer in peers
    }
    if runnable != targeted:
        raise AssertionError(
            f"targets missing for {sorted(runnable - targeted)},"
            f" targets for pairs that never run: {sorted(targeted - runnable)}"
        )


check_targets()


# --------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------

LUA_PRELUDE = r"""
-- generated by bench/run.py
local threads = {}
tid = 0
statuses = {}
non2xx = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  math.randomseed(7919 * tid)
  if init_scenario then init_scenario() end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local bad, seen, parts = 0, {}, {}
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
    for code, count in pairs(t:get("statuses")) do seen[code] = (seen[code] or 0) + count end
  end
  for code, count in pairs(seen) do parts[#parts + 1] = string.format('"%d":%d', code, count) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,"statuses":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes, bad, table.concat(parts, ","),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


@dataclass
class RunResult:
    app: str
    scenario: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    requests: int = 0
    non2xx: int = 0
    socket_errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    others: float = 0.0  # cores' worth of CPU other processes used during the measured run
    problem: str | None = None  # set when the figures must not be trusted

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def noisy(self) -> bool:
        return self.others > NOISY_CORES


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found; installing it with apt-get", flush=True)
    install = ["apt-get", "install", "-y", "wrk"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if subprocess.run(install, **quiet, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], **quiet, check=False)
        subprocess.run(install, **quiet, check=False)
    found = shutil.which("wrk")
    if not found:
        sys.exit("error: wrk is missing and `apt-get install -y wrk` did not install it")
    return found


def write_lua(scenario: Scenario, seed_count: int) -> Path:
    body = Template(scenario.lua).substitute(
        seed_count=seed_count, categories=CATEGORIES, query_path=QUERY_PATH
    )
    path = WORK_DIR / f"scenario-{scenario.name}.lua"
    path.write_text(LUA_PRELUDE + body)
    return path


def pinned(cpu: int | str | None, argv: list[str]) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def connections(opts: argparse.Namespace, scenario: Scenario) -> int:
    return scenario.connections if scenario.connections is not None else opts.connections


def run_wrk(
    opts: argparse.Namespace,
    scenario: Scenario,
    port: int,
    script: Path,
    seconds: float,
    log: Path | None,
) -> dict[str, Any]:
    conns = connections(opts, scenario)
    argv = pinned(
        opts.client_cpu,
        [
            opts.wrk,
            f"-t{min(opts.threads, conns)}",
            f"-c{conns}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            f"--timeout={scenario.timeout or opts.timeout}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
    )
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if log is not None:
        log.write_text(f"$ {' '.join(argv)}\n{proc.stdout}{proc.stderr}")
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            parsed: dict[str, Any] = json.loads(line[len("BENCH_RESULT ") :])
            return parsed
    raise RuntimeError(f"wrk printed no result (exit {proc.returncode}): {proc.stderr.strip()}")


def machine_cpu_seconds() -> float:
    """CPU time spent running processes on the whole machine (user + nice + system), or 0
    where /proc/stat cannot be read."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]
    except OSError:
        return 0.0
    return sum(int(f) for f in fields) / CLK_TCK


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads)."""
    try:
        rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def server_cpu_seconds(pid: int, database_process: str | None = None) -> float:
    """CPU time of the server: the process ``pid`` and its descendants (uvicorn's workers
    when there are several), and every process named ``database_process`` (PostgreSQL's
    backends, which do the server's database work)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        head, _, rest = text.rpartition(")")
        names[int(entry.name)] = head.partition("(")[2]
        parents[int(entry.name)] = int(rest.split()[1])
    ours = {pid}
    grew = True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in ours and child not in ours:
                ours.add(child)
                grew = True
    if database_process:
        ours |= {p for p, name in names.items() if name == database_process}
    return sum(process_cpu_seconds(p) for p in ours)


def settle(cpu: Callable[[], float], limit: float = 30.0) -> None:
    """Wait (up to ``limit`` s) until the server stops using CPU: a slow server may still be
    answering the warm-up's last requests when the measured run starts."""
    deadline = time.monotonic() + limit
    last = cpu()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = cpu()
        if now - last < 0.02:  # under 10% of a core
            return
        last = now


def own_cpu_seconds() -> float:
    """This harness and its reaped children (every wrk run)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(
    opts: argparse.Namespace,
    app: AppDef,
    scenario: Scenario,
    port: int,
    server_cpu: Callable[[], float],
    script: Path,
    tag: str = "",
) -> RunResult:
    result = RunResult(app.name, scenario.name)
    try:
        if opts.warmup > 0:
            run_wrk(opts, scenario, port, script, opts.warmup, None)
        settle(server_cpu)
        log = WORK_DIR / f"{app.name}{tag}-{scenario.name}.wrk.txt"
        before = machine_cpu_seconds(), server_cpu(), own_cpu_seconds()
        t0 = time.monotonic()
        raw = run_wrk(opts, scenario, port, script, opts.duration, log)
        elapsed = time.monotonic() - t0
        after = machine_cpu_seconds(), server_cpu(), own_cpu_seconds()
    except (RuntimeError, ValueError) as exc:
        result.problem = str(exc)
        return result
    machine, ours = after[0] - before[0], sum(after[1:]) - sum(before[1:])
    result.others = max(0.0, machine - ours) / elapsed if elapsed > 0 else 0.0
    seconds = raw["duration_us"] / 1e6
    result.requests = raw["requests"]
    result.rps = raw["requests"] / seconds if seconds > 0 else 0.0
    result.p50_ms = raw["latency_us"]["p50"] / 1000
    result.p99_ms = raw["latency_us"]["p99"] / 1000
    result.non2xx = raw["non2xx"]
    result.statuses = raw["statuses"]
    result.socket_errors = sum(raw["errors"][k] for k in ("connect", "read", "write", "timeout"))
    problems = []
    if result.requests == 0:
        problems.append("no request completed")
    if result.non2xx:
        problems.append(f"{result.non2xx} non-2xx (statuses {result.statuses})")
    unexpected = {s: n for s, n in result.statuses.items() if int(s) != scenario.expect_status}
    if unexpected and not result.non2xx:
        problems.append(f"expected {scenario.expect_status}, got {unexpected}")
    if result.socket_errors:
        problems.append(f"{result.socket_errors} socket errors {raw['errors']}")
    result.problem = "; ".join(problems) or None
    return result


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerFailed(Exception):
    def __init__(self, what: str, log_path: Path) -> None:
        self.log_tail = tail(log_path)
        last = self.log_tail.splitlines()[-1].strip() if self.log_tail else ""
        super().__init__(f"{what}: {last}" if last else what)


@contextlib.contextmanager
def server(
    opts: argparse.Namespace,
    app: AppDef,
    db_url: str,
    port: int,
    workers: int = 1,
    tag: str = "",
    uvicorn_args: Sequence[str] = (),
) -> Iterator[int]:
    """Run ``app`` under uvicorn (``uvicorn_args`` added to its command line) until the block
    ends; yields the server's pid. With one worker it is pinned to --server-cpu; with several
    it is not pinned (they use every core, which on a 2-core machine wrk shares)."""
    log_path = server_log(app, tag)
    # Several workers get every core: `taskset -c 0-N`, as the harness is pinned to the client
    # core and a child would inherit that.
    every_cpu = f"0-{(os.cpu_count() or 1) - 1}" if opts.server_cpu is not None else None
    argv = pinned(
        opts.server_cpu if workers == 1 else every_cpu,
        [
            sys.executable,
            "-m",
            "uvicorn",
            app.target,
            "--app-dir",
            str(APPS_DIR),
            "--workers",
            str(workers),
            "--no-access-log",
            "--ws",
            "websockets-sansio",  # as charter serve (the lighter WebSocket implementation)
            "--log-level",
            "warning",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *uvicorn_args,
        ],
    )
    env = dict(os.environ, BENCH_DB=db_url, PYTHONUNBUFFERED="1")
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(proc, port, log_path)
        yield proc.pid  # taskset execs the server, so this is the python process
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def server_log(app: AppDef, tag: str = "") -> Path:
    return WORK_DIR / f"{app.name}{tag}.server.log"


def variant_tag(backend: str, workers: int) -> str:
    """A suffix for working files: "" for the default (sqlite, one worker)."""
    return ("" if backend == "sqlite" else f"-{backend}") + ("" if workers == 1 else f"-w{workers}")


@dataclass
class Running:
    """A started server: its pid, its port, how to seed it, its log, and its CPU time so far
    (for the noise figure)."""

    pid: int
    port: int
    seed: Callable[[Dataset], list[str]]  # returns failures, empty when every row went in
    log_path: Path
    cpu: Callable[[], float]
    analyze: Callable[[], str | None] = lambda: None  # after seeding; a problem or None


@contextlib.contextmanager
def start_app(
    opts: argparse.Namespace, app: AppDef, backend: Backend, workers: int = 1
) -> Iterator[Running]:
    """Start ``app`` with ``workers`` uvicorn workers on a fresh, empty database until the
    block ends."""
    if app.kind == "harperdb":
        with harperdb_server(opts) as running:
            yield running
        return
    db_url = backend.prepare(app.name)
    port = free_port()
    tag = variant_tag(backend.name, workers)
    shown = f", {workers} workers (not pinned)" if workers > 1 else ""
    print(f"   {app.name} on port {port}, {db_url}{shown}", flush=True)
    with server(opts, app, db_url, port, workers, tag) as pid:
        yield Running(
            pid,
            port,
            lambda ds: seed(port, ds.rows),
            server_log(app, tag),
            lambda: server_cpu_seconds(pid, backend.server_process),
            lambda: backend.analyze(app.name, db_url),
        )


_harperdb_module: ModuleType | None = None


def harperdb_peer() -> ModuleType:
    """bench/harperdb/peer.py, imported from its path (bench/ is not a package)."""
    global _harperdb_module
    if _harperdb_module is None:
        path = BENCH_DIR / "harperdb" / "peer.py"
        spec = importlib.util.spec_from_file_location("bench_harperdb_peer", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        _harperdb_module = module
    return _harperdb_module


def harperdb_unavailable() -> str | None:
    """Why HarperDB cannot take part (no node/npm, the npm install failed), or None once
    ``npm install harperdb@4.7`` is done (a no-op when it already is)."""
    peer = harperdb_peer()
    try:
        peer.install(peer.DEFAULT_WORKDIR)
    except peer.HarperDBUnavailable as exc:
        return str(exc)
    return None


def harperdb_version() -> str:
    peer = harperdb_peer()
    version = peer._installed_version(peer.DEFAULT_WORKDIR.resolve())
    return f"harperdb {version}" if version else "harperdb (not installed)"


@contextlib.contextmanager
def harperdb_server(opts: argparse.Namespace) -> Iterator[Running]:
    """HarperDB on a fresh root (peer.start wipes bench/.work/harperdb/run), one worker
    thread, pinned like the ASGI servers; seeded with peer.load (the operations API's bulk
    upsert)."""
    peer = harperdb_peer()
    http_port = free_port()
    ops_port = free_port()
    while ops_port == http_port:
        ops_port = free_port()
    workdir = peer.DEFAULT_WORKDIR
    print(f"   harperdb on port {http_port} (operations API {ops_port}), root {rel(workdir)}/run")
    try:
        handle = peer.start(workdir, http_port, ops_port, cpu=opts.server_cpu)
    except peer.HarperDBUnavailable as exc:
        raise ServerFailed(str(exc), workdir / "run" / "harperdb.log") from exc

    def load(dataset: Dataset) -> list[str]:
        try:
            peer.load(handle, (seed_record(i) for i in range(dataset.rows)))
        except (RuntimeError, httpx.HTTPError, ValueError) as exc:
            return [f"load: {exc}"]
        return []

    try:
        yield Running(
            handle.pid, http_port, load, handle.log_path, lambda: server_cpu_seconds(handle.pid)
        )
    finally:
        peer.stop(handle)


def wait_ready(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"exited with status {proc.returncode}", log_path)
        try:
            httpx.get(f"http://127.0.0.1:{port}/Item/__ready__", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise ServerFailed("not listening after 60 s", log_path)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def log_problems(path: Path) -> str | None:
    text = path.read_text(errors="replace") if path.exists() else ""
    count = text.count("Traceback (most recent call last)")
    return f"server log has {count} traceback(s): {rel(path)}" if count else None


def rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


# --------------------------------------------------------------------------------------------
# Seeding and a conformance check
# --------------------------------------------------------------------------------------------


def seed_record(i: int) -> dict[str, Any]:
    """Row ``i`` of every dataset. Prices are distinct for i < 100,000 (7919 is prime to
    100,000), 0.25 to 1,000.24, so the query's top ten are the same ten rows everywhere."""
    return {
        "id": f"item-{i}",
        "name": f"item {i}",
        "category": f"c{i % CATEGORIES}",
        "price": ((i * 7919) % 100_000 + 25) / 100,
        "stock": i % 50,
    }


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: (status, body, server wants the connection closed)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", ""):
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while (await reader.readline()).strip():  # trailers, up to the blank line
            pass
        body = b"".join(chunks)
    else:
        body = b""
    return status, body, headers.get("connection") == "close"


async def _seed(port: int, count: int, concurrency: int) -> list[str]:
    """POST ``count`` records over ``concurrency`` keep-alive connections. A hand-rolled
    HTTP/1.1 client, because a general one (httpx) is the bottleneck here by a factor of ten."""
    failures: list[str] = []
    next_index = iter(range(count))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in next_index:
                body = json.dumps(seed_record(i)).encode()
                writer.write(
                    b"POST /Item/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
                status, answer, close = await asyncio.wait_for(_read_response(reader), 30)
                if status != 201 and len(failures) < 5:
                    failures.append(f"POST item-{i}: {status} {answer[:200]!r}")
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


def seed(port: int, count: int) -> list[str]:
    return asyncio.run(_seed(port, count, concurrency=32))


def _client(port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)


def check_get(port: int, dataset: Dataset) -> list[str]:
    """A seeded record by id, and a 404 for a missing one."""
    issues: list[str] = []
    with _client(port) as client:
        r = client.get("/Item/item-42")
        expected = seed_record(42)
        got = r.json() if r.status_code == 200 else None
        if not isinstance(got, dict) or {k: got.get(k) for k in expected} != expected:
            issues.append(f"GET /Item/item-42 -> {r.status_code} {r.text[:200]}")
        r = client.get("/Item/no-such-item")
        if r.status_code != 404:
            issues.append(f"GET /Item/no-such-item -> {r.status_code}, expected 404")
    return issues


def check_list(port: int, dataset: Dataset) -> list[str]:
    """Ten ``c3`` records, every field present."""
    keys = {"id", "name", "category", "price", "stock"}
    with _client(port) as client:
        r = client.get("/Item/?category=c3&limit(10)")
    rows = r.json() if r.status_code == 200 else None
    if (
        not isinstance(rows, list)
        or len(rows) != 10
        or any(row.get("category") != "c3" or not keys <= row.keys() for row in rows)
    ):
        return [f"GET /Item/?category=c3&limit(10) -> {r.status_code} {r.text[:200]}"]
    return []


def check_post(port: int, dataset: Dataset) -> list[str]:
    """A 201 with the record and its Location; a string where a number belongs is refused
    (``"stock": "3"``: every app validates strictly, none coerces), and adds nothing."""
    issues: list[str] = []
    with _client(port) as client:
        body = {"name": "probe", "category": "probe", "price": 1.5, "stock": 2}
        r = client.post("/Item/", json=body)
        created = r.json() if r.status_code == 201 else {}
        new_id = created.get("id") if isinstance(created, dict) else None
        if not new_id or {k: created.get(k) for k in body} != body:
            issues.append(f"POST /Item/ -> {r.status_code} {r.text[:200]}")
        elif not r.headers.get("location", "").endswith(f"/Item/{new_id}"):
            issues.append(f"POST /Item/ Location header is {r.headers.get('location')!r}")
        for field, value in (("stock", "3"), ("price", "1.5")):
            coerced = {**body, "id": f"probe-{field}", field: value}
            r = client.post("/Item/", json=coerced)
            if r.status_code not in (400, 422):
                issues.append(f"POST /Item/ {field} {value!r} -> {r.status_code}, expected 422")
    return issues


def check_rpc(port: int, dataset: Dataset) -> list[str]:
    """The quote's answer; a bad argument (``qty`` 0, or the string ``"3"``) is refused."""
    issues: list[str] = []
    order = {"product_id": "p1", "qty": 3, "address": {"city": "Oslo", "zip": "0150"}}
    with _client(port) as client:
        r = client.post("/rpc/quote", json={"order": order})
        if r.status_code != 200 or r.json() != {"product_id": "p1", "qty": 3, "total": 28.5}:
            issues.append(f"POST /rpc/quote -> {r.status_code} {r.text[:200]}")
        for qty in (0, "3"):
            r = client.post("/rpc/quote", json={"order": {**order, "qty": qty}})
            if r.status_code not in (400, 422):
                issues.append(f"POST /rpc/quote with qty {qty!r} -> {r.status_code}, expected 422")
    return issues


def query_matches(rows: int) -> list[dict[str, Any]]:
    """What QUERY_PATH matches among ``rows`` seeded rows, before its limit, in its order."""
    hits = (seed_record(i) for i in range(rows))
    ok = [r for r in hits if r["category"] == QUERY_CATEGORY and r["price"] > QUERY_PRICE_GT]
    return sorted(ok, key=lambda r: -r["price"])


def query_conformance(port: int, dataset: Dataset) -> list[str]:
    """QUERY_PATH answers the same ten rows as Python over the seeded rows: the prices in
    order (rows tied on price could come in any order; the seeded prices are distinct anyway),
    and each row a seeded row that matches the query, with every field."""
    matches = query_matches(dataset.rows)
    want, by_id = matches[:QUERY_LIMIT], {r["id"]: r for r in matches}
    r = httpx.get(f"http://127.0.0.1:{port}{QUERY_PATH}", timeout=60)
    got = r.json() if r.status_code == 200 else None
    if not isinstance(got, list) or not all(isinstance(row, dict) for row in got):
        return [f"GET {QUERY_PATH} -> {r.status_code} {r.text[:200]}"]
    issues = []
    prices, wanted = [row.get("price") for row in got], [row["price"] for row in want]
    if prices != wanted:
        issues.append(f"GET {QUERY_PATH}: prices {prices}, expected {wanted}")
    for row in got:
        seeded = by_id.get(row.get("id"))
        if seeded is None or {k: row.get(k) for k in seeded} != seeded:
            issues.append(f"GET {QUERY_PATH}: row {row} is not a matching seeded row")
            break
    if len({row.get("id") for row in got}) != len(got):
        issues.append(f"GET {QUERY_PATH}: duplicate ids")
    return issues


CHECKS: dict[str, Callable[[int, Dataset], list[str]]] = {
    "get": check_get,
    "list": check_list,
    "post": check_post,
    "rpc": check_rpc,
    "query": query_conformance,
}


# --------------------------------------------------------------------------------------------
# One app, every scenario
# --------------------------------------------------------------------------------------------


@dataclass
class AppRun:
    app: AppDef
    results: list[RunResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # whole-app problems (start, seed, check)
    seed_seconds: dict[str, float] = field(default_factory=dict)  # per dataset
    skipped: str | None = None  # why the app could not take part (HarperDB without npm)
    backend: str = "sqlite"
    workers: int = 1  # uvicorn --workers

    @property
    def label(self) -> str:
        return self.app.name if self.workers == 1 else f"{self.app.name} ({self.workers} workers)"


def by_dataset(scenarios: list[Scenario]) -> list[tuple[Dataset, list[Scenario]]]:
    """The scenarios grouped by dataset, in the order the datasets first appear."""
    groups: dict[str, list[Scenario]] = {}
    for scenario in scenarios:
        groups.setdefault(scenario.dataset, []).append(scenario)
    return [(DATASETS[name], group) for name, group in groups.items()]


def bench_app(
    opts: argparse.Namespace,
    app: AppDef,
    backend: Backend,
    scenarios: list[Scenario],
    workers: int = 1,
) -> AppRun:
    run = AppRun(app, backend=backend.name, workers=workers)
    served = [s for s in scenarios if s.serves(app)]
    if not served:
        return run
    print(f"\n== {run.label} on {backend.name}: {app.description}", flush=True)
    if app.kind == "harperdb":
        run.skipped = harperdb_unavailable()
        if run.skipped:
            print(f"   skipped: {run.skipped}", flush=True)
            return run
    for dataset, group in by_dataset(served):
        bench_dataset(opts, run, backend, dataset, group)
    return run


def bench_dataset(
    opts: argparse.Namespace,
    run: AppRun,
    backend: Backend,
    dataset: Dataset,
    scenarios: list[Scenario],
) -> None:
    """One server start on a fresh database: seed ``dataset``, check, run ``scenarios``."""
    tag = variant_tag(run.backend, run.workers)
    app, log_path = run.app, server_log(run.app, tag)

    def problem(text: str) -> None:
        run.problems.append(text if dataset.name == "base" else f"{dataset.name} dataset: {text}")
        print(f"   ! {run.problems[-1]}", flush=True)

    try:
        with start_app(opts, app, backend, run.workers) as running:
            log_path = running.log_path
            t0 = time.monotonic()
            failures = running.seed(dataset)
            run.seed_seconds[dataset.name] = time.monotonic() - t0
            print(
                f"   seeded {dataset.rows:,} rows ({dataset.name}) in"
                f" {run.seed_seconds[dataset.name]:.1f} s",
                flush=True,
            )
            if failures:
                problem("seeding failed: " + "; ".join(failures))
                return
            analyzed = running.analyze()
            if analyzed:
                problem(analyzed)
            checks = dict.fromkeys(name for s in scenarios for name in s.checks)
            for name in checks:
                for issue in CHECKS[name](running.port, dataset):
                    problem(f"conformance: {issue}")
            for scenario in scenarios:
                script = write_lua(scenario, dataset.rows)
                result = measure(opts, app, scenario, running.port, running.cpu, script, tag)
                run.results.append(result)
                note = f"  ! {result.problem}" if result.problem else ""
                if result.noisy:
                    note += f"  ~ noisy: others used {result.others:.2f} cores"
                print(
                    f"   {scenario.name:<8} {result.rps:>9.0f} req/s"
                    f"  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:8.2f} ms{note}",
                    flush=True,
                )
    except ServerFailed as exc:
        problem(f"server failed to start ({exc}); see {rel(WORK_DIR)}")
        print(f"   ! its log ends:\n{exc.log_tail}", flush=True)
        return
    except Exception as exc:  # a broken app must not stop the others from being measured
        problem(f"{type(exc).__name__}: {exc}")
    logged = log_problems(log_path)
    if logged:
        problem(logged)


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def result_for(runs: list[AppRun], app: str, scenario: str, workers: int = 1) -> RunResult | None:
    for run in runs:
        if run.app.name == app and run.workers == workers:
            for result in run.results:
                if result.scenario == scenario:
                    return result
    return None


def ratio(runs: list[AppRun], scenario: str, peer: str, workers: int = 1) -> float | None:
    """REFERENCE's req/s over ``peer``'s, both with ``workers`` workers."""
    ours = result_for(runs, REFERENCE, scenario, workers)
    theirs = result_for(runs, peer, scenario, workers)
    if ours is None or theirs is None or theirs.rps <= 0:
        return None
    return ours.rps / theirs.rps


def table_rows(runs: list[AppRun], scenarios: list[Scenario]) -> list[list[str]]:
    rows = []
    for scenario in scenarios:
        for run in runs:
            result = result_for(runs, run.app.name, scenario.name, run.workers)
            if result is None:
                if not scenario.serves(run.app):
                    why = "not served"
                else:
                    why = "skipped" if run.skipped else "failed" if run.problems else "not run"
                rows.append([scenario.name, run.label, why, "", "", "", "", ""])
                continue
            r = ratio(runs, scenario.name, run.app.name, run.workers)
            shown = "-" if run.app.name == REFERENCE else (f"{r:.2f}x" if r is not None else "n/a")
            flag = ("" if result.ok else " (!)") + (" (~)" if result.noisy else "")
            rows.append(
                [
                    scenario.name,
                    run.label,
                    f"{result.rps:,.0f}{flag}",
                    f"{result.p50_ms:.2f}",
                    f"{result.p99_ms:.2f}",
                    str(result.non2xx + result.socket_errors),
                    f"{result.others:.2f}",
                    shown,
                ]
            )
    return rows


HEADERS = [
    "scenario",
    "framework",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "others",
    f"{REFERENCE}/this",
]


def target_rows(
    runs: list[AppRun], scenarios: list[Scenario], backend: str = "sqlite", dirty: bool = False
) -> list[list[str]]:
    """The targets of ``backend`` and of the scenarios that were run, each met, not met or not
    measured; a workers target only when that worker count was run. From a ``dirty`` tree
    every status says so."""
    rows = []
    skipped = {run.app.name: run.skipped for run in runs if run.skipped}
    chosen = {s.name for s in scenarios}
    worker_counts = {run.workers for run in runs}
    for t in TARGETS:
        if t.scenario not in chosen or t.backend != backend:
            continue
        if t.workers is not None and t.workers not in worker_counts:
            continue
        ours = result_for(runs, REFERENCE, t.scenario)
        if t.workers is not None:  # REFERENCE with t.workers workers over itself with one
            assert t.min_ratio is not None
            more = result_for(runs, REFERENCE, t.scenario, t.workers)
            if ours is None or more is None or ours.rps <= 0:
                rows.append([t.label, "n/a", "not measured"])
                continue
            r = more.rps / ours.rps
            measured, measured_ok = f"{r:.2f}x", r >= t.min_ratio
            involved = [more, ours]
        elif t.max_p50_ms is not None:  # a latency bound on REFERENCE alone
            if ours is None:
                rows.append([t.label, "n/a", "not measured"])
                continue
            measured, measured_ok = f"p50 {ours.p50_ms:.2f} ms", ours.p50_ms < t.max_p50_ms
            involved = [ours]
        else:
            assert t.peer is not None and t.min_ratio is not None
            r = ratio(runs, t.scenario, t.peer)
            theirs = result_for(runs, t.peer, t.scenario)
            if r is None or ours is None or theirs is None:
                why = f" ({t.peer} skipped)" if t.peer in skipped else ""
                rows.append([t.label, "n/a", "not measured" + why])
                continue
            measured, measured_ok = f"{r:.2f}x", r >= t.min_ratio
            involved = [ours, theirs]
        if not all(x.ok for x in involved):
            rows.append([t.label, measured, "not met (run had errors)"])
            continue
        status = "met" if measured_ok else "not met"
        if any(x.noisy for x in involved):
            status += " (noisy)"
        if dirty:
            status += " (DIRTY TREE)"
        rows.append([t.label, measured, status])
    return rows


def plain_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def fmt(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if i >= 2 else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *map(fmt, rows)])


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def print_tables(title: str, headers: list[str], rows: list[list[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table as RichTable
    except ImportError:
        print(f"\n{title}\n{plain_table(headers, rows)}")
        return
    table = RichTable(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="right" if i >= 2 else "left")
    for r in rows:
        table.add_row(*r)
    console = Console()
    if not console.is_terminal:  # piped to a file: don't squeeze the table into 80 columns
        console = Console(width=120)
    console.print(table)


def _cmd(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO)
    except OSError:
        return "?"
    return (
        (proc.stdout or proc.stderr).strip().splitlines()[0]
        if (proc.stdout or proc.stderr)
        else "?"
    )


def machine_info(opts: argparse.Namespace) -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for dist in ("charter", "fastapi", "pydantic", "litestar", "msgspec", "uvicorn", "uvloop"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    if "postgres" in opts.backends:
        try:
            versions.append(f"asyncpg {importlib.metadata.version('asyncpg')}")
        except importlib.metadata.PackageNotFoundError:
            versions.append("asyncpg (not installed)")
        pg = _cmd(["psql", "-X", "-At", "-d", f"{PG_SERVER}/postgres", "-c", "SHOW server_version"])
        versions.append(f"PostgreSQL {pg}")
    if any(app.kind == "harperdb" for app in opts.apps):
        versions.append(f"{harperdb_version()} (node {_cmd(['node', '--version'])})")
    commit = _cmd(["git", "rev-parse", "HEAD"])
    dirty = dirty_files()
    return {
        "date": _cmd(["date", "-u"]),
        "machine": _cmd(["uname", "-a"]),
        "cpu": f"{cpu} x {os.cpu_count()} (nproc {_cmd(['nproc'])})",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "wrk": _cmd([opts.wrk, "-v"]).split(" Copyright")[0],
        "packages": ", ".join(versions),
        "commit": commit if commit.isalnum() else "(no commit)",
        "tree": f"DIRTY ({len(dirty)} uncommitted: {', '.join(dirty[:8])})" if dirty else "clean",
        "dirty": "yes" if dirty else "",
    }


def dirty_files() -> list[str]:
    """What ``git status`` lists as changed or untracked (ignored files such as bench/.work
    are not); ["(not a git work tree)"] when git cannot tell."""
    proc = subprocess.run(
        ["git", "status", "--porcelain"], capture_output=True, text=True, check=False, cwd=REPO
    )
    if proc.returncode != 0:
        return ["(not a git work tree)"]
    return [line[3:] for line in proc.stdout.splitlines() if line.strip()]


def side_by_side(
    opts: argparse.Namespace,
    bench: Callable[[], tuple[R, list[str]]],
    report: Callable[[argparse.Namespace, dict[str, str], R, list[str]], str],
    outcomes: Callable[[R], Iterable[RunResult]],
) -> int:
    """The run of a side-by-side bench (bench/signup.py, caching.py, auth.py): refuse a dirty
    tree unless told, pin this harness to the client's CPU, ``bench()`` (its results and
    problems), print ``report`` and append it to RESULTS.md; 1 when anything was flawed
    (a problem, or one of ``outcomes(results)`` not to be trusted)."""
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    dirty = dirty_files()
    if dirty and not opts.no_write and not opts.allow_dirty:
        sys.exit(
            "error: the work tree has uncommitted changes; commit first, or pass --no-write"
            " or --allow-dirty"
        )
    opts.wrk = ensure_wrk()
    info = machine_info(opts)
    if opts.client_cpu is not None:
        os.sched_setaffinity(0, {opts.client_cpu})
    results, problems = bench()
    text = report(opts, info, results, problems)
    print("\n" + text)
    if not opts.no_write:
        existing = RESULTS_MD.read_text()
        RESULTS_MD.write_text(existing.rstrip("\n") + "\n\n" + text)
        print(f"results appended to {rel(RESULTS_MD)}")
    flawed = problems or any(not r.ok for r in outcomes(results))
    return 1 if flawed else 0


def write_results(
    opts: argparse.Namespace,
    info: dict[str, str],
    runs: list[AppRun],
    scenarios: list[Scenario],
    backend: Backend,
) -> None:
    kind = "quick smoke run (not for comparison)" if opts.quick else "run"
    if info["dirty"]:
        kind = f"**FROM A DIRTY TREE, NOT A RESULT** ({kind}, --allow-dirty)"
    pinning = (
        f"server on CPU {opts.server_cpu}, wrk on CPU {opts.client_cpu}"
        if opts.server_cpu is not None
        else "no CPU pinning (fewer than 2 CPUs or no taskset)"
    )
    if any(w > 1 for w in opts.workers):
        pinning += (
            "; with more than one uvicorn worker the server is not pinned (every core), so on"
            " a 2-core machine its workers share the cores with wrk"
        )
    if backend.name == "postgres":
        pinning += "; PostgreSQL (not pinned) shares the cores with the server and wrk"
    lines = [
        f"## {info['date']} — {kind}",
        "",
        f"- machine: `{info['machine']}`",
        f"- CPU: {info['cpu']}",
        f"- Python: {info['python']}; SQLite {info['sqlite']}; {info['wrk']}",
        f"- packages: {info['packages']}",
        f"- tree: commit {info['commit']}, {info['tree']}",
        f"- load: wrk -t{opts.threads} -c{opts.connections} -d{opts.duration:g}s "
        f"(after a {opts.warmup:g} s warm-up), {pinning}",
        f"- backend: {backend.name} ({backend.describe}); uvicorn workers:"
        f" {', '.join(map(str, opts.workers))}",
        *(
            f"- `{sc.name}`: {sc.title}; {DATASETS[sc.dataset].rows:,} seeded rows"
            + (f"; wrk -c{sc.connections}" if sc.connections is not None else "")
            for sc in scenarios
        ),
        *(f"- **skipped** {run.app.name}: {run.skipped}" for run in runs if run.skipped),
        "",
        markdown_table(HEADERS, table_rows(runs, scenarios)),
        "",
        "Targets:",
        "",
        markdown_table(
            ["target", "measured", "status"],
            target_rows(runs, scenarios, backend.name, bool(info["dirty"])),
        ),
        "",
    ]
    problems = [f"- {run.label}: {p}" for run in runs for p in run.problems]
    problems += [
        f"- {run.label} {r.scenario}: {r.problem}" for run in runs for r in run.results if r.problem
    ]
    if problems:
        lines += ["Problems (figures marked (!) are not to be trusted):", "", *problems, ""]
    noisy = [f"{run.label} {r.scenario}" for run in runs for r in run.results if r.noisy]
    if noisy:
        lines += [
            f"**Noisy** (other processes used more than {NOISY_CORES} of a core during the run,"
            f" column `others`; figures marked (~)): {', '.join(noisy)}.",
            "",
        ]
    header = (
        "# Benchmark results\n\n"
        "Appended by `bench/run.py` (`make bench`), newest last. See bench/README.md for what\n"
        "is measured and how.\n"
    )
    existing = RESULTS_MD.read_text() if RESULTS_MD.exists() else header
    RESULTS_MD.write_text(existing.rstrip("\n") + "\n\n" + "\n".join(lines))
    print(f"\nresults appended to {rel(RESULTS_MD)}")


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    app_names = [a.name for a in APPS]
    scenario_names = [s.name for s in SCENARIOS]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=None, help="seconds per run (default 10)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--warmup", type=float, default=None, help="unmeasured seconds before each run")
    p.add_argument("--timeout", type=int, default=5, help="wrk request timeout, s (default 5)")
    p.add_argument("--only", default=",".join(app_names), help=f"apps: {','.join(app_names)}")
    p.add_argument(
        "--scenario", default=",".join(scenario_names), help=f"of: {','.join(scenario_names)}"
    )
    p.add_argument(
        "--backend", default="sqlite", help=f"databases, of: {','.join(BACKENDS)} (default sqlite)"
    )
    p.add_argument("--workers", default="1", help="uvicorn worker counts, e.g. 1,2 (default 1)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s runs, 1 s warm-up")
    p.add_argument("--seed-count", type=int, default=SEED_COUNT, help=argparse.SUPPRESS)
    # --rows large=20000: another row count for one dataset, for trying the harness out
    p.add_argument("--rows", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="don't append to bench/RESULTS.md")
    p.add_argument(
        "--allow-dirty",
        action="store_true",
        help="record results from a tree with uncommitted changes, marked as such",
    )
    opts = p.parse_args(argv)
    if opts.duration is None:
        opts.duration = 2.0 if opts.quick else 10.0
    if opts.warmup is None:
        opts.warmup = 1.0 if opts.quick else 2.0
    opts.apps = _pick(p, "--only", opts.only, {a.name: a for a in APPS})
    opts.scenarios = _pick(p, "--scenario", opts.scenario, {s.name: s for s in SCENARIOS})
    opts.backends = _pick(p, "--backend", opts.backend, BACKENDS)
    try:
        opts.workers = sorted({int(w) for w in opts.workers.split(",") if w.strip()})
    except ValueError:
        opts.workers = []
    if not opts.workers or min(opts.workers) < 1:
        p.error("--workers: give counts >= 1, e.g. 1,2")
    if opts.seed_count < 100:
        p.error("--seed-count must be at least 100")
    DATASETS["base"] = Dataset("base", opts.seed_count, DATASETS["base"].description)
    for spec in opts.rows:
        name, _, count = spec.partition("=")
        if name not in DATASETS or not count.isdigit() or int(count) < 100:
            p.error(f"--rows {spec}: give NAME=N, N >= 100, NAME from {','.join(DATASETS)}")
        DATASETS[name] = Dataset(name, int(count), DATASETS[name].description)
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        print("warning: fewer than 2 CPUs or no taskset; running unpinned", file=sys.stderr)
        opts.server_cpu = opts.client_cpu = None
    return opts


def _pick(p: argparse.ArgumentParser, flag: str, value: str, known: dict[str, Any]) -> list[Any]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        p.error(f"{flag}: unknown {unknown or value!r}; choose from {','.join(known)}")
    return [v for k, v in known.items() if k in names]  # in definition order


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    dirty = dirty_files()
    if dirty and not opts.no_write and not opts.allow_dirty:
        sys.exit(
            "error: the work tree has uncommitted changes ("
            + ", ".join(dirty[:8])
            + "): results must name the code they measured. Commit first, or pass --no-write"
            " (print only) or --allow-dirty (record, marked as from a dirty tree)."
        )
    opts.wrk = ensure_wrk()
    info = machine_info(opts)  # before pinning, so nproc sees every CPU
    if info["dirty"]:
        print("warning: DIRTY work tree; results are marked as such", file=sys.stderr)
    if opts.client_cpu is not None:
        # The harness itself (seeding, checks) stays off the server's core too.
        os.sched_setaffinity(0, {opts.client_cpu})
    # Read-only scenarios first, so they see exactly the seeded table.
    ordered = sorted(opts.scenarios, key=lambda s: s.writes)
    by_backend: list[tuple[Backend, list[Scenario], list[AppRun]]] = []
    for backend in opts.backends:
        scenarios = [s for s in ordered if backend.scenarios is None or s.name in backend.scenarios]
        apps = [a for a in opts.apps if backend.name in a.backends]
        left_out = [a.name for a in opts.apps if a not in apps]
        if left_out:
            print(f"\n({backend.name}: {', '.join(left_out)} not run on this backend)")
        runs = [
            bench_app(opts, app, backend, scenarios, workers)
            for app in apps
            for workers in opts.workers
        ]
        shown = [s for s in opts.scenarios if s in scenarios]
        by_backend.append((backend, shown, runs))

    print(f"\n{info['date']}; {info['cpu']}; {info['machine']}")
    print(f"commit {info['commit']}, tree {info['tree']}")
    flawed = False
    for backend, scenarios, runs in by_backend:
        title = f"{backend.name}: wrk -t{opts.threads} -c{opts.connections} -d{opts.duration:g}s"
        title += f", {info['python']}"
        title += "".join(
            f"; {s.name}: -c{s.connections}" for s in scenarios if s.connections is not None
        )
        print_tables(title, HEADERS, table_rows(runs, scenarios))
        print_tables(
            f"Targets ({backend.name})",
            ["target", "measured", "status"],
            target_rows(runs, scenarios, backend.name, bool(info["dirty"])),
        )
        for run in runs:
            if run.skipped:
                print(f"skipped {run.app.name}: {run.skipped}")
            for problem in run.problems:
                print(f"! {run.label} ({backend.name}): {problem.splitlines()[0]}")
            for r in run.results:
                if r.problem:
                    print(f"! {run.label} {r.scenario} ({backend.name}): {r.problem}")
        if not opts.no_write and runs:
            write_results(opts, info, runs, scenarios, backend)
        flawed = flawed or any(run.problems or not all(r.ok for r in run.results) for run in runs)
    return 1 if flawed else 0


if __name__ == "__main__":
    sys.exit(main())
