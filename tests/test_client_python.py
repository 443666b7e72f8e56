"""``charter gen client --lang python``: the description it is built from, the generated
package under ``mypy --strict`` (and a misuse it must refuse), the package driving a live
server (tests/client_sample.py, sync and async), and the drift check."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from charter.clients import describe_app
from charter.clients.python import HEADER, generate
from charter.clients.types import DictOf, ListOf, Prim, Ref
from charter.query.parser import parse_query_string
from tests import client_app
from tests.servers import Server

HERE = Path(__file__).resolve().parent
PASSWORD = "admin-password-1"
TEMPLATE = HERE.parent / "charter" / "clients" / "templates" / "python_runtime.py"


def _runtime() -> Any:
    """The generated packages' ``_runtime.py``, loaded from its template."""
    spec = importlib.util.spec_from_file_location("client_runtime", TEMPLATE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _charter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "charter.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip


def _mypy(folder: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(folder / ".mypy_cache"),
         *targets],
        capture_output=True, text=True, timeout=300, cwd=folder,
    )  # fmt: skip


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the generated package ``gadgets`` and the usage sample."""
    folder = tmp_path_factory.mktemp("client")
    done = _charter(
        "gen", "client", "--lang", "python", "-o", str(folder / "gadgets"),
        str(HERE / "client_app.py"), cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shutil.copy(HERE / "client_sample.py", folder / "client_sample.py")
    return folder


def test_the_description_follows_the_declarations() -> None:
    api = describe_app(client_app.app)
    tables = {t.name: t for t in api.tables}
    gadget = tables["Gadget"]
    record = {p.name: p for p in gadget.record}
    create = {p.name: p for p in gadget.create}
    assert "cost" not in record and "owner" in record  # returned=False / input=False
    assert "owner" not in create and "cost" in create
    assert {p.name for p in gadget.create if p.required} == {"name", "price"}
    assert not any(p.required for p in gadget.patch)
    assert record["tags"].type == ListOf(Prim("str"))
    assert gadget.key_type == Prim("str") and gadget.generates_key
    counter = tables["Counter"]
    assert counter.key_type == Prim("int") and not counter.generates_key
    assert [p.name for p in counter.create if p.required] == ["id"]  # not generated: named
    methods = {m.name: m for m in gadget.methods}
    assert methods["label"].path == "/Gadget/{id}/label" and not methods["label"].static
    assert [(p.name, p.location) for p in methods["label"].params] == [("id", "path")]
    assert methods["discount"].static and methods["discount"].result == Prim("int")
    rpcs = {op.name: op for op in api.rpcs()}
    quote = rpcs["quote"]
    assert quote.service == "Shop" and quote.path == "/rpc/quote"
    assert [(p.name, p.required, p.location) for p in quote.params] == [
        ("gadget_id", True, "body"), ("qty", False, "body"),
    ]  # fmt: skip
    assert quote.result == Ref("Priced")
    assert rpcs["tags"].result == DictOf(Prim("int"))
    routes = {op.name: op for op in api.routes()}
    assert [(p.name, p.location) for p in routes["checkout"].params] == [("payload", "payload")]
    assert routes["checkout"].params[0].type == Ref("Quote")
    assert [(p.name, p.location) for p in routes["greet"].params] == [
        ("name", "path"), ("times", "query"),
    ]  # fmt: skip
    assert routes["new_brand"].kind == "mapped" and routes["new_brand"].http_method == "POST"
    assert {o.name for o in api.objects} >= {"Quote", "Priced"}
    assert [p.name for p in api.error.properties] == ["status", "code", "message", "details"]
    assert "NOT_FOUND" in api.error.codes and api.realtime.sse and gadget.subscribe
    assert api.auth.login == "/auth/login" and not api.auth.enabled


def test_generation_is_stable_and_marked() -> None:
    first = generate(describe_app(client_app.app))
    assert first == generate(describe_app(client_app.app))
    files = ["__init__.py", "_runtime.py", "_subscriptions.py", "client.py", "models.py"]
    assert sorted(first) == files
    assert all(text.startswith(HEADER) for text in first.values())


def test_the_query_builder_speaks_the_url_language() -> None:
    Query = _runtime().Query
    query = Query()
    query._where("price", "gt", 10)._where("name", "sw", "A&B (x)")._where("brand_id", "eq", None)
    query._where("price", "bt", (1, 2.5))._where("ok", "ne", True)
    query.sort("-price", "name").select("id", "name").limit(5, 10).offset(2)
    text = query.to_query_string()
    assert text == (
        "price=gt=number:10&name=sw=string:A%26B%20%28x%29&brand_id=null"
        "&price=bt=number:1,number:2.5&ok=ne=boolean:true"
        "&sort(-price,+name)&select(id,name)&limit(5,10)&offset(2)"
    )
    parsed = parse_query_string(text)  # the server's parser reads what the builder wrote
    assert [c.value for c in parsed.conditions][:3] == [10, "A&B (x)", None]
    assert parsed.select is not None and parsed.select.mode == "object"
    assert [item.name for item in parsed.select.items] == ["id", "name"]
    assert (parsed.limit, parsed.offset) == (5, 2)
    window = Query()
    window_query = parse_query_string(window.limit(5, 10).to_query_string())
    assert (window_query.limit, window_query.offset) == (5, 5)  # from 5, up to 10


def test_the_package_and_a_usage_sample_pass_mypy_strict(generated: Path) -> None:
    done = _mypy(generated, "gadgets", "client_sample.py")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_example_apps_clients_pass_mypy_strict(tmp_path: Path) -> None:
    examples = HERE.parent / "examples"
    apps = {"shop_client": examples / "shop" / "app.py", "signup_client": examples / "signup"
            / "signup.py"}  # fmt: skip
    for name, app in apps.items():
        done = _charter("gen", "client", "--lang", "python", "-o", name, str(app), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    checked = _mypy(tmp_path, *apps)
    assert checked.returncode == 0, checked.stdout + checked.stderr


MISUSE = """
from gadgets import Client, GadgetCreate, Quote

