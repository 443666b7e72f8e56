"""A declarative sign-up against the same written by hand (issue 13), side by side in one run.

Nevr's three-step sign-up: a User, its Profile and, for a paid plan (every other request), a
Subscription, written in one transaction; a body validated first (422), a taken username a
409 that leaves nothing; 201 with the user, without its password.

- ``charter``: bench/apps/charter_signup_app.py, one ``map_route`` (atomic) declaring the three
  steps, a msgspec Struct for the body.
- ``fastapi``: bench/apps/fastapi_signup_app.py, the same by hand: a strict pydantic body, a
  ``def`` endpoint in FastAPI's thread pool, sqlite3 with bench/apps/benchdb.py's settings
  (WAL, synchronous=NORMAL, a connection per thread, one writer at a time), the inserts in one
  ``BEGIN IMMEDIATE`` ... ``COMMIT``.

Scenarios (both apps, each on its own fresh SQLite file, seeded through its own API with
--users sign-ups, the peer's file ANALYZEd after seeding; Charter keeps its own statistics, as
bench/run.py says):

- ``signup``: the main one. Passwords are **not hashed** on either side: Argon2id costs tens of
  milliseconds of CPU by design, the same on both sides, and would hide the frameworks.
- ``signup-argon2``: the same with hashing on both sides: argon2-cffi's ``PasswordHasher()``
  defaults (Argon2id, t=3, m=64 MiB, p=4), Charter through ``charter.auth.hash_password``
  (on a worker thread), FastAPI in its thread pool. Fewer connections (--hash-connections):
  each hash holds 64 MiB.

One uvicorn worker pinned to one core, wrk pinned to the other, exactly as bench/run.py does
(its servers, wrk driver, CPU accounting and noise flags are reused). Target: charter >= 2x
fastapi in ``signup``.

    python bench/signup.py [--quick] [--duration 10] [--users 10000] [--no-write]
"""

from __future__ import annotations

import argparse
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

APPS = [
    run.AppDef("charter", "charter_signup_app:app", "Charter: one map_route, three steps"),
    run.AppDef("fastapi", "fastapi_signup_app:app", "FastAPI + pydantic + sqlite3 by hand"),
]
TARGET = 2.0  # charter req/s over fastapi's, in the main scenario


@dataclass(frozen=True)
class Variant:
    name: str
    hash: bool
    title: str


VARIANTS = [
    Variant("signup", False, "POST /sign-up, passwords not hashed (the main scenario)"),
    Variant("signup-argon2", True, "POST /sign-up, Argon2id on both sides"),
]

# A username no earlier run used: the second of the run (a warm-up and its measured run start
# at least a second apart), the wrk thread, a counter. Every other sign-up is a paid plan.
LUA = """
local n = 0
local stamp
local headers = {["Content-Type"] = "application/json"}
function init_scenario()
  stamp = os.time()
end
function request()
  n = n + 1
  local plan = (n % 2 == 0) and "pro" or "free"
  local body = string.format(
    '{"username":"u%d_%d_%d","email":"U%d_%d_%d@example.com","password":"correct horse %d",' ..
    '"name":"User %d","plan":"%s"}', stamp, tid, n, stamp, tid, n, n, n, plan)
  return wrk.format("POST", "/sign-up", headers, body)
end
"""


def body(name: str, plan: str = "pro") -> dict[str, Any]:
    return {
        "username": name,
        "email": f"{name}@example.com",
        "password": "correct horse battery",
        "name": name.title(),
        "plan": plan,
    }


def seed(port: int, users: int) -> list[str]:
    """``users`` sign-ups through the app's own route (half on a paid plan)."""
    failures = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for i in range(users):
            answer = client.post("/sign-up", json=body(f"seed{i}", "pro" if i % 2 else "free"))
            if answer.status_code != 201:
                failures.append(f"seed{i}: {answer.status_code} {answer.text[:100]}")
                if len(failures) > 5:
                    break
    return failures


