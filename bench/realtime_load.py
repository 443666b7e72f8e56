"""The load of bench/realtime.py: many subscribers held by one asyncio process, and a writer at
a fixed rate in another.

Subscribers are raw asyncio protocols (an HTTP client or a WebSocket library per stream is too
heavy at 10,000 streams): an SSE subscriber sends ``GET <path>`` with ``Accept:
text/event-stream``, undoes chunked transfer coding and splits events on blank lines; a
WebSocket subscriber does the upgrade handshake and reads frames. Each event's record carries
its sequence number ``n`` and its send time ``sent`` (microseconds of the wall clock, which the
writer and the subscribers share on one machine); the subscriber takes ``n`` and ``sent`` out of
the event with two regular expressions (the order of keys is the server's business), marks
``n`` seen (a second sighting is a duplicate) and records receive time minus ``sent``.

The writer (``python bench/realtime_load.py writer '<json>'``) is a separate process, so a busy
subscriber loop cannot delay the writes: it schedules write ``i`` at ``t0 + i / rate`` (open
loop: a slow server makes writes queue, not the schedule slow down), sends each as ``PUT
<path><key>`` over a few keep-alive connections, stamps ``sent`` when the request is written,
and prints one JSON line: what was acknowledged, what failed, how late the schedule ran.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import resource
import sys
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

HOST = "127.0.0.1"
_N = re.compile(rb'"n":\s*(\d+)')
_SENT = re.compile(rb'"sent":\s*(\d+)')
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def now_us() -> int:
    return time.time_ns() // 1000


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is there (uvicorn[standard] installs it): the client's cost per event is
    part of what it can measure."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


# --------------------------------------------------------------------------------------------
# What the subscribers saw
# --------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Every subscriber's record of one write run: events of sequence numbers ``base`` ..
    ``base + planned - 1`` count (others, such as a server's current records, are ignored);
    the latency of the first ``skip`` of them (the warm-up) is not kept."""

    base: int
    planned: int
    skip: int = 0
    latencies_us: array[int] = field(default_factory=lambda: array("q"))
    arrived: int = 0  # events seen arriving (a lower bound: counted cheaply as they come)
    delivered: int = 0  # unique (subscriber, n) pairs, once every subscriber has finished
    duplicates: int = 0
    ignored: int = 0  # events outside this run (current records, earlier runs, keep-alives)
    first_us: int = 0  # the first and last receive time of a measured event (past the skip)
    last_us: int = 0

    @property
    def per_second(self) -> float:
        """Measured deliveries a second, first to last."""
        span = (self.last_us - self.first_us) / 1e6
        return len(self.latencies_us) / span if span > 0 else 0.0


