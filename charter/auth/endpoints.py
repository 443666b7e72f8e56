"""The ``/auth`` endpoints (SPEC section 6): sign-in, tokens, the signed-in user, and user
management for super users.

- ``POST /auth/login {username, password}``: ``{access_token, refresh_token, token_type,
  expires_in}``; with ``"cookie": true``, a cookie session instead (``cookies.py``).
- ``POST /auth/refresh {refresh_token}``: a new pair; the old refresh token is used up.
- ``POST /auth/logout [{refresh_token}]``: 204; the session ends on every worker at once.
- ``GET /auth/me``: ``{username, role, super_user}``; 401 when not signed in.
- ``GET/POST /auth/users``, ``GET/PATCH/DELETE /auth/users/{username}``, ``GET /auth/roles``:
  super users only (401 when not signed in, 403 when signed in as another role).

No answer, log line or error ever holds a password or a password hash.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar
from urllib.parse import quote

import msgspec

from ..errors import Forbidden, NotFound, Unauthorized, ValidationError
from ..http.codecs import JSON, read_body
from ..http.request import Request
from ..http.response import Response
from ..http.routing import Route, decode_segment
from ..model.roles import User
from ..runtime.context import RequestContext, current_context
from ..schema.validation import details_from_message
from .authenticate import SESSION, VIA_COOKIE, client_address
from .cookies import check_origin, clear_cookies, session_cookies
from .directory import Directory
from .signin import SignIn

__all__ = ["auth_routes"]

T = TypeVar("T")
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


class _Login(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str
    cookie: bool = False


class _Refresh(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: str


class _Logout(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: str | None = None


class _NewUser(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str
    role: str | None = None
    super_user: bool = False


class _UserChange(msgspec.Struct, forbid_unknown_fields=True):
    password: str | None = None
    role: str | None = None
    super_user: bool | None = None


async def _body(request: Request, kind: type[T], *, optional: bool = False) -> T:
    """The request body as ``kind``: 400 when unreadable, 422 naming what is wrong (never the
    values: a password must not come back in an error)."""
    raw = await request.body()
    if not raw and optional:
        return kind()
    fields = {f.name: f.type for f in msgspec.structs.fields(kind)}  # type: ignore[arg-type]
    value = read_body(request.header("content-type"), raw, lambda: fields) if raw else None
    try:
        return msgspec.convert(value, kind, strict=True)
    except msgspec.ValidationError as exc:
        detail = details_from_message(str(exc), ["body"])
        raise ValidationError("payload is invalid", details=[detail]) from None


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status, JSON.encode(body), {"content-type": "application/json", **(headers or {})}
    )


def _user_body(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "id": user.id,
        "role": user.role,
        "super_user": user.super_user,
    }


def _context() -> RequestContext:
    context = current_context()
    assert context is not None  # every handler runs inside a request
    return context


def _super_only() -> None:
    context = _context()
    if context.is_super_user:
        return
    if context.user is None:
        raise Unauthorized("sign in as a super user to manage users")
    raise Forbidden("only super users manage users and roles")


def auth_routes(
    directory: Directory, sign_in: SignIn, trusted_origins: Collection[str] = ()
) -> list[Route]:
    """The ``/auth`` routes of an app (module docstring)."""
    trusted = frozenset(o.lower() for o in trusted_origins)

    async def login(request: Request) -> Response:
        body = await _body(request, _Login)
        if body.cookie:
            check_origin(request, trusted)  # no login CSRF: only the app's pages sign in
        stored = await sign_in.check_password(body.username, body.password, client_address(request))
        if not body.cookie:
            pair = await sign_in.open_tokens(stored)
            return _json(200, pair.body(), _NO_STORE)
        session, token, csrf = await sign_in.open_cookie(stored)
        user, _ = await sign_in.identity(session)
        response = _json(
            200,
            {
                "username": user.username,
                "role": user.role,
                "token_type": "cookie",
                "csrf_token": csrf,
                "expires_in": sign_in.refresh_ttl,
            },
            _NO_STORE,
        )
        response.cookies = session_cookies(request, token, csrf, sign_in.refresh_ttl)
        return response

    async def refresh(request: Request) -> Response:
        body = await _body(request, _Refresh)
        pair = await sign_in.refresh(body.refresh_token)
        return _json(200, pair.body(), _NO_STORE)

    async def logout(request: Request) -> Response:
        context = _context()
        body = await _body(request, _Logout, optional=True)
        family = context.extra.get(SESSION)
        if family is not None:
            await sign_in.sessions.end(family)
        if body.refresh_token is not None:
            await sign_in.sessions.end_by_refresh(body.refresh_token)
        response = Response(204, headers=dict(_NO_STORE))
        if context.extra.get(VIA_COOKIE) or request.header("cookie"):
            response.cookies = clear_cookies(request)
        return response

    async def me(request: Request) -> Response:
        user = _context().user
        if user is None:
            raise Unauthorized("not signed in")
        body = {"username": user.username, "role": user.role, "super_user": user.super_user}
        return _json(200, body)

    async def check_role(role: str | None) -> None:
        if role is not None and role not in {r.name for r in await directory.roles()}:
            raise ValidationError(
                f"no role is named {role!r}",
                details=[{"loc": ["body", "role"], "code": "UNMATCHING_PROPERTIES",
                          "message": f"no role is named {role!r}"}],
            )  # fmt: skip

    async def list_users(request: Request) -> Response:
        _super_only()
        return _json(200, [_user_body(u) for u in await directory.users()])

    async def add_user(request: Request) -> Response:
        _super_only()
        body = await _body(request, _NewUser)
        await check_role(body.role)
        user = await directory.add_user(
            body.username, body.password, role=body.role, super_user=body.super_user
        )
        location = f"/auth/users/{quote(user.username, safe='')}"
        return _json(201, _user_body(user), {"location": location})

    async def get_user(request: Request, username: str) -> Response:
        _super_only()
        stored = await directory.find(decode_segment(username))
        if stored is None:
            raise NotFound("no such user")
        return _json(200, _user_body((await directory.user(stored))[0]))

    async def change_user(request: Request, username: str) -> Response:
        _super_only()
        body = await _body(request, _UserChange)
        await check_role(body.role)
        user = await directory.update_user(
            decode_segment(username),
            password=body.password,
            role=body.role,
            super_user=body.super_user,
        )
        return _json(200, _user_body(user))

    async def remove_user(request: Request, username: str) -> Response:
        _super_only()
        if not await directory.remove_user(decode_segment(username)):
            raise NotFound("no such user")
        return Response(204)

    async def list_roles(request: Request) -> Response:
        _super_only()
        return _json(200, [role.to_json() for role in await directory.roles()])

    one = "/auth/users/{username}"
    return [
        Route("POST", "/auth/login", login, "auth.login", "auth"),
        Route("POST", "/auth/refresh", refresh, "auth.refresh", "auth"),
        Route("POST", "/auth/logout", logout, "auth.logout", "auth"),
        Route("GET", "/auth/me", me, "auth.me", "auth"),
        Route("GET", "/auth/users", list_users, "auth.users.list", "auth"),
        Route("POST", "/auth/users", add_user, "auth.users.add", "auth"),
        Route("GET", one, get_user, "auth.users.get", "auth"),
        Route("PATCH", one, change_user, "auth.users.change", "auth"),
        Route("DELETE", one, remove_user, "auth.users.remove", "auth"),
        Route("GET", "/auth/roles", list_roles, "auth.roles.list", "auth"),
    ]