def check(port: int) -> list[str]:
    """Both apps answer alike before any load: 201 without the password, 409 for a taken name,
    422 for a bad body."""
    problems = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        created = client.post("/sign-up", json=body("checker"))
        if created.status_code != 201:
            problems.append(f"sign-up: {created.status_code} {created.text[:120]}")
        elif set(created.json()) != {"id", "email", "created"}:
            problems.append(f"sign-up answered {sorted(created.json())}")
        taken = client.post("/sign-up", json=body("checker"))
        if taken.status_code != 409:
            problems.append(f"a taken name: {taken.status_code}, not 409")
        bad = client.post("/sign-up", json={**body("x"), "password": "short"})
        if bad.status_code != 422:
            problems.append(f"a short password: {bad.status_code}, not 422")
    return problems


def analyze(url: str) -> None:
    conn = sqlite3.connect(url.removeprefix("sqlite://"), timeout=30)
    try:
        conn.execute("ANALYZE")
    finally:
        conn.close()


def counts(url: str, app: str) -> tuple[int, int, int]:
    """Users, profiles and subscriptions stored (each app's own tables)."""
    path = url.removeprefix("sqlite://")
    names = ("User", "Profile", "Subscription") if app == "charter" else (
        "users", "profiles", "subscriptions")  # fmt: skip
    conn = sqlite3.connect(path, timeout=30)
    try:
        found = [conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names]
    finally:
        conn.close()
    return found[0], found[1], found[2]


def bench_app(opts: argparse.Namespace, app: Any, results: dict[tuple[str, str], Any]) -> list[str]:
    url = run._fresh_sqlite(f"signup_{app.name}")
    problems: list[str] = []
    for variant in VARIANTS:
        os.environ["BENCH_HASH"] = "on" if variant.hash else "off"
        port = run.free_port()
        with run.server(opts, app, url, port, 1, f"-{variant.name}") as pid:
            if not variant.hash:
                failures = seed(port, opts.users)
                if failures:
                    sys.exit(f"seeding {app.name} failed: " + "; ".join(failures))
                if app.name != "charter":  # Charter keeps its own statistics
                    analyze(url)
                problems += [f"{app.name}: {p}" for p in check(port)]
            conns = opts.hash_connections if variant.hash else opts.connections
            scenario = run.Scenario(
                variant.name,
                variant.title,
                lua="",
                expect_status=201,
                writes=True,
                connections=conns,
                timeout=30 if variant.hash else None,
            )
            script = run.WORK_DIR / f"signup-{variant.name}.lua"
            script.write_text(run.LUA_PRELUDE + LUA)
            readings: list[float] = []

            def cpu(pid: int = pid, readings: list[float] = readings) -> float:
                value: float = run.server_cpu_seconds(pid, None)
                readings.append(value)
                return value

            result = run.measure(opts, app, scenario, port, cpu, script, "-signup")
            # measure() reads the server's CPU last just before and just after the measured
            # run: its CPU per request does not depend on what else the machine was doing.
            if len(readings) >= 2 and result.requests:
                result.cpu_us = (readings[-1] - readings[-2]) / result.requests * 1e6
            results[(variant.name, app.name)] = result
            note = f"  ! {result.problem}" if result.problem else ""
            print(
                f"   {variant.name:<14} {app.name:<8} {result.rps:>8.0f} req/s"
                f"  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:8.2f} ms"
                f"  {_cpu(result)} us CPU/req{note}",
                flush=True,
            )
    users, profiles, subscriptions = counts(url, app.name)
    if users != profiles:
        problems.append(f"{app.name}: {users} users but {profiles} profiles")
    print(f"   {app.name}: {users:,} users, {profiles:,} profiles, {subscriptions:,} subs")
    return problems


def _cpu(result: Any) -> str:
    value = getattr(result, "cpu_us", None)
    return f"{value:.0f}" if value else "-"


