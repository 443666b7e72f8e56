"""HarperDB 4.7 as a benchmark peer: one worker thread on loopback, serving the ``Item`` table
over HarperDB's REST interface and its URL query language.

    install(workdir)                     npm install harperdb@4.7 into workdir (idempotent)
    handle = start(workdir, http_port, ops_port, cpu=0)
    load(handle, rows)                   bulk upsert through the operations API
    GET http://127.0.0.1:{http_port}/Item/?category=c3&price=gt=20&sort(-price)&limit(10)
    stop(handle)

Every ``start`` installs a fresh HarperDB root under ``workdir/run`` non-interactively (from
environment variables), copies the component in ``bench/harperdb/app`` next to it and runs
``harperdb run <component>`` in the foreground (under ``taskset -c CPU`` when asked). REST needs
no credentials from loopback (``authentication.authorizeLocal``); the operations API is called
with basic auth (ADMIN_USER / ADMIN_PASSWORD). See bench/harperdb/README.md.

Smoke test (start, load 100,000 rows, query, time, check against Python, stop):

    python bench/harperdb/peer.py [--rows 100000] [--requests 200] [--cpu 0]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import httpx

HARPERDB_SPEC = "harperdb@4.7"
HARPERDB_MAJOR_MINOR = "4.7."
HERE = Path(__file__).resolve().parent
APP_DIR = HERE / "app"  # the component: config.yaml + schema.graphql
REALTIME_APP_DIR = HERE / "realtime_app"  # bench/realtime.py's component: the Tick table
DEFAULT_WORKDIR = HERE.parent / ".work" / "harperdb"
DATABASE = "data"  # where HarperDB puts tables declared by a component's schema
TABLE = "Item"
ADMIN_USER = "bench"
ADMIN_PASSWORD = "charter-bench"
HOST = "127.0.0.1"
NPM_TIMEOUT = 900.0
READY_TIMEOUT = 120.0
BATCH = 5_000


class HarperDBUnavailable(RuntimeError):
    """HarperDB could not be installed or started; the message says why."""


# --------------------------------------------------------------------------------------------
# Install
# --------------------------------------------------------------------------------------------


def _installed_version(workdir: Path) -> str | None:
    try:
        meta = json.loads((workdir / "node_modules/harperdb/package.json").read_text())
    except (OSError, ValueError):
        return None
    version = meta.get("version")
    return version if isinstance(version, str) else None


def binary(workdir: Path) -> Path:
    return workdir / "node_modules" / ".bin" / "harperdb"


def install(workdir: Path) -> Path:
    """``npm install harperdb@4.7`` into ``workdir`` unless a 4.7.x is already there; returns
    the path of the ``harperdb`` executable. Raises HarperDBUnavailable when node or npm is
    missing or the install fails."""
    workdir = workdir.resolve()
    exe = binary(workdir)
    version = _installed_version(workdir)
    if version and version.startswith(HARPERDB_MAJOR_MINOR) and exe.exists():
        return exe
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        raise HarperDBUnavailable("HarperDB needs node and npm on PATH; not found")
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = workdir / "package.json"
    if not manifest.exists():  # so npm installs here and not into some parent folder
        manifest.write_text(
            json.dumps({"name": "charter-bench-harperdb", "private": True}, indent=2) + "\n"
        )
    argv = [npm, "install", HARPERDB_SPEC, "--no-audit", "--no-fund", "--loglevel=error"]
    log_path = workdir / "npm-install.log"
    try:
        with log_path.open("w") as log:
            proc = subprocess.run(
                argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, timeout=NPM_TIMEOUT
            )
    except subprocess.TimeoutExpired as exc:
        raise HarperDBUnavailable(
            f"npm install {HARPERDB_SPEC} took over {NPM_TIMEOUT:.0f} s"
        ) from exc
    except OSError as exc:
        raise HarperDBUnavailable(f"could not run npm: {exc}") from exc
    if proc.returncode != 0:
        raise HarperDBUnavailable(
            f"npm install {HARPERDB_SPEC} failed (exit {proc.returncode}): {_tail(log_path, 5)}"
        )
    version = _installed_version(workdir)
    if not (version and version.startswith(HARPERDB_MAJOR_MINOR) and exe.exists()):
        raise HarperDBUnavailable(
            f"npm install {HARPERDB_SPEC} left no harperdb 4.7 binary (found {version})"
        )
    return exe


# --------------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------------


@dataclass
class HarperDB:
    """A running HarperDB: its process, where it keeps things and how to reach it."""

    proc: subprocess.Popen[bytes]
    http_port: int
    ops_port: int
    root: Path  # HarperDB's root path: config, database, log
    app: Path  # the component folder it runs
    log_path: Path  # its stdout and stderr
    version: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The node process (taskset execs it), for CPU accounting."""
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def ops_url(self) -> str:
        return f"http://{HOST}:{self.ops_port}"

    def operation(self, body: dict[str, Any], timeout: float = 120.0) -> Any:
        """One operations API call, with basic auth; raises on a non-2xx answer."""
        resp = httpx.post(
            self.ops_url, json=body, auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=timeout
        )
        if resp.status_code >= 300:
            raise RuntimeError(f"{body.get('operation')}: HTTP {resp.status_code} {resp.text}")
        return resp.json()


