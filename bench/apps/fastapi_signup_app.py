"""bench/signup.py's FastAPI side: the same sign-up written by hand, as FastAPI's docs
suggest (a strict pydantic body, a plain ``def`` endpoint in the thread pool, one sqlite3
connection per thread with bench/apps/benchdb.py's settings), the three inserts in one
``BEGIN IMMEDIATE`` transaction; a taken username is a 409 and leaves nothing.

``BENCH_HASH=on`` hashes the password with argon2-cffi's ``PasswordHasher()`` defaults, the
same hasher and parameters as Charter's ``hash_password``."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import benchdb
from argon2 import PasswordHasher
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

HASH = os.environ.get("BENCH_HASH", "off") == "on"
MONTH_MS = 30 * 24 * 3600 * 1000
_hasher = PasswordHasher()

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        id TEXT PRIMARY KEY, email TEXT NOT NULL, password TEXT NOT NULL,
        created INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS users_email ON users (email)",
    """CREATE TABLE IF NOT EXISTS profiles (
        id TEXT PRIMARY KEY, user_id TEXT NOT NULL, display_name TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS profiles_user ON profiles (user_id)",
    """CREATE TABLE IF NOT EXISTS subscriptions (
        id TEXT PRIMARY KEY, user_id TEXT NOT NULL, plan TEXT NOT NULL,
        expires INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS subscriptions_user ON subscriptions (user_id)",
)


class SignUp(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    username: str = Field(pattern=r"^[a-z][a-z0-9_]{2,31}$")
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(min_length=8, max_length=256)
    name: str = Field(min_length=1, max_length=100)
    plan: Literal["free", "pro", "team"] = "free"


class UserOut(BaseModel):
    id: str
    email: str
    created: int


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    path = benchdb.db_path()
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    conn = benchdb.connect(path)
    try:
        for statement in SCHEMA:
            conn.execute(statement)
    finally:
        conn.close()
    yield


app = FastAPI(lifespan=lifespan)


@app.post("/sign-up", response_model=UserOut, status_code=201)
def sign_up(body: SignUp) -> UserOut:
    password = _hasher.hash(body.password) if HASH else body.password
    now = int(time.time() * 1000)
    user = UserOut(id=body.username, email=body.email.lower(), created=now)
    conn = benchdb.conn()
    with benchdb.WRITE_LOCK:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO users (id, email, password, created) VALUES (?, ?, ?, ?)",
                (user.id, user.email, password, now),
            )
            conn.execute(
                "INSERT INTO profiles (id, user_id, display_name) VALUES (?, ?, ?)",
                (str(uuid.uuid4()), user.id, body.name),
            )
            if body.plan != "free":
                conn.execute(
                    "INSERT INTO subscriptions (id, user_id, plan, expires) VALUES (?, ?, ?, ?)",
                    (str(uuid.uuid4()), user.id, body.plan, now + MONTH_MS),
                )
            conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")
            raise HTTPException(status_code=409, detail="username taken") from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return user
