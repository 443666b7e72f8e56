"""The figures of bench/realtime.py: one ``Point`` per measured run, the tables printed and
appended to bench/RESULTS.md, and Charter's targets from issue 12 (zero loss; 1,000 subscribers
at 20 writes/s under 50 ms p99; >= 3x HarperDB's highest write rate under 100 ms p99; <= 20 KB
of server memory per idle subscriber).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

P99_SWEEP_MS = 100.0
P99_FANOUT_MS = 50.0
IDLE_KB = 20.0
SWEEP_RATIO = 3.0
CLIENT_BOUND = 0.85  # cores: a busier client measures itself, not the server
NOISY_CORES = 0.15  # as bench/run.py: other processes' CPU above this marks a run noisy


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


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


def sustained_rate(points: list[Point], server: str, scenario: str) -> float | None:
    """The highest rate of a sweep at which ``server`` kept p99 under 100 ms, lost nothing
    and sent every write on time (None: not even the lowest)."""
    kept = [
        p.rate
        for p in points
        if p.server == server and p.scenario == scenario and p.sustained(P99_SWEEP_MS)
    ]
    return max(kept) if kept else None


def sustained_rows(points: list[Point]) -> list[list[str]]:
    rows = []
    for server, scenario in dict.fromkeys(
        (p.server, p.scenario) for p in points if p.rate and "sweep" in p.scenario
    ):
        rate = sustained_rate(points, server, scenario)
        subs = max(p.subscribers for p in points if (p.server, p.scenario) == (server, scenario))
        top = max(p.rate for p in points if (p.server, p.scenario) == (server, scenario))
        shown = "none" if rate is None else f"{rate:g}" + (" (the top run)" if rate == top else "")
        rows.append([server, scenario, f"{subs:,}", shown])
    return rows


def rate_rows(points: list[Point]) -> list[list[str]]:
    rows = []
    for p in points:
        if not p.rate:
            continue
        flag = (" (!)" if p.problem else "") + (" (~)" if p.others > NOISY_CORES else "")
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
        elif any(p.others > NOISY_CORES for p in basis):
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
            label = f"{name}: {fan[0].subscribers:,} subs, {fan[0].rate:g} writes/s, p99 < 50 ms"
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
        f" {opts.warmup:g} s warm-up + {opts.duration:g} s measured ({opts.sweep_warmup:g} s +"
        f" {opts.sweep_duration:g} s per sweep rate); PUT /Tick/k{{n % 20}}"
        " over up to 64 connections; each event's latency is receive time minus the `sent`"
        " its record carries",
        *(
            f"- **not measured** {server} {scenario}: {why}"
            for server, reasons in skipped.items()
            for scenario, why in reasons.items()
        ),
        "",
        markdown_table(RATE_HEADERS, rate_rows(points)),
        "",
        "Highest write rate kept (p99 < 100 ms, nothing lost, every write sent on time):",
        "",
        markdown_table(["server", "scenario", "subs", "writes/s"], sustained_rows(points)),
        "",
        "Server memory with idle subscribers (one write afterwards, which each must receive):",
        "",
        markdown_table(IDLE_HEADERS, idle_rows(points)),
        "",
        "Targets (issue 12):",
        "",
        markdown_table(
            ["target", "measured", "status"], target_rows(points, skipped, bool(info["dirty"]))
        ),
        "",
    ]
    problems = [f"- {p.server} {p.scenario} {p.rate:g}/s: {p.problem}" for p in points if p.problem]
    if problems:
        lines += ["Problems (figures marked (!) are not to be trusted):", "", *problems, ""]
    return "\n".join(lines)