def harperdb_env(root: Path, home: Path, http_port: int, ops_port: int) -> dict[str, str]:
    """What ``harperdb run`` reads to install a fresh root without asking, and to configure it.
    Each name is a config path in upper case with ``_`` for the dots (HTTP_PORT is
    http.port); a port may be ``host:port``, which is how the listeners stay on loopback."""
    settings = {
        "TC_AGREEMENT": "yes",
        "ROOTPATH": str(root),
        "HDB_ADMIN_USERNAME": ADMIN_USER,
        "HDB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "THREADS_COUNT": "1",
        "HTTP_PORT": f"{HOST}:{http_port}",
        "HTTP_SECUREPORT": "null",
        "OPERATIONSAPI_NETWORK_PORT": f"{HOST}:{ops_port}",
        "OPERATIONSAPI_NETWORK_SECUREPORT": "null",
        "AUTHENTICATION_AUTHORIZELOCAL": "true",  # loopback requests act as the super user
        "LOGGING_LEVEL": "warn",
        "LOGGING_STDSTREAMS": "false",
        "MQTT_NETWORK_PORT": "null",  # no MQTT listeners (1883/8883 clash and are unused)
        "MQTT_NETWORK_SECUREPORT": "null",
        "REPLICATION_SECUREPORT": "null",  # no replication listener on 9933
        "LOCALSTUDIO_ENABLED": "false",
    }
    env = {k: v for k, v in os.environ.items() if k not in settings}
    env.update(settings)
    env["HOME"] = str(home)  # HarperDB keeps ~/.harperdb/hdb_boot_properties.file; isolate it
    return env


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def start(
    workdir: Path,
    http_port: int,
    ops_port: int,
    cpu: int | None = None,
    app_dir: Path = APP_DIR,
    table: str = TABLE,
) -> HarperDB:
    """Install HarperDB if needed, lay out a fresh root under ``workdir/run`` and run it with
    the component in ``app_dir``; returns once ``GET /<table>/`` answers 200 (``table``: one
    the component declares, ``Item`` for ``app/``, ``Tick`` for ``realtime_app/``)."""
    workdir = workdir.resolve()
    for port in (http_port, ops_port):
        _check_free(port)
    t0 = time.monotonic()
    exe = install(workdir)
    installed = time.monotonic()
    run_dir = workdir / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    root, home, app = run_dir / "root", run_dir / "home", run_dir / "app"
    home.mkdir(parents=True)
    # HarperDB writes node_modules/harperdb into the component folder: run a copy.
    shutil.copytree(app_dir, app, ignore=shutil.ignore_patterns("node_modules"))
    log_path = run_dir / "harperdb.log"
    argv = pinned(cpu, [str(exe), "run", str(app)])
    with log_path.open("wb") as log:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=run_dir,
                env=harperdb_env(root, home, http_port, ops_port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches everything
            )
        except OSError as exc:  # no taskset, say
            raise HarperDBUnavailable(f"could not run {argv[0]}: {exc}") from exc
    handle = HarperDB(
        proc, http_port, ops_port, root, app, log_path, _installed_version(workdir) or "?"
    )
    try:
        _wait_ready(handle, table)
    except BaseException:
        stop(handle)
        raise
    handle.timings = {"install_s": installed - t0, "start_s": time.monotonic() - installed}
    return handle