class Subscriber(asyncio.Protocol):
    """One subscription. ``ready`` resolves to None once the server has accepted it (200 and
    text/event-stream, or 101 for a WebSocket), or to the reason it did not.

    While a run goes on a subscriber only stamps what arrives with the time and keeps it
    (``received``); ``finish`` parses it afterwards. Parsing as events arrive cost this process
    ~3 us an event, which at 100 subscribers and 1,000 writes/s is a third of its core: the
    client, not the server, would set the ceiling. Keeping the bytes costs memory instead
    (~0.3 KB an event)."""

    websocket = False

    def __init__(self, request: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.ready: asyncio.Future[str | None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.head_done = False
        self.closed = False
        self.tally: Tally | None = None
        self.seen = bytearray()
        self.unique = 0
        self.received: list[Any] = []  # receive time (us), bytes, receive time, bytes, ...

    # -- bookkeeping shared by both transports --

    def watch(self, tally: Tally | None) -> None:
        """Count the events of ``tally``'s run from now on (None: count nothing); what
        arrived before is parsed against the previous run first."""
        self.finish()
        self.tally = tally
        self.seen = bytearray(tally.planned if tally else 0)
        self.unique = 0

    def finish(self) -> None:
        """Parse what arrived since the last call."""
        received, self.received = self.received, []
        for i in range(0, len(received), 2):
            self.consume(received[i + 1], received[i])

    def event(self, payload: bytes, received_us: int) -> None:
        tally = self.tally
        if tally is None:
            return
        m = _N.search(payload)
        index = int(m.group(1)) - tally.base if m else -1
        if not 0 <= index < tally.planned:
            tally.ignored += 1
            return
        if self.seen[index]:
            tally.duplicates += 1
            return
        self.seen[index] = 1
        self.unique += 1
        tally.delivered += 1
        if index >= tally.skip:
            s = _SENT.search(payload)
            if s:
                tally.latencies_us.append(received_us - int(s.group(1)))
            if received_us > tally.last_us:
                tally.last_us = received_us
            if not tally.first_us or received_us < tally.first_us:
                tally.first_us = received_us

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_result(f"closed before answering ({exc or 'EOF'})")

    def data_received(self, data: bytes) -> None:
        if self.head_done:
            self.arrive(data, now_us())
            return
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > 65536:
                self.refuse("response head over 64 KiB")
            return
        head, rest = self.buf[:end].decode("latin-1"), self.buf[end + 4 :]
        self.buf = b""
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        problem = self.accept(status, headers)
        if problem:
            self.refuse(f"{problem}: {lines[0]} {rest[:160]!r}")
            return
        self.head_done = True
        if not self.ready.done():  # else the harness gave up waiting
            self.ready.set_result(None)
        if rest:
            self.arrive(rest, now_us())

    def refuse(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_result(reason)
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -- per transport --

    def accept(self, status: int, headers: dict[str, str]) -> str | None:
        raise NotImplementedError

    def arrive(self, data: bytes, received_us: int) -> None:
        """Bytes of the body as they come: keep them, stamped, for ``consume``."""
        raise NotImplementedError

    def consume(self, data: bytes, received_us: int) -> None:
        """What ``arrive`` kept, parsed into events."""
        raise NotImplementedError


class SseSubscriber(Subscriber):
    """``GET path`` with ``Accept: text/event-stream``; events end at a blank line."""

    def __init__(self, request: bytes, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(request, loop)
        self.chunked = False
        self.chunk_left = 0  # bytes of the current chunk still to come, its CRLF included
        self.events = b""

    @staticmethod
    def request_for(path: str, port: int) -> bytes:
        return (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n\r\n"
        ).encode()

    def accept(self, status: int, headers: dict[str, str]) -> str | None:
        if status != 200:
            return f"status {status}"
        if not headers.get("content-type", "").startswith("text/event-stream"):
            return f"content-type {headers.get('content-type')!r}"
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        return None

    def arrive(self, data: bytes, received_us: int) -> None:
        self.received.append(received_us)
        self.received.append(data)
        if self.tally is not None:
            self.tally.arrived += data.count(b'"sent"')

    def consume(self, data: bytes, received_us: int) -> None:
        if self.chunked:
            data = self.dechunk(data)
        events = self.events + data if self.events else data
        end = events.rfind(b"\n\n")
        if end < 0:
            self.events = events
            return
        self.events = events[end + 2 :]
        for event in events[:end].split(b"\n\n"):
            if b"data:" in event:
                self.event(event, received_us)

    def dechunk(self, data: bytes) -> bytes:
        """The payload bytes in ``data``; a chunk's size line split across reads waits in
        ``buf``."""
        out = []
        buf = self.buf + data if self.buf else data
        self.buf = b""
        pos, size = 0, len(buf)
        while pos < size:
            if self.chunk_left:
                take = min(self.chunk_left, size - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self.chunk_left -= take
                continue
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                self.buf = buf[pos:]
                break
            line = buf[pos:line_end].split(b";", 1)[0].strip()
            pos = line_end + 2
            if not line:  # the CRLF that ends a chunk
                continue
            length = int(line, 16)
            if length == 0:  # the last chunk: the server ended the stream
                self.close()
                break
            self.chunk_left = length
        return b"".join(out)


class WsSubscriber(Subscriber):
    """A WebSocket upgrade on the same path; every text message is one event."""

    websocket = True

    def __init__(self, request: bytes, loop: asyncio.AbstractEventLoop, key: bytes) -> None:
        super().__init__(request, loop)
        self.key = key
        self.message: list[bytes] = []  # fragments of a message in progress

    @staticmethod
    def make(path: str, port: int, loop: asyncio.AbstractEventLoop) -> WsSubscriber:
        key = base64.b64encode(os.urandom(16))
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        return WsSubscriber(request, loop, key)

    def accept(self, status: int, headers: dict[str, str]) -> str | None:
        if status != 101:
            return f"status {status} (no WebSocket upgrade)"
        want = base64.b64encode(hashlib.sha1(self.key + _WS_GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            return "wrong Sec-WebSocket-Accept"
        return None

    def arrive(self, data: bytes, received_us: int) -> None:
        """Frames are read as they come (a ping must be answered); messages are kept."""
        buf = self.buf + data if self.buf else data
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, at = b1 & 0x7F, pos + 2
            if length == 126:
                if size - at < 2:
                    break
                length, at = int.from_bytes(buf[at : at + 2], "big"), at + 2
            elif length == 127:
                if size - at < 8:
                    break
                length, at = int.from_bytes(buf[at : at + 8], "big"), at + 8
            mask = b""
            if b1 & 0x80:  # servers do not mask; tolerate it anyway
                mask, at = buf[at : at + 4], at + 4
            if size - at < length:
                break
            payload = buf[at : at + length]
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            pos = at + length
            self.frame(b0 & 0x0F, bool(b0 & 0x80), payload, received_us)
        self.buf = buf[pos:]

    def frame(self, opcode: int, fin: bool, payload: bytes, received_us: int) -> None:
        if opcode in (0, 1, 2):
            self.message.append(payload)
            if fin:
                whole = b"".join(self.message) if len(self.message) > 1 else payload
                self.message = []
                self.received.append(received_us)
                self.received.append(whole)
                if self.tally is not None:
                    self.tally.arrived += 1
        elif opcode == 9:  # ping: answer with a masked pong
            self.send(10, payload)
        elif opcode == 8:  # close: answer and let the server end it
            self.send(8, payload[:2])
            self.closed = True

    def consume(self, data: bytes, received_us: int) -> None:
        self.event(data, received_us)

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


async def subscribe(
    port: int,
    path: str,
    count: int,
    websocket: bool = False,
    concurrency: int = 200,
    timeout: float = 30.0,
) -> tuple[list[Subscriber], list[str]]:
    """Open ``count`` subscriptions to ``path``, ``concurrency`` at a time; returns those the
    server accepted and the reasons for the others (at most five kept)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    request = SseSubscriber.request_for(path, port)
    subs: list[Subscriber] = []
    problems: list[str] = []

    async def one() -> None:
        async with gate:
            factory: Callable[[], Subscriber]
            if websocket:
                made = WsSubscriber.make(path, port, loop)
                factory = lambda: made  # noqa: E731
            else:
                factory = lambda: SseSubscriber(request, loop)  # noqa: E731
            try:
                _, sub = await loop.create_connection(factory, HOST, port)
                problem = await asyncio.wait_for(sub.ready, timeout)
            except TimeoutError:
                problem = f"no answer within {timeout:g} s"
                sub.close()
            except OSError as exc:
                problem = f"connect: {exc}"
            if problem is None:
                subs.append(sub)
            elif len(problems) < 5:
                problems.append(problem)
            else:
                problems.append("")  # counted, not shown

    await asyncio.gather(*(one() for _ in range(count)))
    return subs, problems


def close_all(subs: list[Subscriber]) -> None:
    for sub in subs:
        sub.close()


# --------------------------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------------------------


@dataclass
class WritePlan:
    """One write run: ``rate`` writes a second for ``seconds``, sequence numbers from
    ``base``, spread over ``keys`` records (``<path><prefix><n % keys>``)."""

    port: int
    path: str  # the table's collection path, "/Tick/"
    rate: float
    seconds: float
    base: int
    keys: int = 20
    connections: int = 64
    pad: int = 64  # bytes of filler per record, so an event is ~200 bytes
    grace: float = 10.0  # writes not sent this long after the schedule ends are given up

    @property
    def planned(self) -> int:
        return max(1, round(self.rate * self.seconds))


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: (status, body, the server closes the connection)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", ""):
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while (await reader.readline()).strip():
            pass
        body = b"".join(chunks)
    return status, body, headers.get("connection") == "close"


def record(plan: WritePlan, index: int, sent_us: int) -> tuple[str, bytes]:
    """The path and body of write ``index``: the key's record with ``n`` and ``sent``."""
    n = plan.base + index
    key = f"k{n % plan.keys}"
    body = {"id": key, "n": n, "sent": sent_us, "pad": "x" * plan.pad}
    return plan.path + key, json.dumps(body, separators=(",", ":")).encode()


async def write_at_rate(plan: WritePlan) -> dict[str, Any]:
    """Carry out ``plan``; returns what happened (see the module's docstring)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    failed: list[int] = []
    statuses: dict[str, int] = {}
    late_s: list[float] = []
    answer_us: list[int] = []
    sent_at: list[float] = []
    problems: list[str] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, plan.port)
        try:
            while (job := await queue.get()) is not None:
                index, due = job
                if loop.time() > t0 + plan.seconds + plan.grace:  # given up
                    failed.append(index)
                    statuses["unsent"] = statuses.get("unsent", 0) + 1
                    continue
                late_s.append(loop.time() - due)
                sent = now_us()
                path, body = record(plan, index, sent)
                writer.write(
                    b"PUT %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s"
                    % (path.encode(), HOST.encode(), plan.port, len(body), body)
                )
                sent_at.append(loop.time())
                try:
                    status, answer, close = await asyncio.wait_for(read_response(reader), 30)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    failed.append(index)
                    statuses["error"] = statuses.get("error", 0) + 1
                    if len(problems) < 3:
                        problems.append(f"PUT {path}: {exc or type(exc).__name__}")
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, plan.port)
                    continue
                answer_us.append(now_us() - sent)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if not 200 <= status < 300:
                    failed.append(index)
                    if len(problems) < 3:
                        problems.append(f"PUT {path}: {status} {answer[:160]!r}")
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, plan.port)
        finally:
            writer.close()

    cpu0 = _cpu_seconds()
    t0 = loop.time() + 0.05  # the schedule starts; a moment for the connections to open
    workers = [asyncio.create_task(connection()) for _ in range(plan.connections)]
    for index in range(plan.planned):
        due = t0 + index / plan.rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((index, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = (max(sent_at) - t0) if sent_at else 0.0
    late_s.sort()
    answer_us.sort()
    return {
        "planned": plan.planned,
        "sent": len(sent_at),
        "failed": failed,
        "statuses": statuses,
        "problems": problems,
        "achieved_rate": (len(sent_at) - 1) / elapsed if elapsed > 0 else 0.0,
        "late_p99_ms": _pct(late_s, 0.99) * 1000,
        "late_max_ms": (late_s[-1] if late_s else 0.0) * 1000,
        "answer_p50_ms": _pct(answer_us, 0.5) / 1000,
        "answer_p99_ms": _pct(answer_us, 0.99) / 1000,
        "cpu_s": _cpu_seconds() - cpu0,
        "elapsed_s": loop.time() - t0,
    }


def _pct(ordered: list[Any], q: float) -> Any:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0


def _cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


async def run_writer(plan: WritePlan) -> dict[str, Any]:
    """Run the writer as its own process (this file, ``writer`` mode) and return its report."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        os.path.abspath(__file__),
        "writer",
        json.dumps(plan.__dict__),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    for line in out.decode().splitlines():
        if line.startswith("WRITER "):
            report: dict[str, Any] = json.loads(line[len("WRITER ") :])
            return report
    raise RuntimeError(f"the writer printed no report (exit {proc.returncode}): {err.decode()}")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "writer":
        print("usage: realtime_load.py writer '<WritePlan as JSON>'", file=sys.stderr)
        return 2
    plan = WritePlan(**json.loads(argv[1]))
    loop = new_loop()
    try:
        report = loop.run_until_complete(write_at_rate(plan))
    finally:
        loop.close()
    print("WRITER " + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
