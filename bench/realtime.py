"""Realtime, side by side with HarperDB 4.7 (issue 12, points 7 and 9): N subscribers on one
table, writes at a fixed rate, each event carrying its send time.

Each server (Charter under one uvicorn worker, bench/apps/charter_realtime_app.py; HarperDB with
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
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import realtime_load as load  # noqa: E402  (bench/ is not a package)


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
P99_SWEEP_MS = 100.0
P99_FANOUT_MS = 50.0
IDLE_KB = 20.0
SWEEP_RATIO = 3.0
CLIENT_BOUND = 0.85  # cores: a busier client measures itself, not the server


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "rate" (subscribers, then a write run per rate) or "idle"
    websocket: bool
    subscribers: tuple[int, ...]  # idle: the counts measured one after another
    rates: tuple[float, ...] = ()

    @property
    def transport(self) -> str:
        return "WebSocket" if self.websocket else "SSE"


def scenarios(opts: argparse.Namespace) -> list[Scenario]:
    idle = tuple(n for n in opts.idle if n <= opts.max_fds)
    every = [
        Scenario("idle", "idle", False, idle),
        Scenario("fanout", "rate", False, (opts.fanout,), (opts.fanout_rate,)),
        Scenario("sweep", "rate", False, (opts.sweep_subscribers,), tuple(opts.rates)),
        Scenario("ws-fanout", "rate", True, (opts.fanout,), (opts.fanout_rate,)),
        Scenario("ws-sweep", "rate", True, (opts.sweep_subscribers,), tuple(opts.rates)),
        Scenario("ws-idle", "idle", True, idle),
    ]
    return [s for s in every if s.name in opts.scenario]


@dataclass
class Point:
    """One measured run: a write rate against a set of subscribers, or an idle count."""

    server: str
    scenario: str
    subscribers: int
    rate: float = 0.0
    achieved: float = 0.0
    deliveries_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    lost: int = 0
    duplicates: int = 0
    failed_writes: int = 0
    rss_before_kb: int = 0
    rss_after_kb: int = 0
    server_cores: float = 0.0
    client_cores: float = 0.0
    others: float = 0.0
    notes: list[str] = field(default_factory=list)
    problem: str | None = None  # the figures are not to be trusted

    @property
    def per_subscriber_kb(self) -> float:
        return (self.rss_after_kb - self.rss_before_kb) / max(1, self.subscribers)

    @property
    def client_bound(self) -> bool:
        return self.client_cores > CLIENT_BOUND

    @property
    def behind(self) -> bool:
        return self.rate > 0 and self.achieved < 0.95 * self.rate

    def sustained(self, p99_ms: float) -> bool:
        """Kept up: every write sent on time, nothing lost, p99 under ``p99_ms``."""
        return (
            self.problem is None
            and not self.behind
            and self.lost == 0
            and self.failed_writes == 0
            and self.p99_ms < p99_ms
        )


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
    with run.server(opts, app, url, port, 1, "") as pid:
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
    """Wait until every subscriber has every write sent, or nothing new arrived for 2 s, or
    ``limit`` seconds passed."""
    want = len(subs) * sent
    deadline = time.monotonic() + limit
    last, quiet_since = -1, time.monotonic()
    while tally.delivered < want and time.monotonic() < deadline:
        if tally.delivered != last:
            last, quiet_since = tally.delivered, time.monotonic()
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
    point = Point(server.name, scenario.name, len(subs), rate)
    point.rss_before_kb = point.rss_after_kb = server.rss_kb()
    before = run.machine_cpu_seconds(), server.cpu(), _own_cpu(), time.monotonic()
    report = await load.run_writer(plan)
    await drain(subs, tally, report["sent"], opts.drain)
    after = run.machine_cpu_seconds(), server.cpu(), _own_cpu(), time.monotonic()
    elapsed = after[3] - before[3]
    point.server_cores = (after[1] - before[1]) / elapsed
    point.client_cores = (after[2] - before[2]) / elapsed
    writer_cores = report["cpu_s"] / elapsed
    machine = after[0] - before[0]
    point.others = max(0.0, machine / elapsed - point.server_cores - point.client_cores)
    point.others = max(0.0, point.others - writer_cores)
    point.achieved = report["achieved_rate"]
    point.failed_writes = len(report["failed"])
    point.lost = count_lost(subs, plan.planned, report["sent"], report["failed"])
    point.duplicates = tally.duplicates
    # deliveries after the warm-up (those whose latency is kept) over the measured seconds
    point.deliveries_per_s = len(tally.latencies_us) / seconds if seconds > 0 else 0.0
    lat = sorted(tally.latencies_us)
    if lat:
        point.p50_ms = lat[len(lat) // 2] / 1000
        point.p99_ms = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000
        point.max_ms = lat[-1] / 1000
    dropped = sum(1 for sub in subs if sub.closed)
    if dropped:
        point.notes.append(f"{dropped} subscribers closed by the server")
    if point.behind:
        point.notes.append(f"writes behind (late p99 {report['late_p99_ms']:.0f} ms)")
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
                opts, server, scenario, subs, rate, runs, opts.duration, opts.warmup
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
            point.rate = point.achieved = 0.0  # not a rate run
            point.deliveries_per_s = 0.0
            if refused:
                point.problem = f"{len(refused)} of {count} subscriptions refused: {refused[0]}"
            points.append(point)
            _print_point(point)
    finally:
        load.close_all(subs)
        await asyncio.sleep(1.0)
    return points


async def conformance(server: Server, websocket: bool, runs: Runs) -> str | None:
    """None when the server streams a table's writes over this transport, else why not: one
    subscriber, three writes, each received once with its ``n`` and ``sent``."""
    subs, refused = await load.subscribe(server.port, SUBSCRIBE, 1, websocket)
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


def bench_server(
    opts: argparse.Namespace, name: str, loop: asyncio.AbstractEventLoop
) -> tuple[list[Point], dict[str, str]]:
    """Every scenario against one server; returns the points and, per scenario not measured,
    why."""
    points: list[Point] = []
    skipped: dict[str, str] = {}
    runs = Runs()
    print(f"== {name}", flush=True)
    try:
        with SERVERS[name](opts) as server:
            served = {
                ws: loop.run_until_complete(conformance(server, ws, runs)) for ws in (False, True)
            }
            for ws, why in served.items():
                if why:
                    print(f"   {'WebSocket' if ws else 'SSE'} not served: {why}", flush=True)
            for scenario in scenarios(opts):
                why = served[scenario.websocket]
                if why:
                    skipped[scenario.name] = f"{scenario.transport} not served: {why}"
                    continue
                body = idle_scenario if scenario.kind == "idle" else rate_scenario
                points += loop.run_until_complete(body(opts, server, scenario, runs))
            traceback = run.log_problems(server.log_path)
            if traceback:
                for point in points:
                    point.problem = point.problem or traceback
    except run.ServerFailed as exc:
        print(f"   {name} failed: {exc}", flush=True)
        for scenario in scenarios(opts):
            skipped.setdefault(scenario.name, f"server failed: {exc}")
    return points, skipped


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def sustained_rate(points: list[Point], server: str, scenario: str) -> float | None:
    """The highest rate of a sweep at which ``server`` kept p99 under 100 ms, lost nothing
    and sent every write on time (None: not even the lowest)."""
    kept = [
        p.rate
        for p in points
        if p.server == server and p.scenario == scenario and p.sustained(P99_SWEEP_MS)
    ]
    return max(kept) if kept else None


def rate_rows(points: list[Point]) -> list[list[str]]:
    rows = []
    for p in points:
        if not p.rate:
            continue
        flag = (" (!)" if p.problem else "") + (" (~)" if p.others > run.NOISY_CORES else "")
        rows.append(
            [
                p.server,
                p.scenario,
                f"{p.subscribers:,}",
                f"{p.rate:g}",
                f"{p.achieved:.1f}",
                f"{p.deliveries_per_s:,.0f}{flag}",
                f"{p.p50_ms:.2f}",
                f"{p.p99_ms:.2f}",
                f"{p.max_ms:.1f}",
                f"{p.lost}" + (f" (+{p.duplicates} dup)" if p.duplicates else ""),
                f"{p.rss_before_kb / 1024:.0f} → {p.rss_after_kb / 1024:.0f}",
                f"{p.server_cores:.2f}",
                f"{p.client_cores:.2f}",
                "; ".join(p.notes),
            ]
        )
    return rows


RATE_HEADERS = [
    "server",
    "scenario",
    "subs",
    "writes/s",
    "sent/s",
    "deliveries/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "lost",
    "RSS MB",
    "server cores",
    "client cores",
    "notes",
]
IDLE_HEADERS = [
    "server",
    "transport",
    "idle subs",
    "RSS MB before → with",
    "KB/sub",
    "lost",
    "p99 ms",
]


def idle_rows(points: list[Point]) -> list[list[str]]:
    return [
        [
            p.server,
            "WebSocket" if p.scenario.startswith("ws-") else "SSE",
            f"{p.subscribers:,}" + (" (!)" if p.problem else ""),
            f"{p.rss_before_kb / 1024:.1f} → {p.rss_after_kb / 1024:.1f}",
            f"{p.per_subscriber_kb:.1f}",
            str(p.lost),
            f"{p.p99_ms:.1f}",
        ]
        for p in points
        if not p.rate
    ]


def target_rows(
    points: list[Point], skipped: dict[str, dict[str, str]], dirty: bool
) -> list[list[str]]:
    """Charter's targets (issue 12): measured figure and met / not met, with the reason when
    not measured."""
    ours = [p for p in points if p.server == "charter"]
    rows: list[list[str]] = []

    def status(ok: bool, basis: list[Point]) -> str:
        text = "met" if ok else "not met"
        if any(p.problem for p in basis):
            text += " (figures not to be trusted)"
        elif any(p.others > run.NOISY_CORES for p in basis):
            text += " (noisy)"
        return text + (" (dirty tree)" if dirty else "")

    def missing(scenario: str) -> str:
        why = skipped.get("charter", {}).get(scenario)
        return f"not measured ({why})" if why else "not measured"

    lost = sum(p.lost for p in ours)
    rows.append(
        ["zero loss in every run (charter)", f"{lost} lost", status(lost == 0, ours)]
        if ours
        else ["zero loss in every run (charter)", "n/a", missing("fanout")]
    )
    for name in ("fanout", "ws-fanout"):
        fan = [p for p in ours if p.scenario == name]
        label = f"{name}: 1,000 subs, 20 writes/s, p99 < {P99_FANOUT_MS:g} ms"
        if fan:
            ok = fan[0].p99_ms < P99_FANOUT_MS and fan[0].lost == 0
            rows.append([label, f"{fan[0].p99_ms:.2f} ms", status(ok, fan)])
        elif name == "fanout":
            rows.append([label, "n/a", missing(name)])
    for name in ("sweep", "ws-sweep"):
        label = f"{name}: charter's rate at p99 < 100 ms >= {SWEEP_RATIO:g}x harperdb's"
        theirs = sustained_rate(points, "harperdb", name)
        mine = sustained_rate(points, "charter", name)
        basis = [p for p in points if p.scenario == name]
        if not any(p.server == "charter" for p in basis):
            if name == "sweep":
                rows.append([label, "n/a", missing(name)])
            continue
        if not any(p.server == "harperdb" for p in basis):
            why = skipped.get("harperdb", {}).get(name, "not run")
            rows.append([label, f"charter {mine or 0:g}/s", f"not measured (harperdb: {why})"])
            continue
        shown = f"charter {mine or 0:g}/s, harperdb {theirs or 0:g}/s"
        if theirs is None:
            rows.append([label, shown, "not measured (harperdb never under 100 ms)"])
            continue
        top = max(p.rate for p in basis if p.server == "charter")
        ok = mine is not None and mine >= SWEEP_RATIO * theirs
        note = " (charter kept up at the sweep's top rate)" if mine == top else ""
        rows.append([label, f"{shown} = {(mine or 0) / theirs:.1f}x{note}", status(ok, basis)])
    for name in ("idle", "ws-idle"):
        idle = [p for p in ours if p.scenario == name]
        label = f"{name}: <= {IDLE_KB:g} KB of server memory per idle subscriber"
        if idle:
            worst = max(idle, key=lambda p: p.per_subscriber_kb)
            shown = ", ".join(f"{p.per_subscriber_kb:.1f} KB at {p.subscribers:,}" for p in idle)
            rows.append([label, shown, status(worst.per_subscriber_kb <= IDLE_KB, idle)])
        elif name == "idle":
            rows.append([label, "n/a", missing(name)])
    return rows


def report(
    opts: argparse.Namespace,
    info: dict[str, str],
    points: list[Point],
    skipped: dict[str, dict[str, str]],
) -> str:
    kind = "realtime run" + (" (quick, not for comparison)" if opts.quick else "")
    if info["dirty"]:
        kind = f"**FROM A DIRTY TREE, NOT A RESULT** ({kind})"
    pinning = (
        f"server on CPU {opts.server_cpu}, subscribers and writer on CPU {opts.client_cpu}"
        if opts.server_cpu is not None
        else "no CPU pinning (fewer than 2 CPUs or no taskset)"
    )
    lines = [
        f"## {info['date']} — {kind}",
        "",
        f"- machine: `{info['machine']}`; CPU: {info['cpu']}",
        f"- Python: {info['python']}; SQLite {info['sqlite']}; {info['packages']}",
        f"- tree: commit {info['commit']}, {info['tree']}",
        f"- load: bench/realtime.py; {pinning}; one uvicorn worker"
        " (bench/apps/charter_realtime_app.py), HarperDB one worker thread"
        " (bench/harperdb/realtime_app/); each rate run"
        f" {opts.warmup:g} s warm-up + {opts.duration:g} s measured; PUT /Tick/k{{n % 20}}"
        " over up to 64 connections; each event's latency is receive time minus the `sent`"
        " its record carries",
        *(
            f"- **not measured** {server} {scenario}: {why}"
            for server, reasons in skipped.items()
            for scenario, why in reasons.items()
        ),
        "",
        run.markdown_table(RATE_HEADERS, rate_rows(points)),
        "",
        "Server memory with idle subscribers (one write afterwards, which each must receive):",
        "",
        run.markdown_table(IDLE_HEADERS, idle_rows(points)),
        "",
        "Targets (issue 12):",
        "",
        run.markdown_table(
            ["target", "measured", "status"], target_rows(points, skipped, bool(info["dirty"]))
        ),
        "",
    ]
    problems = [f"- {p.server} {p.scenario} {p.rate:g}/s: {p.problem}" for p in points if p.problem]
    if problems:
        lines += ["Problems (figures marked (!) are not to be trusted):", "", *problems, ""]
    return "\n".join(lines)


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
    p.add_argument("--duration", type=float, default=None, help="measured s per rate (10)")
    p.add_argument("--warmup", type=float, default=None, help="unmeasured s before (2)")
    p.add_argument("--fanout", type=int, default=1000, help="subscribers in fanout (1000)")
    p.add_argument("--fanout-rate", type=float, default=20.0)
    p.add_argument("--sweep-subscribers", type=int, default=100)
    p.add_argument("--rates", default="20,50,100,200,500,1000,1500,2000,3000")
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