def _check_free(port: int) -> None:
    """HarperDB only logs a port it cannot bind and carries on: refuse up front instead."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
        try:
            s.bind((HOST, port))
        except OSError as exc:
            raise HarperDBUnavailable(f"port {HOST}:{port} is taken ({exc})") from exc


def _wait_ready(handle: HarperDB, table: str = TABLE) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    probe = f"{handle.url}/{table}/?limit(1)"
    last = "no answer"
    while time.monotonic() < deadline:
        if handle.proc.poll() is not None:
            raise HarperDBUnavailable(
                f"harperdb exited with status {handle.proc.returncode}: {_tail(handle.log_path, 8)}"
            )
        try:
            resp = httpx.get(probe, timeout=2)
            if resp.status_code == 200:
                handle.operation({"operation": "describe_table", "table": table}, timeout=5)
                return
            last = f"HTTP {resp.status_code} {resp.text[:200]}"
        except (httpx.HTTPError, RuntimeError) as exc:
            last = str(exc) or type(exc).__name__
        time.sleep(0.2)
    raise HarperDBUnavailable(
        f"harperdb not ready after {READY_TIMEOUT:.0f} s ({last}): {_tail(handle.log_path, 8)}"
    )


def stop(handle: HarperDB, timeout: float = 20.0) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``timeout`` seconds."""
    proc = handle.proc
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
    _signal_group(proc.pid, signal.SIGKILL)  # stragglers in the group, if any


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def load(handle: HarperDB, rows: Iterable[dict[str, Any]], batch: int = BATCH) -> int:
    """Upsert ``rows`` into Item through the operations API, ``batch`` records a call, then
    wait until the table counts them all; returns how many were sent."""
    sent = 0
    auth = (ADMIN_USER, ADMIN_PASSWORD)
    with httpx.Client(base_url=handle.ops_url, auth=auth, timeout=300) as client:
        for records in _batches(rows, batch):
            body = {"operation": "upsert", "database": DATABASE, "table": TABLE}
            resp = client.post("/", json={**body, "records": records})
            if resp.status_code >= 300:
                raise RuntimeError(f"upsert: HTTP {resp.status_code} {resp.text[:500]}")
            sent += len(records)
        deadline = time.monotonic() + 60
        count = -1
        while time.monotonic() < deadline:
            resp = client.post("/", json={"operation": "describe_table", "table": TABLE})
            count = int(resp.json().get("record_count", -1)) if resp.status_code < 300 else -1
            if count >= sent:
                return sent
            time.sleep(0.2)
    raise RuntimeError(f"{TABLE} counts {count} records after loading {sent}")


def item(i: int) -> dict[str, Any]:
    """Row ``i`` of the smoke test's data set."""
    return {
        "id": f"item-{i}",
        "name": f"Item {i}",
        "category": f"c{i % 10}",
        "price": (i * 37) % 1000 + 0.5,
        "stock": i % 50,
        "tags": [f"t{i % 7}", f"t{i % 11}"],
    }


# --------------------------------------------------------------------------------------------
# Smoke test
# --------------------------------------------------------------------------------------------

