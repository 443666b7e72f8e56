"""Subscriptions in the generated clients (docs/clients.md): typed events, and resuming after
a dropped connection with every event exactly once. A proxy (tests/servers.py) cuts each event
stream after two events, so every subscription below resumes several times."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import CuttingProxy, Server
from tests.test_client_typescript import _project, _tsc, node_modules

__all__ = ["node_modules"]  # the fixture: TypeScript from npm, installed once

HERE = Path(__file__).resolve().parent
PASSWORD = "admin-password-1"


def _charter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "charter.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module")
def python_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("subscribe")
    done = _charter(
        "gen", "client", "--lang", "python", "-o", str(folder / "gadgets"),
        str(HERE / "client_app.py"), cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shutil.copy(HERE / "subscribe_sample.py", folder / "subscribe_sample.py")
    return folder


def test_the_python_sample_passes_mypy_strict(python_client: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir",
         str(python_client / ".mypy_cache"), "gadgets", "subscribe_sample.py"],
        capture_output=True, text=True, timeout=300, cwd=python_client,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_python_subscriptions_resume_without_loss(
    python_client: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_AUTH", "true")
    monkeypatch.setenv("CHARTER_ADMIN_PASSWORD", PASSWORD)
    database = f"sqlite:///{tmp_path}/subscribe.db"
    with (
        Server(str(HERE / "client_app.py"), "--database", database) as server,
        CuttingProxy(server.port, after=2) as proxy,
    ):
        done = subprocess.run(
            [sys.executable, "subscribe_sample.py", server.url, proxy.url, PASSWORD],
            capture_output=True, text=True, timeout=120, cwd=python_client,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"
    assert proxy.cuts >= 8, proxy.cuts  # the streams were really cut, and resumed


def test_a_stream_cut_among_the_current_records_starts_over(
    python_client: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_AUTH", "true")
    monkeypatch.setenv("CHARTER_ADMIN_PASSWORD", PASSWORD)
    database = f"sqlite:///{tmp_path}/snapshot.db"
    with (
        Server(str(HERE / "client_app.py"), "--database", database) as server,
        CuttingProxy(server.port, after=2, times=1) as proxy,
    ):
        done = subprocess.run(
            [sys.executable, "subscribe_sample.py", server.url, proxy.url, PASSWORD, "snapshot"],
            capture_output=True, text=True, timeout=120, cwd=python_client,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok" and proxy.cuts == 1


def test_python_subscriptions_outlive_their_access_tokens(
    python_client: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Access tokens of 2 s: the server closes each stream when its token expires; the client
    refreshes and resumes from its position, every event once."""
    monkeypatch.setenv("CHARTER_AUTH", "true")
    monkeypatch.setenv("CHARTER_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.setenv("CHARTER_ACCESS_TOKEN_TTL", "2")
    database = f"sqlite:///{tmp_path}/expiry.db"
    with Server(str(HERE / "client_app.py"), "--database", database) as server:
        done = subprocess.run(
            [sys.executable, "subscribe_sample.py", server.url, server.url, PASSWORD, "expiry"],
            capture_output=True, text=True, timeout=120, cwd=python_client,
        )  # fmt: skip
        log = server.read_log()
    assert done.returncode == 0, done.stdout + done.stderr + log[-3000:]
    assert done.stdout.strip() == "ok"


@pytest.fixture(scope="module")
def ts_compiled(tmp_path_factory: pytest.TempPathFactory, node_modules: Path) -> Path:
    """The TypeScript client and tests/subscribe_sample.test.ts, compiled (tsc --strict)."""
    folder = tmp_path_factory.mktemp("tssubscribe")
    done = _charter(
        "gen", "client", "--lang", "ts", "-o", str(folder / "gadgets"),
        str(HERE / "client_app.py"), cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shutil.copy(HERE / "subscribe_sample.test.ts", folder / "subscribe_sample.test.ts")
    _project(folder, node_modules, "subscribe_sample.test.ts")
    compiled = _tsc(node_modules, folder, "-p", ".")
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    (folder / "out" / "package.json").write_text('{"type": "module"}\n')
    return folder / "out"


def test_typescript_subscriptions_resume_without_loss(
    ts_compiled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_AUTH", "true")
    monkeypatch.setenv("CHARTER_ADMIN_PASSWORD", PASSWORD)
    database = f"sqlite:///{tmp_path}/subscribe.db"
    with (
        Server(str(HERE / "client_app.py"), "--database", database) as server,
        CuttingProxy(server.port, after=2) as proxy,
    ):
        env = {**os.environ, "CHARTER_URL": server.url, "CHARTER_PROXY_URL": proxy.url,
               "CHARTER_PASSWORD": PASSWORD}  # fmt: skip
        done = subprocess.run(
            ["node", "--test", "subscribe_sample.test.js"],
            capture_output=True, text=True, timeout=120, cwd=ts_compiled, env=env,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# pass 2" in done.stdout and "# fail 0" in done.stdout, done.stdout
    assert proxy.cuts >= 4, proxy.cuts  # the streams were really cut, and resumed
