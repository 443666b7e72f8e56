"""The ``charter`` command, run as a real process and spoken to over a socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import Server

APP = """
from charter import App, Field, Table

class Note(Table):
    id: str = Field(primary_key=True)
    text: str
    n: int = Field(default=0, indexed=True)

app = App(tables=[Note])
"""


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.py"
    path.write_text(APP)
    return path


def test_serve_answers_over_a_socket_and_says_where(app_file: Path, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/served.db"
    server = Server(f"{app_file}:app", "--database", database).start()
    try:
        created = httpx.post(server.url + "/Note/", json={"id": "a", "text": "hello"})
        assert created.status_code == 201
        assert created.headers["location"] == "/Note/a"
        got = httpx.get(server.url + "/Note/a")
        assert got.json() == {"id": "a", "text": "hello", "n": 0}
        assert got.headers["etag"]
    finally:
        log = server.stop()
    assert f"http://127.0.0.1:{server.port}" in log
    assert database in log
    assert "auth: off" in log
    assert "every request acts as a super user" in log
    assert "CHARTER_AUTH=true" in log  # how to turn sign-in on
    assert "access log: off" in log
    assert (tmp_path / "served.db").exists()


def test_serve_with_module_attr_and_env_database(app_file: Path, tmp_path: Path) -> None:
    env_db = f"sqlite:///{tmp_path}/env.db"
    os.environ["CHARTER_DATABASE"] = env_db
    try:
        server = Server("notes:app", cwd=app_file.parent).start()
    finally:
        del os.environ["CHARTER_DATABASE"]
    try:
        assert httpx.post(server.url + "/Note/", json={"text": "x"}).status_code == 201
    finally:
        log = server.stop()
    assert env_db in log
    assert (tmp_path / "env.db").exists()


def test_serve_with_several_workers(app_file: Path, tmp_path: Path) -> None:
    server = Server(
        f"{app_file}:app", "--workers", "2", "--database", f"sqlite:///{tmp_path}/w.db"
    ).start()
    try:
        with httpx.Client(base_url=server.url) as client:
            for i in range(40):
                response = client.post("/Note/", json={"id": f"n{i}", "text": "t"})
                assert response.status_code == 201, response.text
            listed = client.get("/Note/?limit(100)").json()
        assert sorted(n["id"] for n in listed) == sorted(f"n{i}" for i in range(40))
    finally:
        server.stop()


def test_graceful_shutdown_finishes_in_flight_requests(tmp_path: Path) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text(
        APP
        + """
import asyncio
from charter import Response
from charter.http.routing import Route

async def wait(request):
    await asyncio.sleep(1.0)
    return Response(200, b"done")

app.add_route(Route("GET", "/slow", wait, "slow"))
"""
    )
    server = Server(f"{slow}:app", "--database", f"sqlite:///{tmp_path}/s.db").start()
    import threading

    result: dict[str, object] = {}

    def call() -> None:
        result["response"] = httpx.get(server.url + "/slow", timeout=10)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.3)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    thread.join(timeout=10)
    server.proc.wait(timeout=10)
    server.stop()
    response = result["response"]
    assert isinstance(response, httpx.Response)
    assert response.status_code == 200
    assert response.text == "done"


def test_routes_lists_every_endpoint(app_file: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "charter.cli", "routes", f"{app_file}:app"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for expected in ("/Note", "/Note/", "/Note/{id:path}", "GET", "POST", "PATCH", "DELETE"):
        assert expected in out


def test_dev_reloads_when_the_app_changes(app_file: Path, tmp_path: Path) -> None:
    server = Server(
        f"{app_file}:app", "--database", f"sqlite:///{tmp_path}/dev.db", command="dev"
    ).start()
    try:
        assert httpx.get(server.url + "/Tag").status_code == 404
        time.sleep(1.0)  # let the file watcher take its first snapshot
        app_file.write_text(
            APP.replace("app = App(tables=[Note])", "")
            + "\nclass Tag(Table):\n    name: str\n\napp = App(tables=[Note, Tag])\n"
        )
        deadline = time.monotonic() + 20
        status = 0
        while time.monotonic() < deadline:
            try:
                status = httpx.get(server.url + "/Tag", timeout=1).status_code
            except httpx.TransportError:
                status = 0
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200
    finally:
        log = server.stop()
    assert "Charter dev" in log
    assert "access log: off" in log


@pytest.mark.parametrize(
    ("command", "extra"),
    [("serve", ()), ("serve", ("--workers", "2")), ("dev", ())],
    ids=["serve", "workers", "dev"],
)
def test_every_serve_path_uses_charters_protocol(
    app_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, extra: tuple
) -> None:
    # Worker processes and the reloader load the app by name: the protocol (timeouts, limits,
    # errors in the envelope) must reach them too.
    monkeypatch.setenv("CHARTER_HEADER_TIMEOUT", "1")
    monkeypatch.setenv("CHARTER_MAX_URL_LENGTH", "100")
    database = f"sqlite:///{tmp_path}/p.db"
    with Server(f"{app_file}:app", "--database", database, *extra, command=command) as server:
        long = httpx.get(server.url + "/Note/" + "a" * 200)
        assert long.status_code == 414
        assert long.json()["error"]["code"] == "URI_TOO_LONG"
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            sock.sendall(b"GET /Note/ HTTP/1.1\r\nHost: x\r\n")  # headers never end
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408")
        assert b'"REQUEST_TIMEOUT"' in answer


def test_timeouts_and_limits_are_settings() -> None:
    from charter.config import Config

    config = Config.build({"CHARTER_SEND_TIMEOUT": "2.5", "CHARTER_MAX_HEADER_SIZE": "4096"})
    assert config.send_timeout == 2.5
    assert config.max_header_size == 4096
    assert Config.build({}).header_timeout == 10.0
    with pytest.raises(ValueError):
        Config.build({"CHARTER_IDLE_TIMEOUT": "0"})


def test_version() -> None:
    import charter

    out = subprocess.run(
        [sys.executable, "-m", "charter.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"charter {charter.__version__}"


@pytest.mark.parametrize("command", ["serve", "dev"])
def test_help_shows_the_defaults(command: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "charter.cli", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    for default in ("(default: 127.0.0.1)", "(default: 8000)", "(default: info)"):
        assert default in out, default
    assert "(default: None)" not in out
    assert ("(default: 1)" in out) is (command == "serve")  # --workers


def test_the_banner_and_log_never_show_the_database_password(
    app_file: Path, postgres_url: str
) -> None:
    # The test server trusts local connections: the password is accepted and ignored.
    secret = "pw-never-shown"
    database = postgres_url.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@")
    database += f"&password={secret}"
    with Server(f"{app_file}:app", "--database", database, "--access-log") as server:
        assert httpx.post(server.url + "/Note/", json={"text": "x"}).status_code == 201
        log = server.read_log()
    assert secret not in log
    assert "postgresql://postgres:***@127.0.0.1" in log
    assert "password=***" in log
    assert "access log: on" in log


def test_connection_limits_given_to_app_reach_the_server(tmp_path: Path) -> None:
    path = tmp_path / "limited.py"
    path.write_text(APP.replace("App(tables=[Note])", "App(tables=[Note], max_url_length=100)"))
    with Server(f"{path}:app", "--database", f"sqlite:///{tmp_path}/l.db") as server:
        assert httpx.get(server.url + "/Note/" + "a" * 50).status_code == 404
        refused = httpx.get(server.url + "/Note/" + "a" * 200)
    assert refused.status_code == 414
    assert refused.json()["error"]["code"] == "URI_TOO_LONG"
