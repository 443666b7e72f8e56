"""What the encrypted RPC channel costs the server (issue 14 point 6), in-process.

Why in-process: the target is the server's time for a sealed call against a plain one; calling
the ASGI app directly (no socket, no client in the process's clock) measures exactly the
server's work: the request's dispatch, the opening (session keys, decryption, the counter
accepted in the session store) and the sealing. Every sealed body is made before the clock
starts, so the client's own encryption is not counted.

- ``plain``: ``POST /rpc/echo`` with a JSON body of about ``--payload`` bytes;
- ``sealed``: the same call through one channel session, counters 1, 2, 3...;
- ``handshake``: ``POST /rpc/_handshake`` (X25519, HKDF, the session stored): CPU per
  handshake and handshakes per CPU second.

CPU is the whole process's (``time.process_time``: the SQLite writer thread included); with
``--shared redis://...`` sessions live in Redis, whose own CPU is not counted. One SQLite file.

    .venv/bin/python bench/channel.py [--count 3000] [--payload 200] [--shared URL] [--no-write]

Target (issue 14): a sealed call <= 1.3x the plain call's server CPU. Without ``--no-write`` a
section is appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from charter import App, Service, rpc  # noqa: E402
from charter.channel import (  # noqa: E402
    CLIENT_TO_SERVER,
    KEY_NONCE_SIZE,
    MEDIA_TYPE,
    SERVER_TO_CLIENT,
    VERSION,
    b64decode,
    b64encode,
    derive_keys,
    open_frame,
    parse_frame,
    seal_frame,
    shared_secret,
    transcript_hash,
)

TARGET = 1.3


class Bench(Service):
    @rpc
    async def echo(self, value: Any) -> Any:
        return value


async def call(app: App, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    """One request to the ASGI app: its status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


class Session:
    """A client session made through the app, to seal the measured calls ahead of time."""

    def __init__(self, session: bytes, c2s: bytes, s2c: bytes) -> None:
        self.session, self.c2s, self.s2c = session, c2s, s2c

    @classmethod
    async def open(cls, app: App) -> Session:
        private = X25519PrivateKey.generate()
        public = private.public_key().public_bytes_raw()
        nonce = os.urandom(KEY_NONCE_SIZE)
        status, body = await call(app, "/rpc/_handshake", hello(public, nonce), "application/json")
        assert status == 200, body
        reply = msgspec.json.decode(body)
        server_key = b64decode(reply["public_key"], "public_key", 32)
        server_nonce = b64decode(reply["nonce"], "nonce", KEY_NONCE_SIZE)
        session = b64decode(reply["session"], "session", 16)
        transcript = transcript_hash(public, nonce, server_key, server_nonce, session)
        c2s, s2c = derive_keys(shared_secret(private, server_key), transcript)
        return cls(session, c2s, s2c)


def hello(public: bytes, nonce: bytes) -> bytes:
    return msgspec.json.encode(
        {"version": VERSION, "public_key": b64encode(public), "nonce": b64encode(nonce)}
    )


async def cpu_per(fn: Callable[[int], Awaitable[Any]], count: int) -> tuple[float, float]:
    """CPU and wall microseconds per call of ``fn(i)``, for i in 0..count-1."""
    wall, start = time.perf_counter(), time.process_time()
    for i in range(count):
        await fn(i)
    cpu = (time.process_time() - start) / count * 1e6
    return cpu, (time.perf_counter() - wall) / count * 1e6