QUERY = "/Item/?category=c3&price=gt=20&sort(-price)&limit(10)"


def expected(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What QUERY should match, before its limit: category c3, price > 20, price descending."""
    hits = [r for r in rows if r["category"] == "c3" and r["price"] > 20]
    return sorted(hits, key=lambda r: -r["price"])


def check(got: list[dict[str, Any]], rows: list[dict[str, Any]], limit: int = 10) -> list[str]:
    """Differences between QUERY's answer and the Python computation; ties on price may come
    in any order, so each answer must be a real row, and the prices must match in order."""
    want = expected(rows)
    by_id = {r["id"]: r for r in want}
    problems = []
    if len(got) != min(limit, len(want)):
        problems.append(f"{len(got)} rows, expected {min(limit, len(want))}")
    if [r.get("price") for r in got] != [r["price"] for r in want[:limit]]:
        problems.append(
            f"prices {[r.get('price') for r in got]} != {[r['price'] for r in want[:limit]]}"
        )
    for r in got:
        if by_id.get(r.get("id")) != r:
            problems.append(f"row {r!r} does not match any expected row")
    if len({r.get("id") for r in got}) != len(got):
        problems.append("duplicate ids")
    return problems


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def smoke(opts: argparse.Namespace) -> int:
    t0 = time.monotonic()
    exe = install(opts.workdir)
    print(f"installed: {exe} ({time.monotonic() - t0:.1f} s)")
    handle = start(opts.workdir, opts.http_port, opts.ops_port, cpu=opts.cpu)
    try:
        print(
            f"HarperDB {handle.version} pid {handle.pid} on {handle.url} (ops {handle.ops_url}),"
            f" started in {handle.timings['start_s']:.1f} s; root {handle.root}"
        )
        rows = [item(i) for i in range(opts.rows)]
        t = time.monotonic()
        load(handle, rows)
        load_s = time.monotonic() - t
        print(f"loaded {len(rows)} rows in {load_s:.1f} s ({len(rows) / load_s:,.0f} rows/s)")
        with httpx.Client(base_url=handle.url, timeout=30) as client:
            t = time.monotonic()
            resp = client.get(QUERY)
            first_ms = (time.monotonic() - t) * 1000
            resp.raise_for_status()
            got = resp.json()
            print(f"GET {QUERY} -> {resp.status_code}, {len(got)} rows ({first_ms:.1f} ms)")
            for r in got[:3]:
                print("  ", json.dumps(r))
            problems = check(got, rows)
            times = []
            for _ in range(opts.requests):
                t = time.perf_counter()
                r2 = client.get(QUERY)
                times.append((time.perf_counter() - t) * 1000)
                if r2.status_code != 200 or r2.json() != got:
                    problems.append(f"repeat answered {r2.status_code} with other rows")
                    break
        print(
            f"{len(times)} sequential requests: p50 {statistics.median(times):.2f} ms,"
            f" p90 {_percentile(times, 0.9):.2f} ms, max {max(times):.2f} ms,"
            f" mean {statistics.fmean(times):.2f} ms"
        )
        ties = [r["id"] for r in expected(rows) if r["price"] == got[0]["price"]] if got else []
        print(f"{len(ties)} rows tie at the top price; HarperDB returned {[r['id'] for r in got]}")
    finally:
        stop(handle)
    if problems:
        print("MISMATCH:\n  " + "\n  ".join(problems))
        return 1
    print("OK: answer matches the Python computation")
    return 0


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument("--http-port", type=int, default=19926)
    p.add_argument("--ops-port", type=int, default=19925)
    p.add_argument("--cpu", type=int, default=None, help="pin HarperDB with taskset -c CPU")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=200)
    opts = p.parse_args(argv)
    try:
        return smoke(opts)
    except HarperDBUnavailable as exc:
        print(f"HarperDB unavailable: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
