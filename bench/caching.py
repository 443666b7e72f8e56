"""What a caching table's hit costs (issue 13), measured side by side in one run.

One SQLite database and one server (bench/apps/charter_cache_app.py under one uvicorn worker
pinned to one core, wrk pinned to the other, exactly as bench/run.py does), with two tables of
the same records: ``Item``, a plain table seeded through ``POST /Item/`` (10,000 rows, as
bench/run.py's ``base`` dataset), and ``CachedItem``, a caching table whose source computes
the same rows, warmed by one ``GET`` of every id (each a miss, loaded from the source and
stored). Then ANALYZE, a check that both answer the same records, and:

- ``get``: GET /Item/item-N (the plain table, the baseline) and GET /CachedItem/item-N (a
  cache hit: the record is fresh, expiration is an hour), N random among the seeded ids.

The two are measured in ``--rounds`` rounds (default 2), in alternating order (plain then
cache, then cache then plain...), so that a drift of the machine during the run weighs on both
alike; each round is a row, and the ratio the target is judged on is that of their mean req/s.

    python bench/caching.py [--quick] [--duration 10] [--rounds 2] [--no-write] [--allow-dirty]

Target (issue 13): a cache hit >= 0.9x a plain table's GET by id. Results are appended to
bench/RESULTS.md (from a clean tree only).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent


def _load_run() -> ModuleType:
    """bench/run.py (bench/ is not a package): its servers, wrk driver and report helpers."""
    spec = importlib.util.spec_from_file_location("bench_run", BENCH_DIR / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


run = _load_run()
ITEMS = 10_000
TARGET = 0.9


@dataclass(frozen=True)
class Variant:
    """One measured request shape; ``baseline`` names the variant ratios are taken against."""

    name: str
    table: str
    baseline: str | None = None
    target: float | None = None


VARIANTS = [
    Variant("plain table", "Item"),
    Variant("cache hit", "CachedItem", baseline="plain table", target=TARGET),
]

LUA = """
function request()
  return wrk.format("GET", "/$table/item-" .. math.random(0, $rows - 1))
