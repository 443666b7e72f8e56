"""Realtime, side by side with HarperDB 4.7 (issue 12, points 7 and 9): N subscribers on one
table, writes at a fixed rate, each event carrying its send time.

Each server (Charter under one uvicorn worker with its own HTTP protocol, as ``charter serve``
runs it, bench/apps/charter_realtime_app.py; HarperDB with
one worker thread, bench/harperdb/realtime_app/) is pinned to core 0; this harness, holding
every subscription (bench/realtime_load.py), and its writer process run on core 1. Per scenario:
subscribers, writes/s offered and achieved, deliveries/s, write-to-receive latency p50/p99,
events lost and duplicated, and the server's RSS before and after subscribing:

- ``fanout``, ``ws-fanout``: 1,000 subscribers (SSE; WebSocket), 20 writes/s.
- ``sweep``, ``ws-sweep``: 100 subscribers, rising write rates; the highest rate each server
  keeps p99 < 100 ms with nothing lost.
- ``idle``, ``ws-idle``: server memory per idle subscriber: RSS with 1,000 and then 10,000 idle
  subscribers against RSS before any, then one write that every one of them must receive.

    python bench/realtime.py [--quick] [--only charter,harperdb] [--scenario fanout,sweep,...]
                             [--duration 10] [--rates 20,50,...] [--no-write] [--allow-dirty]

Targets (issue 12): zero loss in every run; ``fanout`` p99 < 50 ms; Charter's highest rate
under 100 ms >= 3x HarperDB's; <= 20 KB of server memory per idle subscriber. Results are
appended to bench/RESULTS.md (from a clean tree only), as bench/run.py and bench/auth.py do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import realtime_load as load  # noqa: E402  (bench/ is not a package)
from realtime_report import Point, report  # noqa: E402

from charter.http.server import PROTOCOL  # noqa: E402


def _load_run() -> ModuleType:
    """bench/run.py: its server runner, HarperDB peer, machine info and report helpers."""
    spec = importlib.util.spec_from_file_location("bench_run", BENCH_DIR / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


run = _load_run()
PATH = "/Tick/"
SUBSCRIBE = "/Tick/?omitCurrent=true"  # Charter skips the current records; HarperDB ignores it


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "rate" (subscribers, then a write run per rate) or "idle"
    websocket: bool
    subscribers: tuple[int, ...]  # idle: the counts measured one after another
    rates: tuple[float, ...] = ()
    duration: float = 0.0  # measured seconds per rate, after ``warmup`` seconds
    warmup: float = 0.0

    @property
    def transport(self) -> str:
        return "WebSocket" if self.websocket else "SSE"


def scenarios(opts: argparse.Namespace) -> list[Scenario]:
    idle = tuple(n for n in opts.idle if n <= opts.max_fds)
    fanout = (opts.fanout,), (opts.fanout_rate,), opts.duration, opts.warmup
    sweep = (opts.sweep_subscribers,), tuple(opts.rates), opts.sweep_duration, opts.sweep_warmup
    every = [
        Scenario("idle", "idle", False, idle),
        Scenario("fanout", "rate", False, *fanout),
        Scenario("sweep", "rate", False, *sweep),
        Scenario("ws-fanout", "rate", True, *fanout),
        Scenario("ws-sweep", "rate", True, *sweep),
        Scenario("ws-idle", "idle", True, idle),
    ]
    return [s for s in every if s.name in opts.scenario]


@dataclass
class Server:
    name: str
    pid: int
    port: int
    log_path: Path

    def rss_kb(self) -> int:
        """VmRSS of the server process and its children (uvicorn's workers, if any)."""
        total = 0
        for pid in _tree(self.pid):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total

    def cpu(self) -> float:
        value: float = run.server_cpu_seconds(self.pid)
        return value


def _tree(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rpartition(")")[2].split()[1]
                )
    ours, grew = {pid}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in ours and child not in ours:
                ours.add(child)
                grew = True
    return ours


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def charter_server(opts: argparse.Namespace) -> Iterator[Server]:
    app = run.AppDef("charter_realtime", "charter_realtime_app:app", "Charter realtime")
    url = run._fresh_sqlite("charter_realtime")
    port = run.free_port()
    print(f"   charter on port {port}, {url}", flush=True)
    # As ``charter serve`` runs it: Charter's HTTP protocol (its connection lets the hub write
    # an event to an idle stream at once) and pings at the streams' keep-alive interval.
    serve_like = ("--http", PROTOCOL, "--ws-ping-interval", "15")
    with run.server(opts, app, url, port, 1, "", serve_like) as pid:
        yield Server("charter", pid, port, run.server_log(app))


@contextlib.contextmanager
def harperdb_server(opts: argparse.Namespace) -> Iterator[Server]:
    peer = run.harperdb_peer()
    http_port, ops_port = run.free_port(), run.free_port()
    while ops_port == http_port:
        ops_port = run.free_port()
    workdir = peer.DEFAULT_WORKDIR
    print(f"   harperdb on port {http_port}, root {run.rel(workdir)}/run", flush=True)
    try:
        handle = peer.start(
            workdir,
            http_port,
            ops_port,
            cpu=opts.server_cpu,
            app_dir=peer.REALTIME_APP_DIR,
            table="Tick",
        )
    except peer.HarperDBUnavailable as exc:
        raise run.ServerFailed(str(exc), workdir / "run" / "harperdb.log") from exc
    try:
        yield Server("harperdb", handle.pid, http_port, handle.log_path)
    finally:
        peer.stop(handle)


SERVERS: dict[str, Callable[[argparse.Namespace], contextlib.AbstractContextManager[Server]]] = {
    "charter": charter_server,
    "harperdb": harperdb_server,
}


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


class Runs:
    """Sequence numbers for write runs: run ``k`` writes n = k * 10^6 + i, so events of an
    earlier run (or a server's current records) are never counted, and n stays below 2^31
    (HarperDB's Int)."""

    def __init__(self) -> None:
        self.count = 0

    def base(self) -> int:
        self.count += 1
        return self.count * 1_000_000


def _own_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


async def drain(subs: list[load.Subscriber], tally: load.Tally, sent: int, limit: float) -> None:
    """Wait until every subscriber has (by the cheap count) every write sent, or nothing new
    arrived for 2 s, or ``limit`` seconds passed. ``finish`` the subscribers afterwards."""
    want = len(subs) * sent
    deadline = time.monotonic() + limit
    last, quiet_since = -1, time.monotonic()
    while tally.arrived < want and time.monotonic() < deadline:
        if tally.arrived != last:
            last, quiet_since = tally.arrived, time.monotonic()
        elif time.monotonic() - quiet_since > 2.0:
            break
        await asyncio.sleep(0.05)


def count_lost(subs: list[load.Subscriber], planned: int, sent: int, failed: list[int]) -> int:
    """(subscriber, write) pairs the server acknowledged and the subscriber never got."""
    unacked = set(failed) | set(range(sent, planned))
    acked = planned - len(unacked)
    return sum(acked - (sub.unique - sum(sub.seen[i] for i in unacked)) for sub in subs)


async def write_run(
    opts: argparse.Namespace,
    server: Server,
    scenario: Scenario,
    subs: list[load.Subscriber],
    rate: float,
    runs: Runs,
    seconds: float,
    warmup: float,
) -> Point:
    plan = load.WritePlan(server.port, PATH, rate, warmup + seconds, runs.base())
    tally = load.Tally(plan.base, plan.planned, skip=round(rate * warmup))
    for sub in subs:
        sub.watch(tally)
    point = Point(server.name, scenario.name, len(subs), rate if scenario.kind == "rate" else 0)
    point.rss_before_kb = point.rss_after_kb = server.rss_kb()
    before = run.machine_cpu_seconds(), server.cpu(), _own_cpu(), time.monotonic()
    report = await load.run_writer(plan)
    await drain(subs, tally, report["sent"], opts.drain)
    after = run.machine_cpu_seconds(), server.cpu(), _own_cpu(), time.monotonic()
    for sub in subs:  # parsed now, outside the measured window
        sub.finish()
    elapsed = after[3] - before[3]
    point.server_cores = (after[1] - before[1]) / elapsed
    # the client's core: this process (the subscribers) and the writer
    point.client_cores = (after[2] - before[2] + report["cpu_s"]) / elapsed
    machine = (after[0] - before[0]) / elapsed
    point.others = max(0.0, machine - point.server_cores - point.client_cores)
    point.achieved = report["achieved_rate"] if point.rate else 0.0
    point.failed_writes = len(report["failed"])
    point.lost = count_lost(subs, plan.planned, report["sent"], report["failed"])
    point.duplicates = tally.duplicates
    point.deliveries_per_s = tally.per_second
    lat = sorted(tally.latencies_us)
    if lat:
        point.p50_ms = lat[len(lat) // 2] / 1000
        point.p99_ms = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000
        point.max_ms = lat[-1] / 1000
    dropped = sum(1 for sub in subs if sub.closed)
    if dropped:
        point.notes.append(f"{dropped} subscribers closed by the server")
    if point.behind:
        point.notes.append(
            f"writes behind (late p99 {report['late_p99_ms']:.0f} ms,"
            f" PUT answered p99 {report['answer_p99_ms']:.0f} ms)"
        )
    if point.client_bound:
        point.notes.append(f"client-bound ({point.client_cores:.2f} cores)")
    if point.others > run.NOISY_CORES:
        point.notes.append(f"noisy (others {point.others:.2f})")
    problems = [*report["problems"]]
    if not lat:
        problems.append("no event received")
    if point.client_bound:
        problems.append("the client was the bottleneck")
    point.problem = "; ".join(problems) or None
    return point


async def rate_scenario(
    opts: argparse.Namespace, server: Server, scenario: Scenario, runs: Runs
) -> list[Point]:
    count = scenario.subscribers[0]
    rss0 = server.rss_kb()
    subs, refused = await load.subscribe(server.port, SUBSCRIBE, count, scenario.websocket)
    points: list[Point] = []
    try:
        if refused:
            point = Point(server.name, scenario.name, len(subs))
            point.problem = f"{len(refused)} of {count} subscriptions refused: {refused[0]}"
            return [point]
        await asyncio.sleep(opts.settle)
        for rate in scenario.rates:
            point = await write_run(
                opts, server, scenario, subs, rate, runs, scenario.duration, scenario.warmup
            )
            point.rss_before_kb = rss0
            points.append(point)
            _print_point(point)
            if point.behind or point.p99_ms > 1000 or point.lost or point.client_bound:
                for skipped in scenario.rates[scenario.rates.index(rate) + 1 :]:
                    print(f"   {scenario.name} {skipped:g}/s: not run (saturated at {rate:g}/s)")
                break
    finally:
        load.close_all(subs)
        await asyncio.sleep(0.5)
    return points


async def idle_scenario(
    opts: argparse.Namespace, server: Server, scenario: Scenario, runs: Runs
) -> list[Point]:
    run.settle(server.cpu)
    rss0 = server.rss_kb()
    subs: list[load.Subscriber] = []
    points: list[Point] = []
    try:
        for count in scenario.subscribers:
            more, refused = await load.subscribe(
                server.port, SUBSCRIBE, count - len(subs), scenario.websocket
            )
            subs += more
            await asyncio.sleep(opts.settle)
            run.settle(server.cpu)
            rss = server.rss_kb()
            # Still subscribed? One write, which every subscriber must receive.
            point = await write_run(opts, server, scenario, subs, 1.0, runs, 1.0, 0.0)
            point.rss_before_kb, point.rss_after_kb = rss0, rss
            point.deliveries_per_s = 0.0  # not a rate run
            if refused:
                point.problem = f"{len(refused)} of {count} subscriptions refused: {refused[0]}"
            points.append(point)
            _print_point(point)
    finally:
        load.close_all(subs)
        await asyncio.sleep(1.0)
    return points


async def prime(server: Server, runs: Runs) -> str | None:
    """Write every key once. HarperDB sends an SSE response's head with its first event, and
    a subscriber of a collection gets the current records first, so with records there a
    subscription is answered at once (Charter answers at once anyway, and skips them)."""
    plan = load.WritePlan(server.port, PATH, 200.0, 0.1, runs.base(), connections=4)
    report = await load.run_writer(plan)
    if report["failed"]:
        return f"writes failed: {report['problems'][:1]} {report['statuses']}"
    return None


async def conformance(server: Server, websocket: bool, runs: Runs) -> str | None:
    """None when the server streams a table's writes over this transport, else why not: one
    subscriber, three writes, each received once with its ``n`` and ``sent``."""
    subs, refused = await load.subscribe(server.port, SUBSCRIBE, 1, websocket, timeout=10)
    if not subs:
        return refused[0] if refused else "no subscription"
    try:
        plan = load.WritePlan(server.port, PATH, 20.0, 0.15, runs.base(), connections=1)
        tally = load.Tally(plan.base, plan.planned)
        subs[0].watch(tally)
        report = await load.run_writer(plan)
        if report["failed"]:
            return f"writes failed: {report['problems'][:1]} {report['statuses']}"
        await drain(subs, tally, report["sent"], 5.0)
        subs[0].finish()
        if tally.delivered != plan.planned or len(tally.latencies_us) != plan.planned:
            return f"{tally.delivered} of {plan.planned} writes arrived as events"
    finally:
        load.close_all(subs)
    return None


def _print_point(p: Point) -> None:
    what = f"{p.rate:g}/s" if p.rate else "idle"
    mem = f"rss {p.rss_before_kb / 1024:.0f}->{p.rss_after_kb / 1024:.0f} MB"
    if not p.rate:
        mem += f" ({p.per_subscriber_kb:.1f} KB/sub)"
    note = f"  [{'; '.join(p.notes)}]" if p.notes else ""
    bad = f"  ! {p.problem}" if p.problem else ""
    print(
        f"   {p.scenario:<9} {p.subscribers:>6} subs {what:>8}  sent {p.achieved:7.1f}/s"
        f"  {p.deliveries_per_s:9.0f} deliv/s  p50 {p.p50_ms:7.2f}  p99 {p.p99_ms:7.2f} ms"
        f"  lost {p.lost}  {mem}  server {p.server_cores:.2f} client {p.client_cores:.2f}"
        f"{note}{bad}",
        flush=True,
    )


def sessions(chosen: list[Scenario]) -> list[list[Scenario]]:
    """The scenarios grouped by server start: each idle scenario gets a fresh server (memory a
    process freed after one crowd of subscribers is reused by the next, which would then look
    free), the rate scenarios share one."""
    idle = [[s] for s in chosen if s.kind == "idle"]
    rate = [s for s in chosen if s.kind == "rate"]
    return [*idle[:1], *([rate] if rate else []), *idle[1:]]


def bench_server(
    opts: argparse.Namespace, name: str, loop: asyncio.AbstractEventLoop
) -> tuple[list[Point], dict[str, str]]:
    """Every scenario against one server; returns the points and, per scenario not measured,
    why."""
    points: list[Point] = []
    skipped: dict[str, str] = {}
    runs = Runs()
    print(f"== {name}", flush=True)
    for group in sessions(scenarios(opts)):
        try:
            with SERVERS[name](opts) as server:
                # Every session starts with writes and one subscriber per transport: a check,
                # and a warm-up (imports, first allocations) before any figure is taken.
                unwritable = loop.run_until_complete(prime(server, runs))
                served: dict[bool, str | None] = {}
                for ws in dict.fromkeys(s.websocket for s in group):
                    check = conformance(server, ws, runs)
                    served[ws] = unwritable or loop.run_until_complete(check)
                    if served[ws]:
                        print(f"   {'WebSocket' if ws else 'SSE'} not served: {served[ws]}")
                session: list[Point] = []
                for scenario in group:
                    why = served[scenario.websocket]
                    if why:
                        skipped[scenario.name] = f"{scenario.transport} not served: {why}"
                        continue
                    body = idle_scenario if scenario.kind == "idle" else rate_scenario
                    session += loop.run_until_complete(body(opts, server, scenario, runs))
                traceback = run.log_problems(server.log_path)
                for point in session:
                    point.problem = point.problem or traceback
                points += session
        except run.ServerFailed as exc:
            print(f"   {name} failed: {exc}", flush=True)
            for scenario in group:
                skipped.setdefault(scenario.name, f"server failed: {exc}")
    return points, skipped


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _numbers(text: str, kind: Callable[[str], Any] = float) -> list[Any]:
    return [kind(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    every = ["idle", "fanout", "sweep", "ws-fanout", "ws-sweep", "ws-idle"]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", default="charter,harperdb", help="servers (charter,harperdb)")
    p.add_argument("--scenario", default=",".join(every), help=f"from {','.join(every)}")
    p.add_argument("--duration", type=float, default=None, help="fanout's measured s (10)")
    p.add_argument("--warmup", type=float, default=None, help="unmeasured s before (2)")
    p.add_argument("--sweep-duration", type=float, default=None, help="per sweep rate (5)")
    p.add_argument("--sweep-warmup", type=float, default=None, help="before each (1)")
    p.add_argument("--fanout", type=int, default=1000, help="subscribers in fanout (1000)")
    p.add_argument("--fanout-rate", type=float, default=20.0)
    p.add_argument("--sweep-subscribers", type=int, default=100)
    p.add_argument("--rates", default="20,50,100,200,300,500,700,1000,1500,2000,3000,5000")
    p.add_argument("--idle", default="1000,10000", help="idle subscriber counts")
    p.add_argument("--settle", type=float, default=2.0, help="s after subscribing")
    p.add_argument("--drain", type=float, default=10.0, help="s to wait for late events")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s runs, small counts")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="don't append to bench/RESULTS.md")
    p.add_argument("--allow-dirty", action="store_true", help="record from a dirty tree, marked")
    opts = p.parse_args(argv)
    opts.only = [s for s in opts.only.split(",") if s]
    opts.scenario = [s for s in opts.scenario.split(",") if s]
    unknown = [s for s in opts.only if s not in SERVERS] + [
        s for s in opts.scenario if s not in every
    ]
    if unknown:
        p.error(f"unknown: {', '.join(unknown)}")
    opts.rates = _numbers(opts.rates)
    opts.idle = _numbers(opts.idle, int)
    if opts.quick:
        opts.fanout = min(opts.fanout, 200)
        opts.sweep_subscribers = min(opts.sweep_subscribers, 20)
        opts.rates = [r for r in opts.rates if r <= 200]
        opts.idle = [min(n, 500) for n in opts.idle[:1]]
    if opts.duration is None:
        opts.duration = 2.0 if opts.quick else 10.0
    if opts.warmup is None:
        opts.warmup = 0.5 if opts.quick else 2.0
    if opts.sweep_duration is None:
        opts.sweep_duration = 2.0 if opts.quick else 5.0
    if opts.sweep_warmup is None:
        opts.sweep_warmup = 0.5 if opts.quick else 1.0
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        opts.server_cpu = opts.client_cpu = None
    # Each subscriber is a socket here and one in the server (which inherits this limit).
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    opts.max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200
    opts.backends = []  # what run.machine_info reads
    opts.apps = [run.AppDef("harperdb", "", "", kind="harperdb")] if "harperdb" in opts.only else []
    opts.wrk = shutil.which("wrk") or "wrk"
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    run.WORK_DIR.mkdir(parents=True, exist_ok=True)
    dirty = run.dirty_files()
    if dirty and not opts.no_write and not opts.allow_dirty:
        sys.exit(
            "error: the work tree has uncommitted changes; commit first, or pass --no-write"
            " or --allow-dirty"
        )
    if "harperdb" in opts.only:
        why = run.harperdb_unavailable()
        if why:
            print(f"HarperDB skipped: {why}", flush=True)
    info = run.machine_info(opts)
    if opts.client_cpu is not None:
        os.sched_setaffinity(0, {opts.client_cpu})
    loop = load.new_loop()
    points: list[Point] = []
    skipped: dict[str, dict[str, str]] = {}
    try:
        for name in opts.only:
            if name == "harperdb" and run.harperdb_unavailable():
                skipped[name] = {s.name: "HarperDB unavailable" for s in scenarios(opts)}
                continue
            got, why = bench_server(opts, name, loop)
            points += got
            if why:
                skipped[name] = why
    finally:
        loop.close()
    text = report(opts, info, points, skipped)
    print("\n" + text)
    if not opts.no_write:
        existing = run.RESULTS_MD.read_text()
        run.RESULTS_MD.write_text(existing.rstrip("\n") + "\n\n" + text)
        print(f"results appended to {run.rel(run.RESULTS_MD)}")
    flawed = any(p.problem for p in points) or any(p.lost for p in points)
    return 1 if flawed else 0


if __name__ == "__main__":
    sys.exit(main())
