"""``map_route`` and ``transaction`` (SPEC section 9), through HTTP on both backends: steps in
order with results by name, atomic and not, callbacks after commit or rollback, validation,
response shaping, the caller's permissions, OpenAPI and ``charter routes``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest

import charter
from charter import (
    App,
    Condition,
    Field,
    FlowContext,
    FlowError,
    Grant,
    Operation,
    Role,
    Table,
    map_route,
    route,
    transaction,
)
from charter.errors import CharterError
from charter.testing import TestClient

Serve = Callable[..., TestClient]


class Account(Table):
    id: str = Field(primary_key=True)
    email: str = Field(indexed=True)
    secret: str = Field(default="s3cret", returned=False)
    note: str = ""


class Card(Table):
    id: str = Field(primary_key=True)
    account_id: str = Field(indexed=True)
    limit: int = Field(default=100, ge=0)


class Ledger(Table):
    id: str = Field(primary_key=True)
    account_id: str = Field(indexed=True)
    amount: int = 0


TABLES = (Account, Card, Ledger)


def _steps(limit: Any = 100) -> list[Operation]:
    return [
        Operation("Account", "create", data=lambda ctx: {"id": ctx.body["id"], "email": "a@x"}),
        Operation(
            "Card",
            "create",
            data=lambda ctx: {"account_id": ctx.results["Account"]["id"], "limit": limit},
        ),
        Operation("Ledger", "create", data=lambda ctx: {"account_id": ctx.body["id"]}),
    ]


def _count(client: TestClient, table: str) -> int:
    return len(client.get(f"/{table}/").json())


def test_steps_run_in_order_and_see_the_earlier_results(serve: Serve) -> None:
    flow = map_route("POST", "/open", operations=_steps())
    client = serve(*TABLES, routes=[flow])
    answer = client.post("/open", json={"id": "acc1"})
    assert answer.status_code == 201
    body = answer.json()
    assert set(body) == {"Account", "Card", "Ledger"}
    assert body["Card"]["account_id"] == "acc1"
    assert "secret" not in body["Account"]  # returned=False is never shown
    assert client.get(f"/Card/{body['Card']['id']}").json()["limit"] == 100


@pytest.mark.parametrize("atomic", [True, False])
def test_a_failing_step(serve: Serve, atomic: bool) -> None:
    events: list[Any] = []

    async def on_error(error: Any, ctx: FlowContext) -> None:
        # After the rollback: the failed steps' writes are gone, even from this transaction.
        events.append((error.step, await Account.get("acc1") is not None))

    flow = map_route(
        "POST",
        "/open",
        atomic=atomic,
        operations=_steps(limit=-5),  # Card's limit must be >= 0: the second step fails
        on_error=on_error,
        on_success=lambda results, ctx: events.append("success"),
    )
    client = serve(*TABLES, routes=[flow])
    answer = client.post("/open", json={"id": "acc1"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "INVALID_PROPERTIES"
    assert error["details"][0]["step"] == "Card"
    assert error["details"][0]["loc"] == ["operations", 1, "Card"]
    assert error["details"][0]["details"][0]["loc"] == ["body", "limit"]
    assert _count(client, "Card") == 0 and _count(client, "Ledger") == 0
    if atomic:
        assert "results" not in answer.json()
        assert _count(client, "Account") == 0  # no trace of the step that succeeded
        assert events == [("Card", False)]
    else:
        assert answer.json()["results"]["Account"]["id"] == "acc1"
        assert _count(client, "Account") == 1  # what succeeded before the failure stays
        assert events == [("Card", True)]


def test_an_atomic_failure_at_commit_leaves_no_trace(serve: Serve) -> None:
    """A duplicate key found only at commit (a concurrent insert) drops every step."""
    client = serve(*TABLES, routes=[map_route("POST", "/open", operations=_steps())])
    assert client.post("/open", json={"id": "acc1"}).status_code == 201
    again = client.post("/open", json={"id": "acc1"})
    assert again.status_code == 409
    assert again.json()["error"]["details"][0]["step"] == "Account"
    assert _count(client, "Card") == 1 and _count(client, "Ledger") == 1


def test_on_success_runs_after_the_commit(serve: Serve) -> None:
    seen: list[Any] = []
    client: TestClient

    async def on_success(results: dict[str, Any], ctx: FlowContext) -> None:
        row = await client.app.database.fetch("Account", results["Account"]["id"])
        seen.append(row is not None)  # committed: storage itself has it

    flow = map_route("POST", "/open", operations=_steps(), on_success=on_success)
    client = serve(*TABLES, routes=[flow])
    assert client.post("/open", json={"id": "acc1"}).status_code == 201
    assert seen == [True]


def test_conditions_transforms_and_every_operation(serve: Serve) -> None:
    async def where_card(ctx: FlowContext) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"account_id": ctx.params["id"]}

    steps = [
        Operation("Account", "read", where=lambda ctx: {"id": ctx.params["id"]}),
        Operation("Card", "update", where=where_card, data=lambda ctx: {"limit": 7}),
        Operation("Ledger", "list", where={"account_id": "acc1"}, transform=len, name="entries"),
        Operation(
            "Ledger",
            "upsert",
            condition=lambda ctx: ctx.query.get("log") == "yes",
            data=lambda ctx: {"id": "L9", "account_id": ctx.params["id"], "amount": 5},
        ),
        Operation(
            "Account",
            "delete",
            where={"id": "gone"},
            name="removed",
            condition=lambda ctx: "log" in ctx.query,
        ),
    ]
    flow = map_route("PATCH", "/accounts/{id}", operations=steps, status=200)
    client = serve(*TABLES, routes=[map_route("POST", "/open", operations=_steps()), flow])
    client.post("/open", json={"id": "acc1"})
    client.post("/open", json={"id": "gone"})
    answer = client.patch("/accounts/acc1?log=yes")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["Account"]["id"] == "acc1"
    assert body["Card"]["limit"] == 7
    assert body["entries"] == 1
    assert body["Ledger"]["id"] == "L9"
    assert body["removed"]["id"] == "gone"
    assert client.get("/Account/gone").status_code == 404
    skipped = client.patch("/accounts/acc1")
    assert skipped.json()["Ledger"] is None  # the condition was false: the step was skipped
    assert skipped.json()["removed"] is None
    missing = client.patch("/accounts/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["details"][0]["step"] == "Account"


def test_update_and_delete_act_on_one_record(serve: Serve) -> None:
    flow = map_route(
        "POST",
        "/bulk",
        operations=[Operation("Card", "update", where={"limit": 100}, data={"limit": 1})],
    )
    client = serve(*TABLES, routes=[map_route("POST", "/open", operations=_steps()), flow])
    client.post("/open", json={"id": "a"})
    client.post("/open", json={"id": "b"})
    answer = client.post("/bulk")
    assert answer.status_code == 409  # where matched two records: nothing changed
    assert {c["limit"] for c in client.get("/Card/").json()} == {100}


def test_a_step_finds_by_attribute_what_an_earlier_step_wrote(serve: Serve) -> None:
    flow = map_route(
        "POST",
        "/find",
        operations=[
            Operation("Account", "create", data=lambda ctx: dict(ctx.body)),
            Operation(
                "Account", "read", name="found", where=lambda ctx: {"email": ctx.body["email"]}
            ),
            Operation("Account", "list", name="all"),
        ],
        response={
            "transform": lambda results: {
                "found": results["found"]["id"],
                "all": sorted(a["id"] for a in results["all"]),
            }
        },
    )
    client = serve(*TABLES, routes=[flow])
    client.put("/Account/old", json={"email": "old@x"})
    answer = client.post("/find", json={"id": "new", "email": "new@x"})
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"found": "new", "all": ["new", "old"]}


class Plan(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    plan: Literal["free", "pro"] = "free"


def test_validate_with_a_schema_or_a_function(serve: Serve) -> None:
    def check(body: Any) -> list[Any]:
        problems: list[Any] = []
        if "@" not in body.get("email", ""):
            problems.append({"field": "email", "message": "not an email address"})
        if len(body.get("password", "")) < 8:
            problems.append("password too short")
        return problems

    by_type = map_route("POST", "/typed", operations=_steps(), validate=Plan)
    by_json = map_route(
        "POST",
        "/json",
        operations=_steps(),
        validate={"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
    )
    by_fn = map_route("POST", "/fn", operations=_steps(), validate=check)
    client = serve(*TABLES, routes=[by_type, by_json, by_fn])
    bad = client.post("/typed", json={"id": 5, "other": 1})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "INVALID_PROPERTIES"
    assert client.post("/json", json={"nope": 1}).status_code == 422
    answer = client.post("/fn", json={"email": "x", "password": "short"})
    assert answer.status_code == 422
    assert answer.json()["error"]["details"] == [
        {
            "loc": ["body", "email"],
            "message": "not an email address",
            "code": "UNMATCHING_PROPERTIES",
        },
        {"loc": ["body"], "code": "UNMATCHING_PROPERTIES", "message": "password too short"},
    ]
    assert _count(client, "Account") == 0
    assert client.post("/typed", json={"id": "t1"}).status_code == 201
    assert client.post("/json", json={"id": "t2"}).status_code == 201
    good = {"id": "t3", "email": "a@b", "password": "long enough"}
    assert client.post("/fn", json=good).status_code == 201


def test_the_response_picks_omits_and_transforms(serve: Serve) -> None:
    omit = map_route(
        "POST", "/o", operations=_steps(), response={"entity": "Account", "omit": ["email"]}
    )
    pick = map_route(
        "POST", "/p", operations=_steps(), response={"entity": "Card", "pick": ["limit"]}
    )
    shaped = map_route(
        "POST",
        "/t",
        operations=_steps(),
        response={"transform": lambda r: {"account": r["Account"]["id"], "ok": True}},
    )
    client = serve(*TABLES, routes=[omit, pick, shaped])
    assert client.post("/o", json={"id": "a"}).json() == {"id": "a", "note": ""}
    assert client.post("/p", json={"id": "b"}).json() == {"limit": 100}
    assert client.post("/t", json={"id": "c"}).json() == {"account": "c", "ok": True}


def test_declarations_are_checked_when_written() -> None:
    with pytest.raises(CharterError):
        Operation("Account", "explode")
    with pytest.raises(CharterError):
        Operation("Account", "create")  # no data
    with pytest.raises(CharterError):
        Operation("Account", "update", data={"a": 1})  # no where
    with pytest.raises(CharterError):
        transaction([Operation("Account", "read", where={"id": 1})] * 2)  # one name twice
    with pytest.raises(CharterError):
        map_route("POST", "/x", operations=_steps(), response={"entity": "Nope"})
    with pytest.raises(CharterError):
        map_route("POST", "/x", operations=_steps(), response={"fields": ["a"]})
    with pytest.raises(CharterError):
        map_route("POST", "/x", operations=transaction(_steps()), atomic=False)


def test_static_attributes_are_checked_when_the_app_is_built(database: str) -> None:
    typo_where = Operation("Card", "read", where={"acount_id": "a"})
    typo_data = Operation("Card", "create", data={"acount_id": "a"})
    no_table = Operation("Nope", "list")
    for step in (typo_where, typo_data, no_table):
        with pytest.raises(CharterError):
            App(tables=list(TABLES), routes=[map_route("POST", "/x", operations=[step])],
                database=database)  # fmt: skip


# -- permissions: every step runs as the caller ----------------------------------------------------

ALL = ("Account", "Card", "Ledger")
ROLES = [
    Role("clerk", tables={"Account": Grant(read=True, insert=True), "Card": Grant(read=True)}),
    Role("teller", tables={n: Grant(read=True, insert=True) for n in ALL}),
    Role(
        "limited",
        tables={
            "Account": Grant(read=True, insert=True, attributes={"id": "rw", "email": "r"}),
            "Card": Grant(read=True, insert=True),
            "Ledger": Grant(read=True, insert=True),
        },
    ),
]


def _authed(serve: Serve, *routes: Any) -> TestClient:
    client = serve(*TABLES, routes=list(routes), auth=True, roles=ROLES)
    for name in ("clerk", "teller", "limited"):
        client.run(charter.auth.add_user(client.app, name, "password-" + name, role=name))
    return client


def _as(name: str) -> tuple[str, str]:
    return (name, "password-" + name)


def test_each_step_needs_the_callers_rights(serve: Serve) -> None:
    client = _authed(serve, map_route("POST", "/open", operations=_steps()))
    anonymous = client.post("/open", json={"id": "x"})
    assert anonymous.status_code == 401 and "www-authenticate" in anonymous.headers
    clerk = client.post("/open", json={"id": "x"}, auth=_as("clerk"))
    assert clerk.status_code == 403  # it may create Accounts, not Cards
    assert clerk.json()["error"]["details"][0]["step"] == "Card"
    limited = client.post("/open", json={"id": "x"}, auth=_as("limited"))
    assert limited.status_code == 403  # it may not write Account.email
    assert client.post("/open", json={"id": "x"}, auth=_as("teller")).status_code == 201
    assert len(client.get("/Account/", auth=_as("teller")).json()) == 1  # the others: no trace


def test_a_privileged_route_runs_as_server_code(serve: Serve) -> None:
    flow = map_route(
        "POST", "/open", operations=_steps(), privileged=True, response={"entity": "Account"}
    )
    client = _authed(serve, flow)
    answer = client.post("/open", json={"id": "x"})
    assert answer.status_code == 201
    assert answer.json() == {"id": "x", "email": "a@x", "note": ""}  # never returned=False


def test_roles_restrict_who_may_call(serve: Serve) -> None:
    flow = map_route("POST", "/open", operations=_steps(), privileged=True, roles=["teller"])
    client = _authed(serve, flow)
    assert client.post("/open", json={"id": "x"}).status_code == 401
    assert client.post("/open", json={"id": "x"}, auth=_as("clerk")).status_code == 403
    assert client.post("/open", json={"id": "x"}, auth=_as("teller")).status_code == 201


class Note(Table):
    id: str = Field(primary_key=True)
    owner: str = Field(indexed=True)

    def allow_create(self, user: Any) -> bool:
        return self.owner != "mallory"

    @classmethod
    def read_filter(cls, user: Any) -> Condition | None:
        return None if user is None else Condition("owner", "equals", user.username)


def test_hooks_and_row_rules_apply_to_steps(serve: Serve) -> None:
    create = map_route(
        "POST",
        "/notes",
        operations=[
            Operation(
                "Note",
                "create",
                data=lambda ctx: {"id": ctx.body["id"], "owner": ctx.body["owner"]},
            )
        ],
    )
    read = map_route(
        "GET",
        "/notes/{id}",
        operations=[Operation("Note", "read", where=lambda ctx: {"id": ctx.params["id"]})],
    )
    writer = Role("writer", tables={"Note": Grant(read=True, insert=True)})
    client = serve(Note, routes=[create, read], auth=True, roles=[writer])
    for name in ("ann", "bob"):
        client.run(charter.auth.add_user(client.app, name, "password-" + name, role="writer"))
    hooked = client.post("/notes", json={"id": "n0", "owner": "mallory"}, auth=_as("ann"))
    assert hooked.status_code == 403  # allow_create said no
    outside = client.post("/notes", json={"id": "n1", "owner": "bob"}, auth=_as("ann"))
    assert outside.status_code == 403  # the record would be outside ann's read rule
    assert (
        client.post("/notes", json={"id": "n2", "owner": "ann"}, auth=_as("ann")).status_code == 201
    )
    assert client.get("/notes/n2", auth=_as("ann")).status_code == 200
    assert client.get("/notes/n2", auth=_as("bob")).status_code == 404  # bob's rule hides it


class Vault(Table):
    id: str = Field(primary_key=True)
    level: int = 0

    def allow_read(self, user: Any) -> bool:
        return self.level < 5


def test_a_privileged_route_still_asks_allow_read(serve: Serve) -> None:
    """``privileged`` lifts grants and rules, not the ``allow_*`` hooks: a read step denied by
    ``allow_read`` finds nothing (404), a list step leaves the record out."""
    by_id = Operation("Vault", "read", where=lambda ctx: {"id": ctx.params["id"]})
    ids = Operation("Vault", "list", where=charter.Query(select=["id"]))
    listed = map_route("GET", "/vaults", privileged=True, operations=[Operation("Vault", "list")])
    read = map_route("GET", "/vaults/{id}", privileged=True, operations=[by_id])
    selected = map_route("GET", "/levels", privileged=True, operations=[ids])
    client = serve(Vault, routes=[listed, read, selected])
    client.run(Vault.put({"id": "top", "level": 9}))
    client.run(Vault.put({"id": "low", "level": 1}))
    assert client.get("/vaults").json() == {"Vault": [{"id": "low", "level": 1}]}
    assert client.get("/vaults/top").status_code == 404
    assert client.get("/vaults/low").status_code == 200
    assert client.get("/levels").json() == {"Vault": [{"id": "low"}]}


def test_a_transform_sees_only_what_the_caller_may(serve: Serve) -> None:
    """A step's ``transform`` gets the record as the caller may see it: spreading it into the
    answer shows neither ``returned=False`` attributes nor those the caller's role may not
    read (a privileged route's: what any client may see)."""
    step = Operation("Account", "read", where=lambda ctx: {"id": ctx.params["id"]},
                     transform=lambda r: {**r, "label": r["email"].upper()})  # fmt: skip
    as_caller = map_route("GET", "/acct/{id}", roles=True, operations=[step],
                          response={"entity": "Account"})  # fmt: skip
    as_server = map_route("GET", "/server/{id}", privileged=True, operations=[step],
                          response={"entity": "Account"})  # fmt: skip
    reader = Role("reader", tables={"Account": Grant(read=True, attributes={"email": "r"})})
    client = serve(*TABLES, routes=[as_caller, as_server], auth=True, roles=[reader])
    client.run(charter.auth.add_user(client.app, "rita", "password-rita", role="reader"))
    client.run(Account.put({"id": "a1", "email": "a@x", "secret": "hash", "note": "private"}))
    assert client.get("/Account/a1", auth=_as("rita")).json() == {"id": "a1", "email": "a@x"}
    mine = client.get("/acct/a1", auth=_as("rita"))
    assert mine.json() == {"id": "a1", "email": "a@x", "label": "A@X"}
    server = client.get("/server/a1").json()
    assert server == {"id": "a1", "email": "a@x", "note": "private", "label": "A@X"}


# -- a flow called from a handler ------------------------------------------------------------------


def test_a_flow_called_in_a_handler_joins_its_transaction(serve: Serve) -> None:
    open_account = transaction(_steps(), atomic=False)
    done: list[str] = []
    rolled = transaction(_steps(), on_success=lambda r, c: done.append(r["Account"]["id"]))

    @route("POST", "/handler")
    async def handler(payload: dict[str, Any]) -> dict[str, Any]:
        results = await rolled({"id": payload["id"]})
        try:
            await open_account({"id": payload["id"]})  # Account exists: the first step fails
        except FlowError as error:
            return {"failed": error.step, "card": results["Card"]["account_id"]}
        return {}

    @route("POST", "/boom")
    async def boom(payload: dict[str, Any]) -> None:
        await rolled({"id": payload["id"]})
        raise RuntimeError("the handler fails after the flow: nothing commits")

    client = serve(*TABLES, routes=[handler, boom])
    assert client.post("/handler", json={"id": "h1"}).json() == {"failed": "Account", "card": "h1"}
    assert _count(client, "Account") == 1 and _count(client, "Card") == 1
    assert client.post("/boom", json={"id": "h2"}).status_code == 500
    assert _count(client, "Account") == 1
    assert done == ["h1"]  # after h1's commit; h2 never committed


def test_openapi_and_charter_routes_list_mapped_routes(serve: Serve, tmp_path: Path) -> None:
    flow = map_route(
        "POST",
        "/open",
        operations=_steps(),
        validate=Plan,
        response={"entity": "Account", "omit": ["note"]},
    )
    client = _authed(serve, flow)
    document = client.get("/openapi.json", auth=_as("teller")).json()
    operation = document["paths"]["/open"]["post"]
    assert [s["table"] for s in operation["x-operations"]] == ["Account", "Card", "Ledger"]
    assert operation["x-atomic"] is True
    schema = operation["responses"]["201"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"id", "email"}
    assert "/open" not in client.get("/openapi.json", auth=_as("clerk")).json()["paths"]
    app_file = tmp_path / "flows_app.py"
    app_file.write_text(
        "from charter import App, Operation, map_route\n"
        "from tests.test_mapped_routes import TABLES, _steps\n"
        "app = App(tables=list(TABLES), routes=[map_route('POST', '/open', operations=_steps())],"
        f" database='sqlite:///{tmp_path}/r.db')\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "charter.cli", "routes", f"{app_file}:app"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    assert "/open" in out and "mapped" in out and "Card.create" in out


def test_content_negotiation_happens_before_any_write(serve: Serve) -> None:
    client = serve(*TABLES, routes=[map_route("POST", "/open", operations=_steps())])
    refused = client.post("/open", json={"id": "a"}, headers={"accept": "image/png"})
    assert refused.status_code == 406
    assert _count(client, "Account") == 0
    packed = client.post("/open", json={"id": "b"}, headers={"accept": "application/msgpack"})
    assert packed.status_code == 201
    assert msgspec.msgpack.decode(packed.content)["Account"]["id"] == "b"


def test_what_the_callbacks_write_is_kept(serve: Serve) -> None:
    """The callbacks run outside the request's transaction: what they write commits on its
    own, even when the flow's writes were all dropped."""

    async def audit(what: str, account: str) -> None:
        await Ledger.put({"id": f"{what}-{account}", "account_id": account})

    ok = map_route("POST", "/ok", operations=_steps(),
                   on_success=lambda results, ctx: audit("ok", ctx.body["id"]))  # fmt: skip
    bad = map_route("POST", "/bad", operations=_steps(limit=-1),
                    on_error=lambda error, ctx: audit("failed", ctx.body["id"]))  # fmt: skip
    client = serve(*TABLES, routes=[ok, bad])
    assert client.post("/ok", json={"id": "a"}).status_code == 201
    assert client.post("/bad", json={"id": "b"}).status_code == 422
    assert client.get("/Ledger/ok-a").status_code == 200
    assert client.get("/Ledger/failed-b").status_code == 200
    assert client.get("/Account/b").status_code == 404


def test_a_flow_outside_a_request(database: str) -> None:
    kept = transaction(_steps(limit=-1), atomic=False)
    app = App(tables=list(TABLES), database=database)
    with TestClient(app) as client:
        with pytest.raises(FlowError) as raised:
            client.run(kept({"id": "s1"}))
        assert raised.value.step == "Card"
        assert client.get("/Account/s1").status_code == 200  # committed: it succeeded
        assert client.run(transaction(_steps())({"id": "s2"}))["Card"]["account_id"] == "s2"
        assert client.get("/Card/").json()[0]["account_id"] == "s2"


def test_a_create_without_the_insert_right_reveals_no_key(serve: Serve) -> None:
    """A non-atomic create checks for a taken key only once the caller holds the insert
    right: a caller without it gets 401 whether or not the key exists."""
    step = Operation("Account", "create", data=lambda ctx: {"id": ctx.body["id"], "email": "e"})
    probe = map_route("POST", "/probe", atomic=False, roles="unauthenticated", operations=[step])
    client = serve(*TABLES, routes=[probe], auth=True)
    client.run(Account.put({"id": "alice", "email": "a@x"}))
    for key in ("alice", "nobody"):
        answer = client.post("/probe", json={"id": key})
        assert answer.status_code == 401, (key, answer.json())
        assert answer.json()["error"]["code"] == "UNAUTHORIZED"


class NameTaken(Exception):
    status_code = 409
    code = "NAME_TAKEN"


def test_an_exception_with_a_status_code_in_a_step_is_that_status(serve: Serve) -> None:
    """SPEC 1: an exception carrying ``status_code`` answers that status, from a step too."""

    def taken(ctx: FlowContext) -> dict[str, Any]:
        raise NameTaken("that name is taken")

    flow = map_route("POST", "/open", operations=[Operation("Account", "create", data=taken)])
    client = serve(*TABLES, routes=[flow])
    answer = client.post("/open", json={})
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "NAME_TAKEN"
    assert error["details"][0]["step"] == "Account"
    assert error["details"][0]["message"] == "that name is taken"
