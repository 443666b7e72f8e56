"""``charter gen client --lang ts``: the generated package under ``tsc --strict`` (and a misuse
it must refuse at the expected lines), the query builder's URLs read by the server's parser,
the package compiled to JavaScript driving a live server (tests/client_sample.test.ts under
``node --test``), and the drift check.

TypeScript and @types/node come from the npm registry, installed once into
``tests/.cache/node``. Without node or npm the tests skip, unless
``CHARTER_REQUIRE_SERVICES=1``, where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from charter.clients import describe_app
from charter.clients.typescript import HEADER, generate
from charter.query.parser import parse_query_string
from tests import client_app
from tests.servers import Server

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "node"
PASSWORD = "admin-password-1"
PACKAGES = ("typescript@5", "@types/node@20")
TSCONFIG = {
    "compilerOptions": {
        "target": "ES2022",
        "module": "ES2022",
        "moduleResolution": "Bundler",
        "lib": ["ES2022", "DOM"],
        "types": ["node"],
        "strict": True,
        "outDir": "out",
        "skipLibCheck": True,
    },
}


def _unavailable(reason: str) -> None:
    if os.environ.get("CHARTER_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """A ``node_modules`` holding TypeScript 5 and Node's types (installed once)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are needed to test the TypeScript client")
    modules = CACHE / "node_modules"
    if not (modules / ".bin" / "tsc").exists() or not (modules / "@types" / "node").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(
                ["npm", "install", "--prefix", str(CACHE), "--no-audit", "--no-fund",
                 "--no-save", *PACKAGES],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            _unavailable("npm install typescript timed out")
        if done.returncode != 0 or not (modules / ".bin" / "tsc").exists():
            _unavailable(f"npm install {' '.join(PACKAGES)} failed: {done.stderr[-2000:]}")
    return modules


def _charter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "charter.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip


def _tsc(modules: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(modules / ".bin" / "tsc"), *args],
        capture_output=True, text=True, timeout=300, cwd=folder,
    )  # fmt: skip


