"""Users and roles in system tables, HTTP Basic sign-in, the anonymous role (SPEC section 6).

Every test signs in for real (``auth=(name, password)`` on the test client) on both backends.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from argon2 import PasswordHasher

import charter
from charter import (
    App,
    CharterError,
    Contract,
    Field,
    Grant,
    Role,
    Service,
    Table,
    perms,
    route,
    rpc,
)
from charter.testing import TestClient


class Note(Table):
    id: str = Field(primary_key=True)
    text: str = ""
    owner: str = ""


class Desk(Service):
    @rpc(egroup="desk", perm=perms.RX)
    async def look(self, n: int) -> int:
        return n

    @rpc(egroup="desk", perm=perms.RWX)
    async def change(self, n: int) -> int:
        return n


@route("GET", "/who", contract=Contract(roles=True))
async def who() -> dict[str, Any]:
    context = charter.current_context()
    assert context is not None and context.user is not None
    user = context.user
    return {
        "username": user.username,
        "role": user.role,
        "super_user": user.super_user,
        "id": user.id,
    }


@route("GET", "/welcome", contract=Contract(roles="unauthenticated-only"))
async def welcome() -> str:
    return "hello, stranger"


ROLES = [
    Role("clerk", tables={"Note": Grant(read=True)}, egroups={"desk": perms.RX}),
    Role("anonymous", egroups={"desk": perms.R}),
    Role("boss", super_user=True),
]


def _app(database: str, **kwargs: Any) -> App:
    options: dict[str, Any] = {"auth": True, "roles": ROLES}
    options.update(kwargs)
    return App(tables=[Note], services=[Desk], routes=[who, welcome], database=database, **options)


@pytest.fixture
def client(database: str) -> Any:
    app = _app(database)
    with TestClient(app) as c:
        c.run(charter.auth.add_user(app, "ann", "ann-password", role="clerk"))
        yield c


def test_a_signed_in_user_acts_as_its_role(client: TestClient) -> None:
    r = client.get("/who", auth=("ann", "ann-password"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["username"] == "ann" and body["role"] == "clerk" and not body["super_user"]
    assert len(body["id"]) == 32  # a stable id for row rules, not the name
    assert client.post("/rpc/look", json={"n": 1}, auth=("ann", "ann-password")).json() == 1
    denied = client.post("/rpc/change", json={"n": 1}, auth=("ann", "ann-password"))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "FORBIDDEN"


def test_a_request_without_credentials_acts_as_anonymous(client: TestClient) -> None:
    r = client.get("/who")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic")
    assert client.get("/welcome").status_code == 200
    assert client.get("/welcome", auth=("ann", "ann-password")).status_code == 403
    # anonymous was granted R on the egroup, not X
    assert client.post("/rpc/look", json={"n": 1}).status_code == 401


def test_wrong_password_and_unknown_user_answer_alike(client: TestClient) -> None:
    wrong = client.get("/who", auth=("ann", "not-it"))
    unknown = client.get("/who", auth=("nobody", "not-it"))
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    # Both pay one Argon2 verification: an unknown name is not answered early.
    started = time.perf_counter()
    for _ in range(3):
        client.get("/who", auth=("nobody", "x"))
    unknown_time = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(3):
        client.get("/who", auth=("ann", "x"))
    wrong_time = time.perf_counter() - started
    assert unknown_time > wrong_time / 4  # same order of magnitude, not a 100x shortcut


@pytest.mark.parametrize(
    "header",
    ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest abc", "Basic"],
)
def test_malformed_credentials_are_401_not_anonymous(client: TestClient, header: str) -> None:
    r = client.get("/welcome", headers={"authorization": header})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "UNAUTHORIZED"


def test_users_api(client: TestClient) -> None:
    app: Any = client.app
    with pytest.raises(charter.Conflict):
        client.run(charter.auth.add_user(app, "ann", "again-password", role="clerk"))
    with pytest.raises(charter.ValidationError):
        client.run(charter.auth.add_user(app, "a:b", "password", role="clerk"))
    with pytest.raises(charter.ValidationError):
        client.run(charter.auth.add_user(app, "norole", "password"))
    client.run(charter.auth.set_password(app, "ann", "new-password"))
    assert client.get("/who", auth=("ann", "ann-password")).status_code == 401
    assert client.get("/who", auth=("ann", "new-password")).status_code == 200
    client.run(charter.auth.set_role(app, "ann", "boss"))
    assert client.get("/who", auth=("ann", "new-password")).json()["super_user"] is True
    users = client.run(charter.auth.list_users(app))
    assert [u.username for u in users] == ["ann"]
    assert "argon2" not in repr(users)
    assert client.run(charter.auth.remove_user(app, "ann")) is True
    assert client.run(charter.auth.remove_user(app, "ann")) is False
    assert client.get("/who", auth=("ann", "new-password")).status_code == 401


def test_passwords_are_argon2id_and_rehashed_when_parameters_change(client: TestClient) -> None:
    app: Any = client.app
    directory = app.directory
    stored = client.run(directory.find("ann"))
    assert stored.password_hash.startswith("$argon2id$")
    # A hash made with weaker parameters (as an older release would have) is replaced at sign-in.
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("old-password")

    fields = {f: getattr(stored, f) for f in stored.__struct_fields__}
    body = charter.auth.directory._encode({**fields, "password_hash": old}).decode()

    async def plant() -> None:
        await directory._write(lambda txn: txn.put("_charter_users", "ann", body))

    client.run(plant())
    assert client.get("/who", auth=("ann", "old-password")).status_code == 200
    fresh = client.run(directory.find("ann")).password_hash
    assert fresh != old and "m=8192" not in fresh and fresh.startswith("$argon2id$")
    assert client.get("/who", auth=("ann", "old-password")).status_code == 200


def test_declared_roles_are_kept_in_step_at_start(database: str) -> None:
    app = _app(database)
    with TestClient(app) as c:
        c.run(charter.auth.add_role(app, Role("temp", tables={"Note": Grant(read=True)})))
        with pytest.raises(charter.Conflict):
            c.run(charter.auth.add_role(app, Role("clerk")))
        names = [r.name for r in c.run(charter.auth.list_roles(app))]
        assert names == ["anonymous", "boss", "clerk", "temp"]
    # The next start declares fewer roles: the dropped declared role goes, the added one stays.
    app = _app(database, roles=[Role("clerk", tables={"Note": Grant(read=True, insert=True)})])
    with TestClient(app) as c:
        roles = {r.name: r for r in c.run(charter.auth.list_roles(app))}
        assert sorted(roles) == ["clerk", "temp"]
        assert roles["clerk"].tables["Note"].insert is True


def test_first_super_user_from_the_environment(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(database)
    with TestClient(app) as c:
        assert c.run(charter.auth.list_users(app)) == []  # never a default user or password
    monkeypatch.setenv("CHARTER_ADMIN_PASSWORD", "root-password")
    monkeypatch.setenv("CHARTER_ADMIN_USER", "root")
    app = _app(database)
    with TestClient(app) as c:
        body = c.get("/who", auth=("root", "root-password")).json()
        assert body["username"] == "root" and body["super_user"] is True
    # A later start does not reset a password that was changed since.
    app = _app(database)
    with TestClient(app) as c:
        c.run(charter.auth.set_password(app, "root", "changed-password"))
    app = _app(database)
    with TestClient(app) as c:
        assert c.get("/who", auth=("root", "root-password")).status_code == 401
        assert c.get("/who", auth=("root", "changed-password")).status_code == 200


def test_charter_auth_variable_turns_auth_on(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_AUTH", "true")
    app = App(tables=[Note], routes=[who], database=database)
    with TestClient(app) as c:
        assert c.get("/who").status_code == 401


def test_with_auth_off_every_request_is_a_super_user(database: str) -> None:
    app = App(tables=[Note], services=[Desk], database=database, roles=ROLES)
    with TestClient(app) as c:
        assert c.post("/rpc/change", json={"n": 2}).json() == 2


def test_role_declarations_are_checked() -> None:
    with pytest.raises(CharterError, match="not a table"):
        App(tables=[Note], roles=[Role("r", tables={"Nope": Grant(read=True)})])
    with pytest.raises(CharterError, match="not an attribute"):
        App(tables=[Note], roles=[Role("r", tables={Note: Grant(attributes={"nope": "r"})})])
    with pytest.raises(CharterError, match="two roles"):
        App(tables=[Note], roles=[Role("r"), Role("r")])
    with pytest.raises(CharterError, match="attribute right"):
        Grant(attributes={"text": "rx"})
    with pytest.raises(CharterError, match="Charter's own"):

        class Sneaky(Table, name="_charter_users"):
            username: str = Field(primary_key=True)

        App(tables=[Sneaky])


def test_openapi_declares_how_to_sign_in_only_when_auth_is_on(database: str) -> None:
    from openapi_spec_validator import validate

    with TestClient(_app(database)) as c:
        doc = c.get("/openapi.json").json()
        validate(doc)
        schemes = doc["components"]["securitySchemes"]
        assert schemes["basic"] == {"type": "http", "scheme": "basic"}
        assert schemes["bearer"]["scheme"] == "bearer"
        assert schemes["cookie"]["in"] == "cookie"
        assert {} in doc["security"] and {"bearer": []} in doc["security"]
    with TestClient(App(tables=[Note], database=database)) as c:
        doc = c.get("/openapi.json").json()
        assert "securitySchemes" not in doc["components"] and "security" not in doc


def test_system_tables_are_not_served(client: TestClient) -> None:
    root = ("root", "root-password")
    client.run(charter.auth.add_user(client.app, *root, super_user=True))  # type: ignore[arg-type]
    for path in (
        "/_charter_users/",
        "/_charter_users/ann",
        "/_charter_roles/",
        "/_charter_sessions/",
    ):
        for who in (None, root):
            r = client.get(path, auth=who)
            assert r.status_code == 404, (path, who, r.status_code)
            assert b"argon2" not in r.content
    doc = client.get("/openapi.json", auth=root).content
    assert b"_charter" not in doc and b"password_hash" not in doc


def test_responses_vary_by_credentials_when_auth_is_on(database: str) -> None:
    # A shared cache must not serve one user's view (or anonymous's) to another.
    app = _app(database, cors=charter.CORS(allow_origins=["http://x.test"]))
    with TestClient(app) as c:
        c.run(charter.auth.add_user(app, "ann", "ann-password", role="clerk"))
        for response in (
            c.get("/who", auth=("ann", "ann-password")),
            c.get("/Note/"),
            c.get("/Note/", auth=("ann", "ann-password"), headers={"origin": "http://x.test"}),
        ):
            vary = {v.strip().lower() for v in response.headers["vary"].split(",")}
            assert {"authorization", "cookie"} <= vary, response.headers
        assert "origin" in vary  # CORS's own Vary is kept
    with TestClient(App(tables=[Note], database=database)) as c:
        assert "vary" not in c.get("/Note/").headers


def test_a_browser_with_a_session_cookie_is_not_offered_basic(client: TestClient) -> None:
    # A Basic challenge makes a browser open its own sign-in box over the page.
    r = client.get("/who", headers={"cookie": "charter_session=stale"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/who").headers["www-authenticate"].startswith("Basic")  # curl, scripts
