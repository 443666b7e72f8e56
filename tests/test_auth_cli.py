"""``charter users ...`` and ``charter roles ...`` run as real processes, and what ``charter
serve`` says about sign-in (never a secret)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import Server

APP = """
from charter import App, Contract, Field, Grant, Role, Table, route
import charter

class Note(Table):
    id: str = Field(primary_key=True)
    text: str = ""

@route("GET", "/who", contract=Contract(roles=True))
async def who() -> dict:
    user = charter.current_context().user
    return {"username": user.username, "role": user.role, "super_user": user.super_user}

app = App(tables=[Note], routes=[who], auth=True,
          roles=[Role("clerk", tables={"Note": Grant(read=True)})])
"""


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "users_app.py"
    path.write_text(APP)
    return path


def _charter(
    app_file: Path, database: str, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "charter.cli", *args, str(app_file), "--database", database]
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=120, cwd=app_file.parent
    )


def test_users_are_managed_from_the_command_line(app_file: Path, database: str) -> None:
    added = _charter(
        app_file, database, "users", "add", "ann", "--role", "clerk", stdin="pw-ann-1\n"
    )
    assert added.returncode == 0, added.stderr
    assert "pw-ann-1" not in added.stdout + added.stderr
    boss = _charter(app_file, database, "users", "add", "root", "--super", stdin="pw-root-1\n")
    assert boss.returncode == 0, boss.stderr
    listed = _charter(app_file, database, "users", "list")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["ann", "root"]
    assert "argon2" not in listed.stdout and "pw-" not in listed.stdout
    server = Server(f"{app_file}:app", "--database", database).start()
    try:
        who = httpx.get(server.url + "/who", auth=("ann", "pw-ann-1")).json()
        assert who == {"username": "ann", "role": "clerk", "super_user": False}
        changed = _charter(app_file, database, "users", "passwd", "ann", stdin="pw-ann-2\n")
        assert changed.returncode == 0, changed.stderr
        assert httpx.get(server.url + "/who", auth=("ann", "pw-ann-1")).status_code == 401
        assert httpx.get(server.url + "/who", auth=("ann", "pw-ann-2")).status_code == 200
        granted = _charter(app_file, database, "users", "grant", "ann", "--super")
        assert granted.returncode == 0, granted.stderr
        assert httpx.get(server.url + "/who", auth=("ann", "pw-ann-2")).json()["super_user"]
        removed = _charter(app_file, database, "users", "remove", "ann")
        assert removed.returncode == 0
        assert httpx.get(server.url + "/who", auth=("ann", "pw-ann-2")).status_code == 401
    finally:
        log = server.stop()
    assert "pw-ann" not in log and "argon2" not in log


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("users", "add", "bob", "--role", "nope"), "pw-123456\n", "no role is named 'nope'"),
        (("users", "add", "bob"), "pw-123456\n", "--role ROLE"),
        (("users", "add", "bob", "--role", "clerk"), "\n", "a password is required"),
        (("users", "passwd", "nobody"), "pw-123456\n", "not found"),
        (("users", "remove", "nobody"), "", "no user is named 'nobody'"),
        (("users", "grant", "nobody"), "", "--role ROLE, --super"),
        (("roles", "add", "r", "--table", "Nope=read"), "", "not a table of the app"),
        (("roles", "add", "r", "--table", "Note=fly"), "", "table rights are"),
        (("roles", "add", "r", "--egroup", "api=RQ"), "", "permission bits"),
        (("roles", "add", "r", "--attributes", "Note=text:x"), "", "attribute right"),
        (("roles", "add", "clerk"), "", "declared in code"),
        (("roles", "remove", "clerk"), "", "declared in code"),
    ],
)
def test_mistakes_are_refused_with_a_clear_message(
    app_file: Path, database: str, args: tuple[str, ...], stdin: str, message: str
) -> None:
    done = _charter(app_file, database, *args, stdin=stdin)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_roles_are_managed_from_the_command_line(app_file: Path, database: str) -> None:
    added = _charter(
        app_file, database, "roles", "add", "viewer",
        "--table", "Note=read,update", "--attributes", "Note=text:rw", "--egroup", "api=R_X",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = _charter(app_file, database, "roles", "list").stdout
    viewer = next(line for line in listed.splitlines() if line.startswith("viewer"))
    assert "Note: read/update" in viewer and "api: R_X" in viewer
    assert any(line.startswith("clerk") for line in listed.splitlines())
    done = _charter(
        app_file, database, "users", "add", "vic", "--role", "viewer", stdin="pw-vic-1\n"
    )
    assert done.returncode == 0, done.stderr
    assert _charter(app_file, database, "roles", "remove", "viewer").returncode == 0
    assert "viewer" not in _charter(app_file, database, "roles", "list").stdout
    assert _charter(app_file, database, "roles", "remove", "viewer").returncode != 0


def test_serve_says_auth_is_on_and_never_shows_the_secret(
    app_file: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "a-very-secret-signing-key-of-40-chars!!!"
    monkeypatch.setenv("CHARTER_SECRET", secret)
    monkeypatch.setenv("CHARTER_ADMIN_PASSWORD", "admin-pw-123")
    server = Server(f"{app_file}:app", "--database", database).start()
    try:
        token = httpx.post(
            server.url + "/auth/login", json={"username": "admin", "password": "admin-pw-123"}
        ).json()["access_token"]
        assert secret not in token
    finally:
        log = server.stop()
    assert "auth:       on" in log and "anonymous" in log
    assert "CHARTER_SECRET" in log  # where the secret comes from, not what it is
    assert secret not in log and "admin-pw-123" not in log