async def measure(opts: argparse.Namespace) -> dict[str, tuple[float, float]]:
    folder = tempfile.mkdtemp(prefix="charter-channel-bench-")
    app = App(services=[Bench], database=f"sqlite:///{folder}/bench.db", shared=opts.shared)
    await app.startup()
    try:
        payload = msgspec.json.encode(["x" * max(1, opts.payload - 4)])
        path = "/rpc/echo"
        status, expected = await call(app, path, payload, "application/json")
        assert status == 200, expected
        # The server must answer the sealed call as the plain one: checked once before.
        check = await Session.open(app)
        sealed = seal_frame(check.c2s, CLIENT_TO_SERVER, check.session, 1, path, payload)
        status, answer = await call(app, path, sealed, MEDIA_TYPE)
        opened = open_frame(check.s2c, SERVER_TO_CLIENT, parse_frame(answer), path)
        assert status == 200 and opened == b"\x00\xc8" + expected, (status, opened[:80])

        results: dict[str, tuple[float, float]] = {}
        for round_ in range(opts.rounds):
            warm = min(500, opts.count)
            session = await Session.open(app)
            bodies = [
                seal_frame(session.c2s, CLIENT_TO_SERVER, session.session, n, path, payload)
                for n in range(1, opts.count + warm + 1)
            ]

            async def plain(i: int) -> None:
                status, _ = await call(app, path, payload, "application/json")
                assert status == 200

            async def sealed_call(i: int, bodies: list[bytes] = bodies) -> None:
                status, _ = await call(app, path, bodies[i], MEDIA_TYPE)
                assert status == 200, status

            hellos = [
                hello(X25519PrivateKey.generate().public_key().public_bytes_raw(), os.urandom(32))
                for _ in range(opts.handshakes + 50)
            ]

            async def handshake(i: int, hellos: list[bytes] = hellos) -> None:
                status, _ = await call(app, "/rpc/_handshake", hellos[i], "application/json")
                assert status == 200

            for i in range(warm):
                await plain(i)
                await sealed_call(i)
            order = [("plain", plain), ("sealed", sealed_call)]
            if round_ % 2:
                order.reverse()
            for name, fn in order:
                offset = warm if name == "sealed" else 0

                async def run(i: int, fn: Any = fn, offset: int = offset) -> None:
                    await fn(i + offset)

                results[f"{name} {round_ + 1}"] = await cpu_per(run, opts.count)
            for i in range(50):
                await handshake(i)

            async def measured_handshake(i: int) -> None:
                await handshake(i + 50)

            results[f"handshake {round_ + 1}"] = await cpu_per(measured_handshake, opts.handshakes)
        return results
    finally:
        await app.shutdown()


def report(opts: argparse.Namespace, results: dict[str, tuple[float, float]]) -> tuple[str, float]:
    rows = ["| measure | round | CPU us/call | wall us/call | per CPU second |", "| --- " * 5 + "|"]
    for name, (cpu, wall) in results.items():
        what, round_ = name.rsplit(" ", 1)
        rows.append(f"| {what} | {round_} | {cpu:,.1f} | {wall:,.1f} | {1e6 / cpu:,.0f} |")

    def mean(what: str) -> float:
        values = [cpu for name, (cpu, _) in results.items() if name.rsplit(" ", 1)[0] == what]
        return sum(values) / len(values)

    ratio = mean("sealed") / mean("plain")
    store = "redis" if opts.shared else "database (SQLite)"
    lines = [
        f"- sealed call {ratio:.2f}x the plain call's server CPU (target <= {TARGET}x: "
        f"{'met' if ratio <= TARGET else 'NOT met'}); handshakes: "
        f"{1e6 / mean('handshake'):,.0f} per CPU second",
        f"- store: {store}; payload ~{opts.payload} bytes; {opts.count} calls and "
        f"{opts.handshakes} handshakes per round, {opts.rounds} rounds (plain and sealed in "
        "alternating order)",
        "",
        *rows,
    ]
    return "\n".join(lines), ratio


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=HERE.parent
    )
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--count", type=int, default=3000, help="calls per measure and round")
    p.add_argument("--handshakes", type=int, default=1000, help="handshakes per round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--payload", type=int, default=200, help="bytes of the JSON arguments")
    p.add_argument("--shared", default=None, help="a Redis URL: sessions in Redis")
    p.add_argument("--no-write", action="store_true", help="don't append to bench/RESULTS.md")
    opts = p.parse_args(argv)
    results = asyncio.run(measure(opts))
    text, _ = report(opts, results)
    print(text)
    if not opts.no_write:
        when = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime())
        section = (
            f"\n## {when} — encrypted channel run\n\n- tree: commit {commit()}; "
            f"bench/channel.py, in-process (ASGI called directly)\n{text}\n"
        )
        with (HERE / "RESULTS.md").open("a") as results_file:
            results_file.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
