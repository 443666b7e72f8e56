"""Middleware (SPEC section 7, issue 11 point 6): ordered, filtered by prefix, egroup and
endpoint names, ``call_next`` once, errors as the envelope, outside the request's transaction.

Every test runs on SQLite and PostgreSQL (the ``serve`` fixture), through the test client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

import charter
from charter import (
    App,
    CharterError,
    Field,
    Forbidden,
    Grant,
    Middleware,
    NotFound,
    RequestContext,
    Response,
    Role,
    Service,
    Table,
    current_context,
    perms,
    post,
    route,
    rpc,
)
from charter.storage.base import ConflictError
from charter.testing import TestClient

Serve = Callable[..., TestClient]


class Note(Table):
    id: str = Field(primary_key=True)
    text: str = ""

    @post
    async def shout(self) -> str:
        return self.text.upper()


class Ops(Service):
    @rpc(egroup="admin", perm=perms.RWX)
    async def reset(self) -> str:
        return "reset"

    @rpc(egroup="api-v1", perm=perms.R__)
    async def ping(self) -> str:
        return "pong"


@route("GET", "/api/items/{item}")
def item(item: str) -> dict[str, str]:
    return {"item": item}


@route("GET", "/apix")
def apix() -> str:
    return "apix"


@route("GET", "/api")
def api_root() -> str:
    return "root"


ROUTES = [item, apix, api_root]


def tagger(tag: str, seen: list[str]) -> Any:
    """A middleware that records that it ran, before and after, and marks the response."""

    async def mark(ctx: RequestContext, call_next: Any) -> Response:
        seen.append(f"{tag}>")
        response = await call_next()
        seen.append(f"<{tag}")
        response.headers[f"x-{tag}"] = "1"
        return response

    mark.__qualname__ = f"mark_{tag}"
    return mark


def test_middleware_runs_in_order_first_listed_outermost(serve: Serve) -> None:
    seen: list[str] = []
    client = serve(
        Note, middleware=[tagger("a", seen), Middleware(tagger("b", seen)), tagger("c", seen)]
    )
    response = client.put("/Note/n1", json={"text": "hi"})
    assert response.status_code == 204
    assert seen == ["a>", "b>", "c>", "<c", "<b", "<a"]
    assert {"x-a", "x-b", "x-c"} <= set(response.headers)


def test_prefixurl_matches_on_segment_boundaries(serve: Serve) -> None:
    seen: list[str] = []
    client = serve(Note, routes=ROUTES, middleware=[Middleware(tagger("p", seen), "/api/")])
    for path, runs in [
        ("/api", True),
        ("/api/items/a", True),
        ("/apix", False),  # a prefix of the text, not of the path
        ("/Note/", False),
        ("/openapi.json", False),
    ]:
        seen.clear()
        response = client.get(path)
        assert response.status_code == 200, path
        assert ("x-p" in response.headers) is runs, path
        assert bool(seen) is runs, path


def test_a_prefix_ending_inside_a_path_parameter_is_checked_per_request(serve: Serve) -> None:
    seen: list[str] = []
    guard = Middleware(tagger("g", seen), prefixurl="/api/items/secret")
    client = serve(Note, routes=ROUTES, middleware=[guard])
    assert "x-g" in client.get("/api/items/secret").headers
    # The path as decoded selects it too: an escape does not get around a guard.
    assert "x-g" in client.get("/api/items/%73ecret").headers
    assert "x-g" not in client.get("/api/items/secrets").headers
    assert "x-g" not in client.get("/api/items/public").headers
    # Records are paths too: a prefix down to one record of a table.
    record_guard = serve(Note, middleware=[Middleware(tagger("r", seen), prefixurl="/Note/n1")])
    record_guard.put("/Note/n1", json={"text": "x"})
    record_guard.put("/Note/n2", json={"text": "y"})
    assert "x-r" in record_guard.get("/Note/n1").headers
    assert "x-r" not in record_guard.get("/Note/n2").headers
    assert "x-r" in record_guard.post("/Note/n1/shout").headers  # under /Note/n1/


def test_egroup_selects_the_rpc_methods_of_that_group_exactly(serve: Serve) -> None:
    seen: list[str] = []

    async def admin_guard(ctx: RequestContext, call_next: Any) -> Response:
        seen.append(f"{ctx.endpoint}:{ctx.egroup}")
        raise Forbidden("admins only")

    client = serve(Note, services=[Ops], middleware=[Middleware(admin_guard, egroup="admin")])
    refused = client.post("/rpc/reset", json={})
    assert refused.status_code == 403
    assert refused.json() == {
        "error": {"status": 403, "code": "FORBIDDEN", "message": "admins only"}
    }
    assert client.post("/rpc/ping", json={}).json() == "pong"
    assert client.put("/Note/a", json={}).status_code == 204
    assert seen == ["reset:admin"]


def test_endpoints_select_routes_by_name(serve: Serve) -> None:
    seen: list[str] = []

    async def record(ctx: RequestContext, call_next: Any) -> Response:
        seen.append(str(ctx.endpoint))
        return await call_next()

    names = ["Note.record", "Note.shout", "ping", "item"]
    client = serve(
        Note,
        services=[Ops],
        routes=ROUTES,
        middleware=[Middleware(record, endpoints=names), Middleware(record, endpoints="apix")],
    )
    client.put("/Note/a", json={"text": "t"})
    client.get("/Note/")  # Note.collection: not named
    client.post("/Note/a/shout")
    client.post("/rpc/ping", json={})
    client.post("/rpc/reset", json={})  # not named
    client.get("/api/items/x")
    client.get("/apix")
    assert seen == ["Note.record", "Note.shout", "ping", "item", "apix"]


def test_every_given_filter_must_match(serve: Serve) -> None:
    seen: list[str] = []
    both = Middleware(tagger("b", seen), prefixurl="/rpc", egroup="api-v1", endpoints=["reset"])
    client = serve(Note, services=[Ops], middleware=[both])
    assert "x-b" not in client.post("/rpc/ping", json={}).headers  # egroup fits, name does not
    assert "x-b" not in client.post("/rpc/reset", json={}).headers  # name fits, egroup does not
    assert seen == []


def test_calling_call_next_twice_is_an_internal_error_and_runs_the_handler_once(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    @route("POST", "/count")
    async def count() -> int:
        calls.append("handler")
        return len(calls)

    async def twice(ctx: RequestContext, call_next: Any) -> Response:
        await call_next()
        return await call_next()

    client = serve(Note, routes=[count], middleware=[twice])
    with caplog.at_level(logging.ERROR, logger="charter.http"):
        response = client.post("/count")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"status": 500, "code": "INTERNAL", "message": "internal server error"}
    }
    assert calls == ["handler"]
    assert "twice called call_next twice" in caplog.text  # the log names the middleware


def test_an_exception_in_a_middleware_becomes_the_envelope(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    class Teapot(Exception):
        status_code = 418

    failures: dict[str, Exception] = {
        "/Note/http": NotFound("no such thing here"),
        "/Note/plain": ValueError("secret detail"),
        "/Note/status": Teapot("short and stout"),
    }

    async def failing(ctx: RequestContext, call_next: Any) -> Response:
        raise failures[ctx.request.path if ctx.request else ""]

    async def outer(ctx: RequestContext, call_next: Any) -> Response:
        response = await call_next()  # an inner failure reaches it as a response
        response.headers["x-outer-status"] = str(response.status)
        return response

    client = serve(Note, middleware=[outer, failing])
    with caplog.at_level(logging.ERROR, logger="charter.http"):
        http = client.get("/Note/http")
        plain = client.get("/Note/plain")
        status = client.get("/Note/status")
    assert http.status_code == 404
    assert http.json()["error"] == {
        "status": 404,
        "code": "NOT_FOUND",
        "message": "no such thing here",
    }
    assert plain.status_code == 500
    assert plain.json()["error"]["code"] == "INTERNAL"
    assert "secret detail" not in plain.text
    assert "secret detail" in caplog.text  # logged in full, for the operator
    assert "middleware test_an_exception_in_a_middleware" in caplog.text
    assert status.status_code == 418
    assert (http.headers["x-outer-status"], plain.headers["x-outer-status"]) == ("404", "500")


def test_a_middleware_that_does_not_answer_a_response_is_an_internal_error(serve: Serve) -> None:
    async def forgets(ctx: RequestContext, call_next: Any) -> Any:
        await call_next()  # and does not return it

    client = serve(Note, middleware=[forgets])
    response = client.put("/Note/a", json={})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTERNAL"


def test_a_middleware_may_answer_without_the_handler(serve: Serve) -> None:
    async def closed(ctx: RequestContext, call_next: Any) -> Response:
        if ctx.request is not None and ctx.request.method == "PUT":
            return Response(503, b"maintenance", {"content-type": "text/plain"})
        return await call_next()

    client = serve(Note, middleware=[closed])
    assert client.put("/Note/a", json={}).status_code == 503
    assert client.get("/Note/a").status_code == 404  # the PUT never ran


def test_handler_errors_reach_the_middleware_as_envelope_responses(serve: Serve) -> None:
    statuses: list[int] = []

    async def watch(ctx: RequestContext, call_next: Any) -> Response:
        response = await call_next()
        statuses.append(response.status)
        response.headers["x-seen"] = "yes"
        return response

    client = serve(Note, middleware=[watch])
    missing = client.get("/Note/none")
    invalid = client.put("/Note/a", json={"text": 5})
    assert (missing.status_code, invalid.status_code) == (404, 422)
    assert missing.headers["x-seen"] == invalid.headers["x-seen"] == "yes"
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    assert statuses == [404, 422]


def test_a_path_that_matches_no_route_runs_no_middleware(serve: Serve) -> None:
    seen: list[str] = []
    client = serve(Note, middleware=[tagger("all", seen)])
    assert client.get("/Nothing/here").status_code == 404
    assert client.delete("/openapi.json").status_code == 405
    assert seen == []


def test_the_context_carries_the_request_and_the_route(serve: Serve) -> None:
    seen: dict[str, Any] = {}

    async def look(ctx: RequestContext, call_next: Any) -> Response:
        assert current_context() is ctx
        seen.update(
            endpoint=ctx.endpoint,
            egroup=ctx.egroup,
            user=ctx.user,
            perm=ctx.perm,
            path=ctx.request.path if ctx.request else None,
            shared=ctx.shared,
        )
        ctx.response_headers["x-from-middleware"] = "1"
        return await call_next()

    client = serve(Note, services=[Ops], middleware=[look])
    response = client.post("/rpc/ping", json={})
    assert response.headers["x-from-middleware"] == "1"
    assert seen["endpoint"] == "ping"
    assert seen["egroup"] == "api-v1"  # known before the handler runs
    assert seen["user"] is None  # auth is off: no one is signed in
    assert seen["perm"] == perms.RWX
    assert seen["path"] == "/rpc/ping"
    assert seen["shared"] is client.app.shared


def test_middleware_runs_after_sign_in_and_sees_the_user(database: str) -> None:
    seen: list[Any] = []

    async def who(ctx: RequestContext, call_next: Any) -> Response:
        user = ctx.user
        seen.append(None if user is None else (user.username, getattr(ctx.role, "name", None)))
        return await call_next()

    roles = [Role("clerk", tables={"Note": Grant(read=True)}), Role("anonymous")]
    app = App(tables=[Note], database=database, auth=True, roles=roles, middleware=[who])
    with TestClient(app) as client:
        client.run(charter.auth.add_user(app, "ann", "ann-password", role="clerk"))
        assert client.get("/Note/", auth=("ann", "ann-password")).status_code == 200
        client.get("/Note/")  # not signed in: the role anonymous, no user
        refused = client.get("/Note/", auth=("ann", "wrong"))
    assert refused.status_code == 401  # identification failed: no middleware ran for it
    assert seen == [("ann", "clerk"), None]


def test_middleware_runs_outside_the_transaction_and_sees_the_committed_writes(
    serve: Serve,
) -> None:
    seen: list[Any] = []

    async def audit(ctx: RequestContext, call_next: Any) -> Response:
        seen.append(ctx.transaction)  # None: the handler's transaction is not open yet
        response = await call_next()
        txn = ctx.transaction
        assert txn is not None and txn.committed
        seen.append(await Note.get("a"))  # committed: a read of its own sees it
        return response

    client = serve(Note, middleware=[audit])
    assert client.put("/Note/a", json={"text": "kept"}).status_code == 204
    assert seen[0] is None
    assert seen[1].text == "kept"


def test_a_conflict_reruns_the_handler_not_the_middleware(serve: Serve) -> None:
    runs = {"middleware": 0, "handler": 0}

    @route("POST", "/flaky")
    async def flaky() -> int:
        runs["handler"] += 1
        if runs["handler"] == 1:
            raise ConflictError("a record changed since it was read")
        return runs["handler"]

    async def count(ctx: RequestContext, call_next: Any) -> Response:
        runs["middleware"] += 1
        return await call_next()

    client = serve(Note, routes=[flaky], middleware=[count])
    assert client.post("/flaky").json() == 2
    assert runs == {"middleware": 1, "handler": 2}


def test_streamed_collections_and_head_requests_pass_through(serve: Serve) -> None:
    seen: list[str] = []
    client = serve(Note, middleware=[tagger("s", seen)])
    for i in range(3):
        client.put(f"/Note/n{i}", json={"text": str(i)})
    listed = client.get("/Note/")
    assert [n["id"] for n in listed.json()] == ["n0", "n1", "n2"]
    assert listed.headers["x-s"] == "1"
    head = client.head("/Note/n1")
    assert (head.status_code, head.headers["x-s"], head.content) == (200, "1", b"")


def test_a_route_added_after_the_app_is_built_gets_its_middleware(serve: Serve) -> None:
    seen: list[str] = []
    client = serve(Note, middleware=[Middleware(tagger("late", seen), prefixurl="/late")])

    @route("GET", "/late/one")
    def late() -> str:
        return "late"

    client.app.add_route(late)
    assert client.get("/late/one").headers["x-late"] == "1"


def test_a_route_no_middleware_selects_runs_as_without_middleware(serve: Serve) -> None:
    seen: list[str] = []
    client = serve(Note, routes=ROUTES, middleware=[Middleware(tagger("x", seen), "/api")])
    response = client.put("/Note/a", json={"text": "t"})
    assert response.status_code == 204 and "x-x" not in response.headers
    assert client.get("/Note/a").json() == {"id": "a", "text": "t"}
    assert seen == []


# -- declarations that cannot work are refused when the App is built -------------------------


async def passthrough(ctx: RequestContext, call_next: Any) -> Response:
    return await call_next()


def sync_middleware(ctx: RequestContext, call_next: Any) -> Any:
    return call_next()


@pytest.mark.parametrize(
    ("middleware", "message"),
    [
        ([Middleware(passthrough, endpoints=["Note.recrod"])], "no endpoint is named"),
        ([Middleware(passthrough, egroup="admins")], "no endpoint has the egroup 'admins'"),
        ([object()], "takes Middleware or async functions"),
        ([sync_middleware], "must be async"),
    ],
    ids=["misspelt-endpoint", "unknown-egroup", "not-callable", "sync"],
)
def test_a_filter_or_function_that_cannot_work_is_refused(
    database: str, middleware: list[Any], message: str
) -> None:
    with pytest.raises(CharterError, match=message):
        App(tables=[Note], services=[Ops], database=database, middleware=middleware)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prefixurl": "api"}, "a path such as '/api'"),
        ({"egroup": ""}, "a non-empty string"),
        ({"endpoints": []}, "one or more endpoint names"),
        ({"endpoints": ["ok", ""]}, "one or more endpoint names"),
    ],
)
def test_middleware_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(CharterError, match=message):
        Middleware(passthrough, **options)


def test_a_middleware_says_what_it_selects() -> None:
    shown = repr(Middleware(passthrough, prefixurl="/api/", endpoints="x"))
    assert shown == "Middleware(passthrough, prefixurl='/api', endpoints=frozenset({'x'}))"
