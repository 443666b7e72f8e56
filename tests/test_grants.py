"""``charter.runtime.grants``: RPC egroup bits and contract route roles, checked in one place.

Sign-in does not exist yet, so a served request has no role and acts as a super user (SPEC 6):
every check passes. The checks are real all the same: a ``RequestContext`` carrying a user and
a role that is not super, as the identity layer will build one, is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from charter import (
    App,
    CharterError,
    Contract,
    Forbidden,
    Request,
    RequestContext,
    Service,
    Unauthorized,
    perms,
    route,
    rpc,
)
from charter.runtime.grants import require
from charter.testing import TestClient


@dataclass
class Role:
    """What the identity layer will supply: a name, super_user, and bits per egroup."""

    name: str
    super_user: bool = False
    egroups: Mapping[str, int] = field(default_factory=dict)


CLERK = Role("clerk", egroups={"orders": perms.R | perms.X})
ADMIN = Role("admin", super_user=True)
ANONYMOUS = Role("anonymous")

calls: list[str] = []


class Orders(Service):
    @rpc(egroup="orders", perm=perms.RX)
    async def look(self, n: int) -> int:
        calls.append("look")
        return n

    @rpc(egroup="orders", perm=perms.RWX)
    async def place(self, n: int) -> int:
        calls.append("place")
        return n

    @rpc  # no egroup: only super users, once roles exist
    async def tidy(self) -> str:
        calls.append("tidy")
        return "tidied"

    @rpc(perm=perms.NONE)  # asks for no bit: anyone
    async def hello(self) -> str:
        return "hello"


@route("POST", "/admin-only", contract=Contract(roles=["admin", "clerk"]))
async def admin_only(payload: dict[str, Any]) -> str:
    calls.append("admin_only")
    return "ok"


@route("GET", "/members", contract=Contract(roles=True))
async def members() -> str:
    return "ok"


@route("GET", "/sign-up", contract=Contract(roles="unauthenticated-only"))
async def sign_up() -> str:
    return "ok"


@route("GET", "/open", contract=Contract(roles="unauthenticated"))
async def open_to_all() -> str:
    return "ok"


@pytest.fixture
def app(tmp_path: Any) -> App:
    calls.clear()
    return App(
        services=[Orders],
        routes=[admin_only, members, sign_up, open_to_all],
        database=f"sqlite:///{tmp_path}/g.db",
    )


def _call(app: App, method: str, path: str, body: bytes, user: Any, role: Any) -> Any:
    """Run the endpoint of ``method path`` as ``user`` with ``role``, as a request would."""

    async def run() -> Any:
        route_, params = app.router.match(method, path)
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"content-type", b"application/json")],
        }
        sent = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return sent.pop(0) if sent else {"type": "http.disconnect"}

        request = Request(scope, receive, app.config.max_body_size)
        with RequestContext(request, storage=app.database) as context:
            context.user = user
            context.role = role
            return await route_.handler(request, **params)

    return asyncio.run(run())


# -- served requests: auth is off, every request acts as a super user ----------------------------


def test_with_auth_off_every_check_passes(app: App) -> None:
    with TestClient(app) as client:
        assert client.post("/rpc/place", json=[3]).json() == 3
        assert client.post("/rpc/tidy", json=[]).json() == "tidied"
        assert client.post("/admin-only", json={}).json() == "ok"
        assert client.get("/members").json() == "ok"
        assert client.get("/sign-up").json() == "ok"


# -- RPC: granted & required == required ------------------------------------------------------


def test_rpc_passes_when_the_grant_holds_every_required_bit(app: App) -> None:
    response = _call(app, "POST", "/rpc/look", b"[5]", "ann", CLERK)
    assert response.status == 200 and response.body == b"5"
    assert calls == ["look"]


def test_rpc_refuses_a_signed_in_role_missing_a_bit_with_403(app: App) -> None:
    # clerk holds R and X on "orders"; place needs W too.
    with pytest.raises(Forbidden):
        _call(app, "POST", "/rpc/place", b"[5]", "ann", CLERK)
    assert calls == []


def test_the_grant_is_checked_before_the_arguments_are_read(app: App) -> None:
    # An invalid body from a caller without the grant is refused (403), not described (422).
    with pytest.raises(Forbidden):
        _call(app, "POST", "/rpc/place", b'["not a number"]', "ann", CLERK)


def test_rpc_refuses_an_anonymous_request_with_401(app: App) -> None:
    with pytest.raises(Unauthorized):
        _call(app, "POST", "/rpc/look", b"[5]", None, ANONYMOUS)


def test_rpc_without_egroup_is_for_super_users_only(app: App) -> None:
    with pytest.raises(Forbidden):
        _call(app, "POST", "/rpc/tidy", b"[]", "ann", CLERK)
    assert _call(app, "POST", "/rpc/tidy", b"[]", "root", ADMIN).status == 200
    assert _call(app, "POST", "/rpc/hello", b"[]", None, ANONYMOUS).status == 200


def test_a_super_user_passes_every_rpc(app: App) -> None:
    assert _call(app, "POST", "/rpc/place", b"[1]", "root", ADMIN).status == 200
    assert calls == ["place"]


# -- contract routes: roles -----------------------------------------------------------------------


def test_route_admits_only_the_named_roles(app: App) -> None:
    assert _call(app, "POST", "/admin-only", b"{}", "ann", CLERK).status == 200
    with pytest.raises(Forbidden):
        _call(app, "POST", "/admin-only", b"{}", "bob", Role("guest"))
    with pytest.raises(Unauthorized):
        _call(app, "POST", "/admin-only", b"{}", None, ANONYMOUS)
    assert calls == ["admin_only"]


def test_roles_true_admits_any_signed_in_user(app: App) -> None:
    assert _call(app, "GET", "/members", b"", "bob", Role("guest")).status == 200
    with pytest.raises(Unauthorized):
        _call(app, "GET", "/members", b"", None, ANONYMOUS)


def test_unauthenticated_only_refuses_a_signed_in_user(app: App) -> None:
    assert _call(app, "GET", "/sign-up", b"", None, ANONYMOUS).status == 200
    with pytest.raises(Forbidden):
        _call(app, "GET", "/sign-up", b"", "ann", CLERK)


def test_unauthenticated_admits_anyone(app: App) -> None:
    assert _call(app, "GET", "/open", b"", None, ANONYMOUS).status == 200
    assert _call(app, "GET", "/open", b"", "ann", CLERK).status == 200


# -- the rule itself ---------------------------------------------------------------------------


def test_require_is_the_kontract_rule(app: App) -> None:
    context = RequestContext()
    context.user = "ann"
    for granted in range(8):
        context.role = Role("r", egroups={"g": granted})
        for required in range(8):
            if granted & required == required:
                require(context, egroup="g", perm=required)
            else:
                with pytest.raises(Forbidden):
                    require(context, egroup="g", perm=required)


def test_a_request_without_a_role_is_a_super_user_only_while_auth_is_off(app: App) -> None:
    context = RequestContext()
    assert context.is_super_user
    require(context, egroup="g", perm=perms.RWX, roles=["admin"])
    context.role = Role("clerk")
    assert not context.is_super_user


def test_roles_must_be_a_list_of_names_not_one_string() -> None:
    # "admin" is a sequence of letters: taken as a list it would admit a role named "a".
    with pytest.raises(CharterError, match=r"roles=\['admin'\]"):
        Contract(roles="admin")  # type: ignore[arg-type]
    with pytest.raises(CharterError):
        Contract(roles=False)
    with pytest.raises(CharterError):
        Contract(roles=["admin", ""])
    assert Contract(roles=("admin",)).roles == ("admin",)