client = Client("http://127.0.0.1:1")
client.Gadget.query().where("nmae", "eq", "x")
client.Gadget.query().where("price", "gt", "ten")
client.Gadget.query().where("price", "about", 10)
client.Gadget.query().sort("-nmae")
GadgetCreate(name="no price")
GadgetCreate(name="x", price=1, owner="me")
client.rpc.quote(42)
client.routes.checkout(Quote(gadget_id="a", qty="2"))
n: int = client.Gadget.label("x")
"""


def test_mypy_refuses_what_the_server_would_refuse(generated: Path) -> None:
    (generated / "misuse.py").write_text(MISUSE)
    done = _mypy(generated, "misuse.py")
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    lines = sorted({int(line.split(":")[1]) for line in errors})
    assert lines == list(range(5, 14)), done.stdout


def test_the_client_drives_a_live_server(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_AUTH", "true")
    monkeypatch.setenv("CHARTER_ADMIN_PASSWORD", PASSWORD)
    database = f"sqlite:///{tmp_path}/client.db"
    with Server(str(HERE / "client_app.py"), "--database", database) as server:
        done = subprocess.run(
            [sys.executable, "client_sample.py", server.url, PASSWORD],
            capture_output=True, text=True, timeout=120, cwd=generated,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"


def test_the_drift_check(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text((HERE / "client_app.py").read_text())
    out = tmp_path / "client"
    assert _charter("gen", "client", "--lang", "python", "-o", str(out), str(app), cwd=tmp_path)
    check = ["gen", "client", "--lang", "python", "-o", str(out), "--check", str(app)]
    unchanged = _charter(*check, cwd=tmp_path)
    assert unchanged.returncode == 0, unchanged.stderr
    assert "up to date" in unchanged.stdout
    app.write_text(
        app.read_text().replace("    value: int = 0\n", "    value: int = 0\n    step: int = 1\n")
    )
    changed = _charter(*check, cwd=tmp_path)
    assert changed.returncode == 1
    assert "out of date" in changed.stderr and "models.py: differs" in changed.stderr
    assert "charter gen client --lang python -o" in changed.stderr  # how to update it
    _charter("gen", "client", "--lang", "python", "-o", str(out), str(app), cwd=tmp_path)
    assert _charter(*check, cwd=tmp_path).returncode == 0
    (out / "client.py").unlink()
    missing = _charter(*check, cwd=tmp_path)
    assert missing.returncode == 1 and "client.py: missing" in missing.stderr


def test_errors_hold_the_envelope_or_say_what_came_instead() -> None:
    runtime = _runtime()
    envelope = b'{"error": {"status": 409, "code": "CONFLICT", "message": "taken", "details": [1]}}'
    error = runtime.CharterClientError.from_response(httpx.Response(409, content=envelope))
    assert (error.status, error.code, error.message, error.details) == (
        409,
        "CONFLICT",
        "taken",
        [1],
    )
    proxy = runtime.CharterClientError.from_response(httpx.Response(502, content=b"<html>bad"))
    assert (proxy.status, proxy.code, proxy.message) == (502, "HTTP_ERROR", "<html>bad")
    with pytest.raises(runtime.CharterClientError) as caught:
        runtime.decode(httpx.Response(200, content=b'{"id": "a"}'), runtime.Tokens)
    assert (caught.value.status, caught.value.code) == (200, "UNEXPECTED_RESPONSE")
    assert "regenerate" in caught.value.message
    assert runtime.decode(httpx.Response(204), runtime.Tokens) is None


REVEAL = """
from gadgets import AsyncClient, Client

