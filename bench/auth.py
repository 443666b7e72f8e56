"""What sign-in and row rules cost (issue 11), measured side by side in one run.

One SQLite database, seeded once (10,000 Items, 100,000 Docs owned by u0..u99, 1% each,
ANALYZE after seeding), served by bench/apps/charter_auth_app.py under one uvicorn worker
pinned to one core, loaded by wrk pinned to the other, exactly as bench/run.py does:

- ``get``: GET /Item/{id} with auth off (the baseline), with a Bearer access token, and with
  HTTP Basic (the verified credential cached, so Argon2 is paid once, not per request).
- ``list-rule``: GET /Doc/?limit(10) as user u7, whose row rule (``owner == user``) selects 1%
  of the rows, against the same query written by hand (GET /Doc/?owner=u7&limit(10)) by a super
  user (no rule applies), both with a Bearer token; and, for reference, the hand-written query
  with auth off.

    python bench/auth.py [--quick] [--duration 10] [--docs 100000] [--no-write]

Targets (issue 11): Bearer >= 0.9x auth off, Basic >= 0.8x auth off, the rule >= 0.8x the
hand-written query. Results are appended to bench/RESULTS.md (from a clean tree only).
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import os
import shutil
import sqlite3
import subprocess
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
PASSWORD = "bench-reader-password"  # bench/apps/charter_auth_app.py READER_PASSWORD
ITEMS = 10_000


@dataclass(frozen=True)
class Variant:
    """One measured request shape: ``scenario`` groups the variants compared; ``baseline``
    names the variant of the same scenario that ratios are taken against."""

    scenario: str
    name: str
    auth: bool  # served with auth on
    path: str  # a Lua expression for the path
    user: str | None = None  # Bearer token of this user
    basic: str | None = None  # Basic credential of this user
    baseline: str | None = None
    target: float | None = None  # this variant's req/s over the baseline's must be >= this


VARIANTS = [
    Variant("get", "auth off", False, '"/Item/item-" .. math.random(0, $rows - 1)'),
    Variant(
        "get",
        "Bearer",
        True,
        '"/Item/item-" .. math.random(0, $rows - 1)',
        user="reader",
        baseline="auth off",
        target=0.9,
    ),
    Variant(
        "get",
        "Basic (cached)",
        True,
        '"/Item/item-" .. math.random(0, $rows - 1)',
        basic="reader",
        baseline="auth off",
        target=0.8,
    ),
    Variant("list-rule", "by hand, auth off", False, '"/Doc/?owner=u7&limit(10)"'),
    Variant("list-rule", "by hand, super user", True, '"/Doc/?owner=u7&limit(10)"', user="root"),
    Variant(
        "list-rule",
        "row rule, user u7",
        True,
        '"/Doc/?limit(10)"',
        user="u7",
        baseline="by hand, super user",
        target=0.8,
    ),
]

LUA = """
local headers = $headers
function request()
  return wrk.format("GET", $path, headers)
end
"""


def lua_for(variant: Variant, authorization: str | None) -> Path:
    headers = "{}" if authorization is None else '{["Authorization"] = "' + authorization + '"}'
    body = LUA.replace("$headers", headers).replace("$path", variant.path)
    body = body.replace("$rows", str(ITEMS))
    safe = "".join(c if c.isalnum() else "-" for c in f"{variant.scenario}-{variant.name}")
    path: Path = run.WORK_DIR / f"auth-{safe}.lua"
    path.write_text(run.LUA_PRELUDE + body)
    return path


def login(port: int, username: str) -> str:
    r = httpx.post(
        f"http://127.0.0.1:{port}/auth/login",
        json={"username": username, "password": PASSWORD},
        timeout=30,
    )
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


def basic(username: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()


def check(port: int, authorization: dict[str, str | None]) -> list[str]:
    """The variants answer what they claim before any load: 200s, and the rule's rows are the
    hand-written query's rows."""
    problems = []
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        for variant in VARIANTS:
            if variant.auth is not (authorization.get("_mode") == "on"):
                continue
            header = authorization.get(variant.name)
            path = variant.path.strip('"').split('"')[0]
            path = path + "7" if path.endswith("item-") else path
            r = client.get(path, headers={"authorization": header} if header else {})
            if r.status_code != 200:
                problems.append(f"{variant.name}: GET {path} -> {r.status_code} {r.text[:120]}")
        if authorization.get("_mode") == "on":
            rule = client.get("/Doc/?limit(10)", headers=_h(authorization, "row rule, user u7"))
            hand = client.get(
                "/Doc/?owner=u7&limit(10)", headers=_h(authorization, "by hand, super user")
            )
            owners = {row["owner"] for row in rule.json()} if rule.status_code == 200 else set()
            if owners != {"u7"} or len(rule.json()) != 10:
                problems.append(f"the row rule answered owners {owners}, not 10 rows of u7")
            if rule.status_code == 200 and hand.status_code == 200 and rule.json() != hand.json():
                problems.append("the row rule and the hand-written query answer different rows")
    return problems


def _h(authorization: dict[str, str | None], name: str) -> dict[str, str]:
    value = authorization.get(name)
    return {"authorization": value} if value else {}


