"""Run ``charter`` as a real server process for tests that need a socket."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``charter <command> APP`` in a subprocess, waited on until it answers."""

    def __init__(self, app: str, *args: str, command: str = "serve", cwd: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv: Sequence[str] = [
            sys.executable, "-m", "charter.cli", command, app, "--port", str(self.port), *args,
        ]  # fmt: skip
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20, probe: str = "/openapi-probe") -> Server:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._logfile = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=env,
            stdout=self._logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers form one group, killed together at the end
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.read_log()}")
            try:
                httpx.get(self.url + probe, timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not start: {self.read_log()}")

    def read_log(self) -> str:
        """Everything the server printed so far."""
        self._logfile.seek(0)
        return self._logfile.read().decode(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=30)
        finally:
            # Workers of a supervisor killed with SIGKILL outlive it, and a server that did not
            # stop in time is killed all the same: leave no process behind.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> str:
        self.kill(signal.SIGTERM)
        log = self.read_log()
        self._logfile.close()
        return log

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CuttingProxy:
    """A TCP proxy in front of a server that cuts every event stream (a response of type
    ``text/event-stream``) right after it has passed ``after`` events on: the client sees a
    dropped connection mid-stream, at a known place, and the events the server sent next are
    lost on the way. ``times``: only the first that many streams are cut (None: every one).
    ``connections`` counts the connections made through it."""

    def __init__(self, target_port: int, after: int, times: int | None = None) -> None:
        self.target_port = target_port
        self.after = after
        self.times = times
        self.connections = 0
        self.cuts = 0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopped = False
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []

    def __enter__(self) -> CuttingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped = True
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                self._open += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _answers(self, upstream: socket.socket, client: socket.socket) -> None:
        """The server's bytes to the client; an event stream cut after ``after`` events."""
        seen = b""  # an event stream's bytes so far (None of it before its header)
        streaming = False
        try:
            while chunk := upstream.recv(65536):
                if not streaming:
                    with self._lock:
                        spent = self.times is not None and self.cuts >= self.times
                    if b"text/event-stream" not in chunk or spent:
                        client.sendall(chunk)
                        continue
                    streaming = True
                start = len(seen)
                seen += chunk
                end = self._cut_at(seen)
                if end is None:
                    client.sendall(chunk)
                    continue
                client.sendall(seen[start:end])
                with self._lock:
                    self.cuts += 1
                break
        except OSError:
            pass
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _cut_at(self, data: bytes) -> int | None:
        """Where the stream ends after ``after`` whole events (messages with a ``data:``)."""
        at, count = 0, 0
        while count < self.after:
            found = data.find(b"data: ", at)
            if found < 0:
                return None
            end = data.find(b"\n\n", found)
            if end < 0:
                return None
            at, count = end + 2, count + 1
        return at
