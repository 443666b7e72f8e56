"""The generated Python client's ``encrypted=True`` (docs/clients.md, docs/crypto.md): RPC
calls through the encrypted channel against a live server (tests/channel_sample.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import Server

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
