"""Sign-up as one declarative transaction (Nevr's example): a User with an Argon2id-hashed
password, its Profile, and a Subscription when the plan is not free, written together or not
at all.

    charter serve examples/signup/signup.py
    curl -X POST localhost:8000/auth/sign-up \
         -d '{"username": "ann", "email": "ann@example.com", "password": "correct horse",
              "name": "Ann", "plan": "pro"}'          # 201: the user, without its password
    curl -X POST localhost:8000/auth/sign-up -d '...the same again...'    # 409, nothing written

Requests sign in (``auth=True``) and anonymous ones may touch no table; the sign-up route is
declared ``privileged``: its steps run as server code, for anyone. ``GET /me`` runs as the
caller: a signed-in member reads its own profile through its grant and row rule.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import msgspec

from charter import (
    App,
    Condition,
    Field,
    FlowContext,
    Grant,
    Operation,
    Role,
    Table,
    map_route,
)
from charter.auth import hash_password

MONTH_MS = 30 * 24 * 3600 * 1000
OUTBOX: list[str] = []
"""Welcome mails to send: filled by ``on_success``, after the sign-up has committed."""


class User(Table):
    id: str = Field(primary_key=True)  # the username
    email: str = Field(indexed=True)
    password: str = Field(returned=False)  # the Argon2id hash, never in a response
    created: int = Field(default=0, created_time=True)


class Profile(Table):
    id: str = Field(primary_key=True)  # generated
    user_id: str = Field(indexed=True)
    display_name: str

    @classmethod
    def read_filter(cls, user: Any) -> Condition | None:  # a member sees its own profile
        return None if user is None else Condition("user_id", "equals", user.username)


class Subscription(Table):
    id: str = Field(primary_key=True)
    user_id: str = Field(indexed=True)
    plan: Literal["pro", "team"]
    expires: int


class SignUp(msgspec.Struct, forbid_unknown_fields=True):
    """The sign-up body: checked before any step runs (422 INVALID_PROPERTIES)."""

    username: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{2,31}$")]
    email: Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+$")]
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=256)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    plan: Literal["free", "pro", "team"] = "free"


async def new_user(ctx: FlowContext) -> dict[str, Any]:
    body = ctx.body
    return {
        "id": body["username"],
        "email": body["email"].lower(),
        "password": await hash_password(body["password"]),
    }


def welcome(results: dict[str, Any], ctx: FlowContext) -> None:
    OUTBOX.append(results["User"]["email"])


sign_up = map_route(
    "POST",
    "/auth/sign-up",
    atomic=True,
    privileged=True,
    validate=SignUp,
    operations=[
        Operation("User", "create", data=new_user),
        Operation(
            "Profile",
            "create",
            data=lambda ctx: {
                "user_id": ctx.results["User"]["id"],
                "display_name": ctx.body["name"],
            },
        ),
        Operation(
            "Subscription",
            "create",
            condition=lambda ctx: ctx.body["plan"] != "free",
            data=lambda ctx: {
                "user_id": ctx.results["User"]["id"],
                "plan": ctx.body["plan"],
                "expires": int(time.time() * 1000) + MONTH_MS,
            },
        ),
    ],
    on_success=welcome,
    response={"entity": "User", "omit": ["password"]},
    description="Create an account: user, profile and, for a paid plan, its subscription",
)

me = map_route(
    "GET",
    "/me",
    roles=True,  # signed-in users only; the step runs as the caller (its grant, its row rule)
    operations=[
        Operation("Profile", "read", where=lambda ctx: {"user_id": ctx.user.username}),
    ],
    response={"entity": "Profile", "pick": ["user_id", "display_name"]},
)

app = App(
    tables=[User, Profile, Subscription],
    routes=[sign_up, me],
    auth=True,
    roles=[Role("member", tables={"Profile": Grant(read=True)})],
)