client = Client("http://127.0.0.1:1")
reveal_type(client.Gadget.get("x"))
reveal_type(client.Gadget.list(client.Gadget.query().where("price", "lt", 3)))
reveal_type(client.Counter.get(7).id)
reveal_type(client.rpc.quote("x"))
reveal_type(client.routes.greet("ann", times=1))


async def main() -> None:
    reveal_type(await AsyncClient("http://127.0.0.1:1").rpc.tags(["a"]))
"""


def test_what_a_type_checker_sees(generated: Path) -> None:
    (generated / "reveal.py").write_text(REVEAL)
    done = _mypy(generated, "reveal.py")
    revealed = [line.split('Revealed type is "')[1].rstrip('"') for line in
                done.stdout.splitlines() if "Revealed type is" in line]  # fmt: skip
    assert revealed == [
        "gadgets.models.Gadget",
        "list[gadgets.models.Gadget]",
        "int",
        "gadgets.models.Priced",
        "dict[str, str]",
        "dict[str, int]",
    ], done.stdout


def test_names_that_would_clash_are_renamed(tmp_path: Path) -> None:
    """A table named like a client attribute or a table client's own method gets a trailing
    ``_``; a table named ``Client`` is ``models.Client``; the package still type-checks."""
    (tmp_path / "clash.py").write_text(
        "from charter import App, Field, Table, get\n\n\n"
        "class session(Table):\n"
        "    id: int = Field(primary_key=True)\n"
        "    fr: str = ''\n\n"
        "    @get\n"
        "    def list(self) -> int:\n"
        "        return 1\n\n\n"
        "class rpc(Table):\n"
        "    id: str = Field(primary_key=True)\n\n\n"
        "class Client(Table):\n"
        "    id: str = Field(primary_key=True)\n"
        "    name: str = ''\n\n\n"
        "app = App(tables=[session, rpc, Client])\n"
    )
    done = _charter("gen", "client", "--lang", "python", "-o", "clash_client", "clash.py",
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    client = (tmp_path / "clash_client" / "client.py").read_text()
    assert "self.session_ = SessionTable(self)" in client and "self.rpc_ = RpcTable(self)" in client
    assert "def list_(self, id: int) -> int:" in client
    assert "self.Client = ClientTable(self)" in client  # the model is models.Client
    checked = _mypy(tmp_path, "clash_client")
    assert checked.returncode == 0, checked.stdout + checked.stderr
