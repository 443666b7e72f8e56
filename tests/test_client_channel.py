"""The generated clients' encrypted option (docs/clients.md, docs/crypto.md): RPC calls
through the encrypted channel against a live server, Python (``encrypted=True``,
tests/channel_sample.py) and TypeScript (``encrypted: true`` on Node's crypto,
tests/channel_sample.test.ts)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import Server
from tests.test_client_typescript import _project, _tsc, node_modules

__all__ = ["node_modules"]  # the fixture: TypeScript from npm, installed once

HERE = Path(__file__).resolve().parent
PASSWORD = "admin-password-1"


@pytest.fixture(scope="module")
def python_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("channel")
    done = subprocess.run(
        [sys.executable, "-m", "charter.cli", "gen", "client", "--lang", "python", "-o",
         str(folder / "gadgets"), str(HERE / "client_app.py")],
        capture_output=True, text=True, timeout=120, cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shutil.copy(HERE / "channel_sample.py", folder / "channel_sample.py")
    return folder


def test_the_sample_passes_mypy_strict(python_client: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir",
         str(python_client / ".mypy_cache"), "gadgets", "channel_sample.py"],
        capture_output=True, text=True, timeout=300, cwd=python_client,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_sealed_rpc_calls_against_a_live_server(
    python_client: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_AUTH", "true")
    monkeypatch.setenv("CHARTER_ADMIN_PASSWORD", PASSWORD)
    database = f"sqlite:///{tmp_path}/channel.db"
    with Server(str(HERE / "client_app.py"), "--database", database) as server:
        done = subprocess.run(
            [sys.executable, "channel_sample.py", server.url, PASSWORD],
            capture_output=True, text=True, timeout=120, cwd=python_client,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"


def test_typescript_sealed_rpc_calls_against_a_live_server(
    tmp_path: Path, node_modules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "charter.cli", "gen", "client", "--lang", "ts", "-o",
         str(tmp_path / "gadgets"), str(HERE / "client_app.py")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shutil.copy(HERE / "channel_sample.test.ts", tmp_path / "channel_sample.test.ts")
    _project(tmp_path, node_modules, "channel_sample.test.ts")
    compiled = _tsc(node_modules, tmp_path, "-p", ".")
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    (tmp_path / "out" / "package.json").write_text('{"type": "module"}\n')
    monkeypatch.setenv("CHARTER_AUTH", "true")
    monkeypatch.setenv("CHARTER_ADMIN_PASSWORD", PASSWORD)
    database = f"sqlite:///{tmp_path}/channel.db"
    with Server(str(HERE / "client_app.py"), "--database", database) as server:
        env = {**os.environ, "CHARTER_URL": server.url, "CHARTER_PASSWORD": PASSWORD}
        ran = subprocess.run(
            ["node", "--test", "channel_sample.test.js"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path / "out", env=env,
        )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "# pass 1" in ran.stdout and "# fail 0" in ran.stdout, ran.stdout