end
"""


def lua_for(variant: Variant) -> Path:
    body = LUA.replace("$table", variant.table).replace("$rows", str(ITEMS))
    path: Path = run.WORK_DIR / f"caching-{variant.table}.lua"
    path.write_text(run.LUA_PRELUDE + body)
    return path


async def _warm(port: int, count: int, concurrency: int = 32) -> list[str]:
    """GET every CachedItem once (each a miss: loaded from the source and stored)."""
    failures: list[str] = []
    ids = iter(range(count))
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits
    ) as client:

        async def worker() -> None:
            for i in ids:
                r = await client.get(f"/CachedItem/item-{i}")
                if r.status_code != 200:
                    failures.append(f"GET /CachedItem/item-{i} -> {r.status_code} {r.text[:120]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


def check(port: int) -> list[str]:
    """Both tables answer the seeded record, and a 404 for an unknown id; the cache's second
    read of a record is the first one (a hit: same ETag)."""
    problems = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        plain = client.get("/Item/item-42")
        cached = client.get("/CachedItem/item-42")
        again = client.get("/CachedItem/item-42")
        if plain.status_code != 200 or cached.status_code != 200 or plain.json() != cached.json():
            problems.append(f"item-42: plain {plain.text[:120]}, cached {cached.text[:120]}")
        if cached.headers.get("etag") != again.headers.get("etag"):
            problems.append("a second read of a cached record is not the same version (a miss?)")
        for table in ("Item", "CachedItem"):
            missing = client.get(f"/{table}/no-such-item")
            if missing.status_code != 404:
                problems.append(f"GET /{table}/no-such-item -> {missing.status_code}")
    return problems


def prepare(opts: argparse.Namespace) -> tuple[Any, str, list[str]]:
    """A fresh database seeded (plain) and warmed (cache), then ANALYZE."""
    url: str = run._fresh_sqlite("charter_cache")
    app = run.AppDef("charter_cache", "charter_cache_app:app", "Charter, plain and cached")
    port = run.free_port()
    with run.server(opts, app, url, port, 1, "-seed"):
        failures = run.seed(port, ITEMS) + asyncio.run(_warm(port, ITEMS))
        if failures:
            sys.exit("seeding failed: " + "; ".join(failures[:5]))
    conn = sqlite3.connect(url.removeprefix("sqlite://"), timeout=30)
    try:
        conn.execute("ANALYZE")
    finally:
        conn.close()
    print(f"   seeded {ITEMS:,} Items, warmed {ITEMS:,} CachedItems; ANALYZE done", flush=True)
    return app, url, []


def measure(
    opts: argparse.Namespace, app: Any, url: str, results: dict[str, list[Any]]
) -> list[str]:
    port = run.free_port()
    with run.server(opts, app, url, port, 1, "") as pid:
        problems = check(port)
        for round_ in range(opts.rounds):
            order = VARIANTS if round_ % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                scenario = run.Scenario("get", variant.name, lua="")
                cpu = lambda: run.server_cpu_seconds(pid, None)  # noqa: E731
                script = lua_for(variant)
                result = run.measure(opts, app, scenario, port, cpu, script, f"-r{round_}")
                results.setdefault(variant.name, []).append(result)
                note = f"  ! {result.problem}" if result.problem else ""
                print(
                    f"   round {round_ + 1} get {variant.name:<12} {result.rps:>9.0f} req/s"
                    f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms{note}",
                    flush=True,
                )
    return problems


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def report(
    opts: argparse.Namespace,
    info: dict[str, str],
    results: dict[str, list[Any]],
    problems: list[str],
) -> str:
    rows, targets = [], []
    for variant in VARIANTS:
        runs = results.get(variant.name, [])
        bases = results.get(variant.baseline, []) if variant.baseline else []
        if not runs:
            rows.append(["get", variant.name, "", "not run", "", "", "", "", ""])
            continue
        for round_, result in enumerate(runs):
            base = bases[round_] if round_ < len(bases) else None
            ratio = result.rps / base.rps if base is not None and base.rps > 0 else None
            flag = ("" if result.ok else " (!)") + (" (~)" if result.noisy else "")
            rows.append(
                [
                    "get",
                    variant.name,
                    str(round_ + 1),
                    f"{result.rps:,.0f}{flag}",
                    f"{result.p50_ms:.2f}",
                    f"{result.p99_ms:.2f}",
                    str(result.non2xx + result.socket_errors),
                    f"{result.others:.2f}",
                    f"{ratio:.2f}x" if ratio is not None else "-",
                ]
            )
        if variant.target is None:
            continue
        mean, base_mean = _mean([r.rps for r in runs]), _mean([r.rps for r in bases])
        ratio = mean / base_mean if base_mean > 0 else None
        if ratio is None:
            status = "not measured"
        else:
            status = "met" if ratio >= variant.target else "not met"
            every = runs + bases
            if not all(r.ok for r in every):
                status += " (figures not to be trusted)"
            elif any(r.noisy for r in every):
                status += " (noisy)"
            if info["dirty"]:
                status += " (dirty tree)"
        shown = f"{ratio:.2f}x" if ratio is not None else "n/a"
        label = f"get: {variant.name} >= {variant.target}x {variant.baseline} (mean req/s)"
        targets.append([label, shown, status])
    headers = [
        "scenario", "variant", "round", "req/s", "p50 ms", "p99 ms", "errors", "others", "ratio",
    ]  # fmt: skip
    kind = "caching run" + (" (quick, not for comparison)" if opts.quick else "")
    if info["dirty"]:
        kind = f"**FROM A DIRTY TREE, NOT A RESULT** ({kind})"
    lines = [
        f"## {info['date']} — {kind}",
        "",
        f"- machine: `{info['machine']}`; CPU: {info['cpu']}",
        f"- Python: {info['python']}; SQLite {info['sqlite']}; {info['wrk']}",
        f"- tree: commit {info['commit']}, {info['tree']}",
        f"- load: wrk -t{opts.threads} -c{opts.connections} -d{opts.duration:g}s (after a"
        f" {opts.warmup:g} s warm-up), server on CPU {opts.server_cpu}, wrk on CPU"
        f" {opts.client_cpu}; {opts.rounds} rounds in alternating order; bench/caching.py,"
        " app bench/apps/charter_cache_app.py",
        f"- data: {ITEMS:,} Items and {ITEMS:,} CachedItems (the same rows; the cache warmed by"
        " a GET of each), one SQLite file, ANALYZE",
        "- ratio: the cache hit's req/s over the plain table's, same server, same round",
        "",
        run.markdown_table(headers, rows),
        "",
        "Targets:",
        "",
        run.markdown_table(["target", "measured", "status"], targets),
        "",
    ]
    if problems:
        lines += ["Problems:", "", *(f"- {p}" for p in problems), ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=None, help="seconds per run (default 10)")
    p.add_argument("--warmup", type=float, default=None, help="unmeasured seconds before each")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2, help="rounds of both variants (default 2)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s runs")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="don't append to bench/RESULTS.md")
    p.add_argument("--allow-dirty", action="store_true", help="record from a dirty tree, marked")
    opts = p.parse_args(argv)
    if opts.duration is None:
        opts.duration = 2.0 if opts.quick else 10.0
    if opts.warmup is None:
        opts.warmup = 1.0 if opts.quick else 2.0
    opts.backends, opts.apps = [], []  # what run.machine_info reads
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        opts.server_cpu = opts.client_cpu = None
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)

    def bench() -> tuple[dict[str, list[Any]], list[str]]:
        print("== caching: seeding and warming", flush=True)
        app, url, problems = prepare(opts)
        results: dict[str, list[Any]] = {}
        print("== caching: get", flush=True)
        problems += measure(opts, app, url, results)
        return results, problems

    code: int = run.side_by_side(
        opts, bench, report, lambda results: [r for runs in results.values() for r in runs]
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