def _project(folder: Path, modules: Path, *files: str) -> None:
    """A tsconfig in ``folder`` compiling the package ``gadgets`` with ``files``."""
    link = folder / "node_modules"
    if not link.exists():
        link.symlink_to(modules, target_is_directory=True)
    config = {**TSCONFIG, "include": ["gadgets/*.ts", *files]}
    (folder / "tsconfig.json").write_text(json.dumps(config, indent=2))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, node_modules: Path) -> Path:
    """A folder holding the generated package ``gadgets`` and the usage sample."""
    folder = tmp_path_factory.mktemp("tsclient")
    done = _charter(
        "gen", "client", "--lang", "ts", "-o", str(folder / "gadgets"),
        str(HERE / "client_app.py"), cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shutil.copy(HERE / "client_sample.test.ts", folder / "client_sample.test.ts")
    return folder


@pytest.fixture(scope="module")
def compiled(generated: Path, node_modules: Path) -> Path:
    """The package and the sample compiled to JavaScript in ``out``."""
    _project(generated, node_modules, "client_sample.test.ts")
    done = _tsc(node_modules, generated, "-p", ".")
    assert done.returncode == 0, done.stdout + done.stderr
    (generated / "out" / "package.json").write_text('{"type": "module"}\n')
    return generated / "out"


def test_generation_is_stable_and_marked() -> None:
    first = generate(describe_app(client_app.app))
    assert first == generate(describe_app(client_app.app))
    assert sorted(first) == [
        "client.ts", "index.ts", "models.ts", "package.json", "runtime.ts", "tsconfig.json",
    ]  # fmt: skip
    assert all(text.startswith(HEADER) for name, text in first.items() if name.endswith(".ts"))
    assert json.loads(first["package.json"])["type"] == "module"
    assert "dependencies" not in json.loads(first["package.json"])


def test_the_types_follow_the_declarations() -> None:
    models = generate(describe_app(client_app.app))["models.ts"]
    gadget = models.split("export interface Gadget {")[1].split("}")[0]
    create = models.split("export interface GadgetCreate {")[1].split("}")[0]
    assert "cost" not in gadget and "owner: string | null;" in gadget  # returned=False
    assert "owner" not in create and "cost?: number;" in create  # input=False
    assert "  name: string;\n  price: number;" in create  # required on create
    assert 'kind: "tool" | "toy";' in gadget and "tags: string[];" in gadget
    assert "export type GadgetPatch = Partial<GadgetCreate>;" in models
    assert "export interface Priced {\n  total: number;\n  note?: string | null;\n}" in models


def test_the_package_passes_tsc_strict(generated: Path, node_modules: Path) -> None:
    """The package alone, with its own tsconfig (strict, no Node types: browsers too)."""
    link = generated / "gadgets" / "node_modules"
    done = _tsc(node_modules, generated / "gadgets", "-p", ".", "--noEmit")
    assert not link.exists()
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_example_apps_clients_pass_tsc_strict(tmp_path: Path, node_modules: Path) -> None:
    examples = HERE.parent / "examples"
    apps = {"shop_client": examples / "shop" / "app.py", "signup_client": examples / "signup"
            / "signup.py"}  # fmt: skip
    for name, app in apps.items():
        done = _charter("gen", "client", "--lang", "ts", "-o", name, str(app), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        checked = _tsc(node_modules, tmp_path / name, "-p", ".", "--noEmit")
        assert checked.returncode == 0, checked.stdout + checked.stderr


MISUSE = """import { Client, type GadgetCreate, type Quote } from "./gadgets/index.js";

const client = new Client("http://127.0.0.1:1");
client.Gadget.query().where("nmae", "eq", "x");
client.Gadget.query().where("price", "gt", "ten");
client.Gadget.query().where("price", "about", 10);
client.Gadget.query().sort("-nmae");
export const a: GadgetCreate = { name: "no price" };
export const b: GadgetCreate = { name: "x", price: 1, owner: "me" };
void client.rpc.quote(42);
export const q: Quote = { gadget_id: "a", qty: "2" };
export const n: Promise<number> = client.Gadget.label("x");
export const c: number = (await client.Gadget.get("x")).cost;
client.Gadget.query().where("price", "bt", 1);
client.Gadget.query().where("kind", "eq", "boat");
client.Gadget.query().select("cost");
void client.Counter.get("7");
client.Gadget.query().where("price", "bt", [1, 2]).where("kind", "eq", "toy").sort("+name");
"""


def test_tsc_refuses_what_the_server_would_refuse(generated: Path, node_modules: Path) -> None:
    (generated / "misuse.ts").write_text(MISUSE)
    _project(generated, node_modules, "misuse.ts")
    done = _tsc(node_modules, generated, "-p", ".", "--noEmit")
    errors = [line for line in done.stdout.splitlines() if line.startswith("misuse.ts(")]
    lines = sorted({int(line.split("(")[1].split(",")[0]) for line in errors})
    assert lines == list(range(4, 18)), done.stdout  # the last line is right


QUERIES = """
import { Client } from "./gadgets/index.js";

const client = new Client("http://127.0.0.1:1");
const query = client.Gadget.query();
query.where("price", "gt", 10).where("name", "sw", "A&B (x)").where("brand_id", "eq", null);
query.where("price", "bt", [1, 2.5]).where("stock", "ne", 3).where("name", "ct", "50%*!'");
query.sort("-price", "name").select("id", "name", "$id").limit(5, 10).offset(2);
const either = client.Gadget.query();
either.anyOf(either.cond("name", "sw", "An"), either.cond("tags", "ct", "x|y"));
console.log(JSON.stringify([
  query.toQueryString(),
  either.toQueryString(),
  client.Gadget.query().limit(5, 10).toQueryString(),
  client.Gadget.query().where("made", "lt", new Date(Date.UTC(2026, 0, 2))).toQueryString(),
  client.Gadget.query().where("made", "bt", ["2026-01-01", "2026-01-02T10:00:00+01:00"])
    .toQueryString(),
]));
"""


def test_the_query_builder_speaks_the_url_language(
    generated: Path, node_modules: Path, compiled: Path
) -> None:
    (generated / "queries.ts").write_text(QUERIES)
    _project(generated, node_modules, "queries.ts")
    done = _tsc(node_modules, generated, "-p", ".")
    assert done.returncode == 0, done.stdout + done.stderr
    ran = subprocess.run(
        ["node", "out/queries.js"], capture_output=True, text=True, timeout=60, cwd=generated
    )
    assert ran.returncode == 0, ran.stderr
    text, either, window, dated, dated_text = json.loads(ran.stdout)
    assert text == (
        "price=gt=number:10&name=sw=string:A%26B%20%28x%29&brand_id=null"
        "&price=bt=number:1,number:2.5&stock=ne=number:3&name=ct=string:50%25%2A%21%27"
        "&sort(-price,+name)&select(id,name,$id)&limit(5,10)&offset(2)"
    )  # what the Python client writes for the same query
    parsed = parse_query_string(text)  # the server's parser reads what the builder wrote
    values = [c.value for c in parsed.conditions]
    assert values[:3] == [10, "A&B (x)", None] and values[4:] == [3, "50%*!'"]
    assert parsed.select is not None
    assert [item.name for item in parsed.select.items] == ["id", "name", "$id"]
    assert (parsed.limit, parsed.offset) == (5, 2)
    assert either == "[name=sw=string:An|tags=ct=string:x%7Cy]"
    assert len(parse_query_string(either).conditions) == 1  # one any-of group
    window_query = parse_query_string(window)
    assert (window_query.limit, window_query.offset) == (5, 5)  # from 5, up to 10
    assert dated == "made=lt=2026-01-02T00%3A00%3A00.000Z"
    assert parse_query_string(dated).conditions[0].value == "2026-01-02T00:00:00.000Z"
    # a date given as text: unprefixed too, read by the attribute's declared type (as Python's)
    assert dated_text == "made=bt=2026-01-01,2026-01-02T10%3A00%3A00%2B01%3A00"
    low, high = parse_query_string(dated_text).conditions[0].value
    assert (str(low), str(high)) == ("2026-01-01", "2026-01-02T10:00:00+01:00")


def test_the_client_drives_a_live_server(
    compiled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_AUTH", "true")
    monkeypatch.setenv("CHARTER_ADMIN_PASSWORD", PASSWORD)
    database = f"sqlite:///{tmp_path}/client.db"
    with Server(str(HERE / "client_app.py"), "--database", database) as server:
        done = subprocess.run(
            ["node", "--test", "client_sample.test.js"],
            capture_output=True, text=True, timeout=120, cwd=compiled,
            env={**os.environ, "CHARTER_URL": server.url, "CHARTER_PASSWORD": PASSWORD},
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# pass 1" in done.stdout and "# fail 0" in done.stdout, done.stdout


def test_the_drift_check(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text((HERE / "client_app.py").read_text())
    out = tmp_path / "client"
    assert _charter("gen", "client", "--lang", "ts", "-o", str(out), str(app), cwd=tmp_path)
    check = ["gen", "client", "--lang", "ts", "-o", str(out), "--check", str(app)]
    unchanged = _charter(*check, cwd=tmp_path)
    assert unchanged.returncode == 0, unchanged.stderr
    assert "the ts client" in unchanged.stdout and "up to date" in unchanged.stdout
    app.write_text(
        app.read_text().replace("    value: int = 0\n", "    value: int = 0\n    step: int = 1\n")
    )
    changed = _charter(*check, cwd=tmp_path)
    assert changed.returncode == 1
    assert "out of date" in changed.stderr and "models.ts: differs" in changed.stderr
    assert "charter gen client --lang ts -o" in changed.stderr  # how to update it
    _charter("gen", "client", "--lang", "ts", "-o", str(out), str(app), cwd=tmp_path)
    assert _charter(*check, cwd=tmp_path).returncode == 0
    (out / "client.ts").unlink()
    missing = _charter(*check, cwd=tmp_path)
    assert missing.returncode == 1 and "client.ts: missing" in missing.stderr


def test_names_that_would_clash_are_renamed(tmp_path: Path, node_modules: Path) -> None:
    """A table named like a client member or a method named like a table client's own gets a
    trailing ``_``; a table named ``Client`` is ``models.Client``; reserved words are safe, and
    so are tables named like the global types the models would use (Record, Partial)."""
    (tmp_path / "clash.py").write_text(
        "from charter import App, Field, Service, Table, get, rpc\n\n\n"
        "class session(Table):\n"
        "    id: int = Field(primary_key=True)\n"
        "    fr: str = ''\n\n"
        "    @get\n"
        "    def list(self) -> int:\n"
        "        return 1\n\n\n"
        "class routes(Table):\n"
        "    id: str = Field(primary_key=True)\n\n\n"
        "class Client(Table):\n"
        "    id: str = Field(primary_key=True)\n"
        "    name: str = ''\n\n\n"
        "class Record(Table):\n"
        "    id: str = Field(primary_key=True)\n"
        "    data: dict[str, list[int | None]] = {}\n\n\n"
        "class Partial(Table):\n"
        "    id: str = Field(primary_key=True)\n\n\n"
        "class Ops(Service):\n"
        "    @rpc\n"
        "    async def place_order(self, default: int, new: str = 'x') -> int:\n"
        "        return default\n\n\n"
        "app = App(tables=[session, routes, Client, Record, Partial], services=[Ops])\n"
    )
    done = _charter("gen", "client", "--lang", "ts", "-o", "clash_client", "clash.py",
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    client = (tmp_path / "clash_client" / "client.ts").read_text()
    assert "readonly session_: SessionTable;" in client
    assert "readonly routes_: RoutesTable;" in client and "readonly routes: Routes;" in client
    assert "readonly list_ = async (id: number): Promise<number>" in client
    assert "readonly Client: ClientTable;" in client  # the model is models.Client
    assert "readonly placeOrder = async (default_: number, options: { new?: string }" in client
    models = (tmp_path / "clash_client" / "models.ts").read_text()
    assert "data?: { [key: string]: (number | null)[] };" in models  # no global Record
    assert "export type RecordPatch = { [K in keyof RecordCreate]?: RecordCreate[K] };" in models
    checked = _tsc(node_modules, tmp_path / "clash_client", "-p", ".", "--noEmit")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_docs_front_end_example_type_checks(tmp_path: Path, node_modules: Path) -> None:
    """docs/clients.md: its ``ts`` blocks, against the client of the page's app."""
    page = (HERE.parent / "docs" / "clients.md").read_text()
    app = re.findall(r"```python\n(.*?)```", page, re.DOTALL)[0]
    app = app.split("server = TestClient(app)")[0]  # the app, without the in-process server
    (tmp_path / "app.py").write_text(app)
    done = _charter("gen", "client", "--lang", "ts", "-o", "shop_client", "app.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    blocks = re.findall(r"```ts\n(.*?)```", page, re.DOTALL)
    assert blocks and "./shop_client/index.js" in blocks[0]
    (tmp_path / "shop.ts").write_text("\n".join(blocks))
    (tmp_path / "node_modules").symlink_to(node_modules, target_is_directory=True)
    options = {**TSCONFIG["compilerOptions"], "types": []}  # a browser's: no Node types
    config = {"compilerOptions": options, "include": ["shop_client/*.ts", "shop.ts"]}
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    checked = _tsc(node_modules, tmp_path, "-p", ".", "--noEmit")
    assert checked.returncode == 0, checked.stdout + checked.stderr