def setup_database(opts: argparse.Namespace) -> str:
    """A fresh database: Items seeded over HTTP by an auth-off server, then users and Docs
    through the Table API, then ANALYZE."""
    url: str = run._fresh_sqlite("charter_auth")
    app = run.AppDef("charter_auth", "charter_auth_app:app", "Charter, auth off (seeding)")
    os.environ["BENCH_AUTH"] = "off"
    port = run.free_port()
    with run.server(opts, app, url, port, 1, "-seed"):
        failures = run.seed(port, ITEMS)
        if failures:
            sys.exit("seeding failed: " + "; ".join(failures))
    env = dict(os.environ, BENCH_DB=url, BENCH_DOCS=str(opts.docs), BENCH_AUTH="on")
    subprocess.run(
        [sys.executable, str(run.APPS_DIR / "charter_auth_app.py"), "setup"],
        cwd=run.APPS_DIR,
        env=env,
        check=True,
    )
    path = url.removeprefix("sqlite://")
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("ANALYZE")
    finally:
        conn.close()
    print(f"   seeded {ITEMS:,} Items and {opts.docs:,} Docs; ANALYZE done", flush=True)
    return url


def measure_mode(
    opts: argparse.Namespace, url: str, auth: bool, results: dict[tuple[str, str], Any]
) -> list[str]:
    """Start the app with auth on or off on the seeded database and measure its variants."""
    os.environ["BENCH_AUTH"] = "on" if auth else "off"
    label = "on" if auth else "off"
    app = run.AppDef(f"charter_auth_{label}", "charter_auth_app:app", f"Charter, auth {label}")
    port = run.free_port()
    problems: list[str] = []
    with run.server(opts, app, url, port, 1, "") as pid:
        authorization: dict[str, str | None] = {"_mode": label}
        for variant in VARIANTS:
            if variant.auth is not auth:
                continue
            if variant.user:
                authorization[variant.name] = "Bearer " + login(port, variant.user)
            elif variant.basic:
                authorization[variant.name] = basic(variant.basic)
        problems += check(port, authorization)
        for variant in VARIANTS:
            if variant.auth is not auth:
                continue
            scenario = run.Scenario(f"{variant.scenario}", variant.name, lua="")
            script = lua_for(variant, authorization.get(variant.name))
            cpu = lambda: run.server_cpu_seconds(pid, None)  # noqa: E731
            result = run.measure(opts, app, scenario, port, cpu, script, f"-{label}")
            results[(variant.scenario, variant.name)] = result
            note = f"  ! {result.problem}" if result.problem else ""
            print(
                f"   {variant.scenario:<9} {variant.name:<22} {result.rps:>9.0f} req/s"
                f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms{note}",
                flush=True,
            )
    return problems


def report(
    opts: argparse.Namespace,
    info: dict[str, str],
    results: dict[tuple[str, str], Any],
    problems: list[str],
) -> str:
    rows, targets = [], []
    for variant in VARIANTS:
        result = results.get((variant.scenario, variant.name))
        base = results.get((variant.scenario, variant.baseline)) if variant.baseline else None
        if result is None:
            rows.append([variant.scenario, variant.name, "not run", "", "", "", "", ""])
            continue
        ratio = result.rps / base.rps if base is not None and base.rps > 0 else None
        flag = ("" if result.ok else " (!)") + (" (~)" if result.noisy else "")
        rows.append(
            [
                variant.scenario,
                variant.name,
                f"{result.rps:,.0f}{flag}",
                f"{result.p50_ms:.2f}",
                f"{result.p99_ms:.2f}",
                str(result.non2xx + result.socket_errors),
                f"{result.others:.2f}",
                f"{ratio:.2f}x" if ratio is not None else "-",
            ]
        )
        if variant.target is not None:
            if ratio is None:
                status = "not measured"
            else:
                status = "met" if ratio >= variant.target else "not met"
                if not result.ok or (base is not None and not base.ok):
                    status += " (figures not to be trusted)"
                elif result.noisy or (base is not None and base.noisy):
                    status += " (noisy)"
                if info["dirty"]:
                    status += " (dirty tree)"
            shown = f"{ratio:.2f}x" if ratio is not None else "n/a"
            label = f"{variant.scenario}: {variant.name} >= {variant.target}x {variant.baseline}"
            targets.append([label, shown, status])
    headers = ["scenario", "variant", "req/s", "p50 ms", "p99 ms", "errors", "others", "ratio"]
    kind = "auth run" + (" (quick, not for comparison)" if opts.quick else "")
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
        f" {opts.client_cpu}; bench/auth.py, app bench/apps/charter_auth_app.py",
        f"- data: {ITEMS:,} Items, {opts.docs:,} Docs (owners u0..u99), one SQLite file, ANALYZE",
        "- ratio: this variant's req/s over its baseline's (auth off; the hand-written query)",
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
    p.add_argument("--docs", type=int, default=100_000, help="Doc rows (default 100,000)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s runs, 10,000 Docs")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="don't append to bench/RESULTS.md")
    p.add_argument("--allow-dirty", action="store_true", help="record from a dirty tree, marked")
    opts = p.parse_args(argv)
    if opts.duration is None:
        opts.duration = 2.0 if opts.quick else 10.0
    if opts.warmup is None:
        opts.warmup = 1.0 if opts.quick else 2.0
    if opts.quick and opts.docs == 100_000:
        opts.docs = 10_000
    opts.backends, opts.apps = [], []  # what run.machine_info reads
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        opts.server_cpu = opts.client_cpu = None
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)

    def bench() -> tuple[dict[tuple[str, str], Any], list[str]]:
        print("== auth: seeding", flush=True)
        url = setup_database(opts)
        results: dict[tuple[str, str], Any] = {}
        problems: list[str] = []
        for auth in (False, True):
            print(f"== auth {'on' if auth else 'off'}", flush=True)
            problems += measure_mode(opts, url, auth, results)
        return results, problems

    code: int = run.side_by_side(opts, bench, report, dict.values)
    return code


if __name__ == "__main__":
    sys.exit(main())
