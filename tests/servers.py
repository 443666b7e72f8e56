"""Run ``charter`` as a real server process for tests that need a socket."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
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
