"""bench/signup.py's Charter side: Nevr's three-step sign-up as one ``map_route`` (user,
profile, a subscription for paid plans; atomic; the password left out of the response).

``BENCH_HASH=on`` hashes the password with ``charter.auth.hash_password`` (argon2-cffi's
``PasswordHasher()`` defaults, on a worker thread); off, it is stored as given, so that both
sides do the same work and the framework, not Argon2, is measured."""

from __future__ import annotations

import os
import time
from typing import Annotated, Any, Literal

import msgspec

from charter import App, Field, FlowContext, Operation, Table, map_route
from charter.auth import hash_password

HASH = os.environ.get("BENCH_HASH", "off") == "on"
MONTH_MS = 30 * 24 * 3600 * 1000


class User(Table):
    id: str = Field(primary_key=True)
    email: str = Field(indexed=True)
    password: str
    created: int = Field(default=0, created_time=True)


class Profile(Table):
    id: str = Field(primary_key=True)
    user_id: str = Field(indexed=True)
    display_name: str


class Subscription(Table):
    id: str = Field(primary_key=True)
    user_id: str = Field(indexed=True)
    plan: str
    expires: int


class SignUp(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{2,31}$")]
    email: Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+$")]
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=256)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    plan: Literal["free", "pro", "team"] = "free"


async def new_user(ctx: FlowContext) -> dict[str, Any]:
    password = ctx.body["password"]
    return {
        "id": ctx.body["username"],
        "email": ctx.body["email"].lower(),
        "password": await hash_password(password) if HASH else password,
    }


sign_up = map_route(
    "POST",
    "/sign-up",
    atomic=True,
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
    response={"entity": "User", "omit": ["password"]},
)

app = App(
    tables=[User, Profile, Subscription],
    routes=[sign_up],
    database=os.environ.get("BENCH_DB", "sqlite:///bench/.work/charter_signup.db"),
)