def report(
    opts: argparse.Namespace,
    info: dict[str, str],
    results: dict[tuple[str, str], Any],
    problems: list[str],
) -> str:
    rows, targets = [], []
    for variant in VARIANTS:
        base = results.get((variant.name, "fastapi"))
        for app in APPS:
            result = results.get((variant.name, app.name))
            if result is None:
                rows.append([variant.name, app.name, "not run", "", "", "", "", ""])
                continue
            ratio = result.rps / base.rps if base is not None and base.rps > 0 else None
            mine, theirs = getattr(result, "cpu_us", None), getattr(base, "cpu_us", None)
            cpu_ratio = theirs / mine if mine and theirs else None
            flag = ("" if result.ok else " (!)") + (" (~)" if result.noisy else "")
            rows.append(
                [
                    variant.name,
                    app.name,
                    f"{result.rps:,.0f}{flag}",
                    f"{result.p50_ms:.2f}",
                    f"{result.p99_ms:.2f}",
                    _cpu(result),
                    str(result.non2xx + result.socket_errors),
                    f"{result.others:.2f}",
                    f"{ratio:.2f}x" if ratio is not None else "-",
                    f"{cpu_ratio:.2f}x" if cpu_ratio is not None else "-",
                ]
            )
    charter = results.get(("signup", "charter"))
    fastapi = results.get(("signup", "fastapi"))
    if charter is not None and fastapi is not None and fastapi.rps > 0:
        measured = charter.rps / fastapi.rps
        status = "met" if measured >= TARGET else "not met"
        if not (charter.ok and fastapi.ok):
            status += " (figures not to be trusted)"
        elif charter.noisy or fastapi.noisy:
            status += " (noisy)"
        if info["dirty"]:
            status += " (dirty tree)"
        targets.append([f"signup: charter >= {TARGET}x fastapi", f"{measured:.2f}x", status])
    headers = [
        "scenario", "app", "req/s", "p50 ms", "p99 ms", "server CPU us/req", "errors", "others",
        "req/s vs fastapi", "CPU/req: fastapi over this",
    ]  # fmt: skip
    kind = "sign-up run" + (" (quick, not for comparison)" if opts.quick else "")
    if info["dirty"]:
        kind = f"**FROM A DIRTY TREE, NOT A RESULT** ({kind})"
    lines = [
        f"## {info['date']} — {kind}",
        "",
        f"- machine: `{info['machine']}`; CPU: {info['cpu']}",
        f"- Python: {info['python']}; SQLite {info['sqlite']}; {info['wrk']}",
        f"- tree: commit {info['commit']}, {info['tree']}",
        f"- load: wrk -t{opts.threads} -c{opts.connections} (signup-argon2:"
        f" -c{opts.hash_connections}) -d{opts.duration:g}s (after a {opts.warmup:g} s warm-up),"
        f" server on CPU {opts.server_cpu}, wrk on CPU {opts.client_cpu}; bench/signup.py",
        f"- data: {opts.users:,} sign-ups seeded per app (half paid), its own SQLite file",
        "- design advantages, disclosed: Charter commits the requests of a moment together"
        " (group commit on one writer thread); it raises Python's first-generation GC"
        " threshold to 10,000 at start (`gc_threshold`; the FastAPI app keeps Python's 700:"
        " the same setting cut its CPU per request by ~7% in a side measurement);"
        " it keeps the writer's statement journals in memory (`temp_store = MEMORY`)",
        "- server CPU us/req: the server process's CPU time over the measured run divided by"
        " the requests wrk completed; on a shared machine it moves less than req/s does",
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
    p.add_argument("--hash-connections", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=int, default=5)
    p.add_argument("--users", type=int, default=10_000, help="sign-ups seeded per app")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s runs, 2,000 users")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="don't append to bench/RESULTS.md")
    p.add_argument("--allow-dirty", action="store_true", help="record from a dirty tree, marked")
    opts = p.parse_args(argv)
    if opts.duration is None:
        opts.duration = 2.0 if opts.quick else 10.0
    if opts.warmup is None:
        opts.warmup = 1.0 if opts.quick else 2.0
    if opts.quick and opts.users == 10_000:
        opts.users = 2_000
    opts.backends, opts.apps = [], []  # what run.machine_info reads
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        opts.server_cpu = opts.client_cpu = None
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)

    def bench() -> tuple[dict[tuple[str, str], Any], list[str]]:
        results: dict[tuple[str, str], Any] = {}
        problems: list[str] = []
        for app in APPS:
            print(f"== {app.name}: {app.description}", flush=True)
            problems += bench_app(opts, app, results)
        return results, problems

    code: int = run.side_by_side(opts, bench, report, dict.values)
    return code


if __name__ == "__main__":
    sys.exit(main())
