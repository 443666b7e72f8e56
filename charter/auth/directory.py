"""Users and roles in system tables (``_charter_users``, ``_charter_roles``), on any backend.

The system tables are migrated like any table but are not served: no REST resource, no
OpenAPI entry, not reachable through the storage proxy. Users are keyed by ``username`` (so a
name is unique on every backend, across workers) and carry a stable ``id`` for row rules.
``generation`` grows with every password, role or removal change, so a credential cached by
any worker can be checked against it.

Roles declared in code are written to ``_charter_roles`` at start (``declared`` = true); a
declared role that left the code is removed, roles added from the CLI or over HTTP stay. Every
worker reads the table again when its copy is older than ``ROLE_REFRESH`` seconds, so a role
changed elsewhere takes effect everywhere within that time.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec

from ..errors import CharterError, Conflict, NotFound, ValidationError
from ..model.fields import Field
from ..model.roles import ANONYMOUS, Role, User
from ..model.table import Table
from ..query import Query
from ..runtime.transaction import Transaction, run_in_transaction
from ..schema import TableSchema, build_schema
from ..storage import Storage
from ..storage.base import DuplicateKey
from .passwords import hash_password, needs_rehash, verify_password, verify_unknown

__all__ = ["ROLE_REFRESH", "Directory", "StoredUser", "UserHook", "check_roles"]

log = logging.getLogger("charter.auth")

ROLE_REFRESH = 2.0
"""Seconds a worker trusts its copy of the roles table."""

USERS = "_charter_users"
ROLES = "_charter_roles"


class _UserRecord(Table, name=USERS):
    username: str = Field(primary_key=True, min_length=1, max_length=128)
    id: str = Field(indexed=True)
    password_hash: str = ""
    role: str | None = None
    super_user: bool = False
    generation: int = 0


class _RoleRecord(Table, name=ROLES):
    name: str = Field(primary_key=True, min_length=1, max_length=64)
    super_user: bool = False
    tables: dict[str, Any] = {}
    egroups: dict[str, int] = {}
    declared: bool = False


class StoredUser(msgspec.Struct, frozen=True):
    """A row of ``_charter_users`` (the hash stays inside the auth package)."""

    username: str
    id: str
    password_hash: str = ""
    role: str | None = None
    super_user: bool = False
    generation: int = 0


UserHook = Callable[[Transaction, "StoredUser", "StoredUser | None"], Awaitable[None]]
"""Called inside the transaction that changes (after: the new row) or removes (None) a user."""

_decode_user = msgspec.json.Decoder(StoredUser)
_encode = msgspec.json.encode


def _username(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 128 or not name.isprintable():
        raise ValidationError("a username is 1-128 printable characters")
    if ":" in name:
        raise ValidationError("a username cannot contain ':' (HTTP Basic separates with it)")
    return name


def check_roles(roles: Sequence[Role], tables: Mapping[str, TableSchema]) -> dict[str, Role]:
    """The declared roles by name, after checking every table and attribute they name exists
    (a typo must not silently grant or hide nothing)."""
    named: dict[str, Role] = {}
    for role in roles:
        if not isinstance(role, Role):
            raise CharterError(f"App(roles=...) takes Role objects, not {role!r}")
        if role.name in named:
            raise CharterError(f"two roles are named {role.name!r}")
        for table, grant in role.tables.items():
            schema = tables.get(table)
            if schema is None:
                raise CharterError(
                    f"role {role.name!r} grants on {table!r}, not a table of the app"
                )
            for attribute in grant.attributes or {}:
                if attribute not in schema.fields:
                    raise CharterError(
                        f"role {role.name!r} names {table}.{attribute}, not an attribute"
                    )
        named[role.name] = role
    return named


class Directory:
    """The users and roles of one app, read and written through its storage."""

    def __init__(self, storage: Storage, declared: Mapping[str, Role]) -> None:
        self.storage = storage
        self.declared = dict(declared)
        self.users_schema = build_schema(_UserRecord, _UserRecord.__charter_options__)
        self.roles_schema = build_schema(_RoleRecord, _RoleRecord.__charter_options__)
        self._roles: dict[str, Role] = dict(self.declared)
        self._roles_read = 0.0
        self._derived: dict[tuple[str, bool], Role] = {}  # roles made from a name, cached
        self.user_hooks: list[UserHook] = []  # sign-in sessions follow user changes

    @property
    def schemas(self) -> list[TableSchema]:
        """The system tables, opened (created, migrated) with the app's tables."""
        return [self.users_schema, self.roles_schema]

    # -- start -----------------------------------------------------------------------------------

    async def start(self, *, auth: bool, environ: Mapping[str, str] | None = None) -> None:
        """Write the declared roles, remove declared roles that left the code, and create the
        first super user from ``CHARTER_ADMIN_PASSWORD`` when it does not exist yet. An app
        with auth off and no roles reads nothing here (roles are read when first asked)."""
        env = os.environ if environ is None else environ
        if auth or self.declared:
            await self._sync_roles()
        password = env.get("CHARTER_ADMIN_PASSWORD")
        if password:
            name = env.get("CHARTER_ADMIN_USER") or "admin"
            if await self.find(name) is None:
                try:
                    await self.add_user(name, password, super_user=True)
                    log.info("created the super user %r from CHARTER_ADMIN_PASSWORD", name)
                except Conflict:
                    pass  # another worker created it at the same moment

    async def _sync_roles(self) -> None:
        stored = {row["name"]: row for row in await self._role_rows()}

        async def sync(txn: Transaction) -> None:
            for name, role in self.declared.items():
                row = {**role.to_json(), "declared": True}
                if stored.get(name) != row:
                    txn.put(ROLES, name, _encode(row).decode())
            for name, row in stored.items():
                if row.get("declared") and name not in self.declared:
                    txn.delete(ROLES, name)

        await run_in_transaction(self.storage, sync, join=False)
        await self.refresh_roles()

    # -- roles -----------------------------------------------------------------------------------

    async def _role_rows(self) -> list[dict[str, Any]]:
        rows = self.storage.search(self.roles_schema, Query.coerce(None))
        return [msgspec.json.decode(row.data) async for row in rows]

    async def refresh_roles(self) -> None:
        """Read the roles table again (declared roles win over a stale row)."""
        roles = {row["name"]: Role.from_json(row) for row in await self._role_rows()}
        roles.update(self.declared)
        self._roles = roles
        self._derived = {}
        self._roles_read = time.monotonic()

    async def role(self, name: str | None) -> Role:
        """The role named ``name``; a name that no longer exists is a role with no rights
        (fail closed), and so is ``anonymous`` unless it is declared."""
        if time.monotonic() - self._roles_read > ROLE_REFRESH:
            await self.refresh_roles()
        return self._named(name)

    @property
    def roles_fresh_until(self) -> float:
        """When (``time.monotonic``) this worker's copy of the roles stops being trusted."""
        return self._roles_read + ROLE_REFRESH

    def current_role(self, name: str | None) -> Role | None:
        """``role(name)`` when this worker's copy of the roles is fresh, else None (then
        ``role`` reads the table): lets a request that needs nothing else skip an await."""
        if time.monotonic() - self._roles_read > ROLE_REFRESH:
            return None
        return self._named(name)

    def _named(self, name: str | None) -> Role:
        key = name or ANONYMOUS
        found = self._roles.get(key)
        if found is None:  # made once per refresh, not on every request
            found = self._derived.get((key, False))
            if found is None:
                found = self._derived[(key, False)] = Role(key)
        return found

    async def roles(self) -> list[Role]:
        await self.refresh_roles()
        return sorted(self._roles.values(), key=lambda r: r.name)

    async def add_role(self, role: Role) -> None:
        """Add or replace a role that is not declared in code."""
        if role.name in self.declared:
            raise Conflict(f"role {role.name!r} is declared in code; change it there")
        body = _encode({**role.to_json(), "declared": False}).decode()
        await self._write(lambda txn: txn.put(ROLES, role.name, body))
        await self.refresh_roles()

    async def remove_role(self, name: str) -> bool:
        if name in self.declared:
            raise Conflict(f"role {name!r} is declared in code; remove it there")
        if await self.storage.fetch(ROLES, name) is None:
            return False
        await self._write(lambda txn: txn.delete(ROLES, name))
        await self.refresh_roles()
        return True

    # -- users -----------------------------------------------------------------------------------

    async def find(self, username: str) -> StoredUser | None:
        """The stored user named ``username`` (one point read), or None."""
        if not isinstance(username, str) or not 1 <= len(username) <= 128:
            return None
        row = await self.storage.fetch(USERS, username)
        return None if row is None else _decode_user.decode(row.data)

    async def user(self, stored: StoredUser) -> tuple[User, Role]:
        """The request-facing user and the role it acts as."""
        # A super user without a role acts as the role "super_user" (not as "anonymous").
        name = stored.role or ("super_user" if stored.super_user else "")
        role = await self.role(name) if stored.role else Role(name)
        super_user = stored.super_user or role.super_user
        if super_user and not role.super_user:
            lifted = self._derived.get((role.name, True))
            if lifted is None:
                lifted = self._derived[(role.name, True)] = Role(role.name, super_user=True)
            role = lifted
        return User(stored.id, stored.username, name, super_user), role

    async def authenticate(self, username: str, password: str) -> StoredUser | None:
        """The user when ``password`` is right; None otherwise, after the same work either way.
        A hash made with older Argon2 parameters is replaced by a current one."""
        stored = await self.find(username)
        if stored is None or not stored.password_hash:
            await verify_unknown(password)
            return None
        if not await verify_password(stored.password_hash, password):
            return None
        if needs_rehash(stored.password_hash):
            fresh = await hash_password(password)
            body = msgspec.structs.replace(stored, password_hash=fresh)
            await self._write(lambda txn: txn.put(USERS, stored.username, _encode(body).decode()))
            stored = body
        return stored

    async def add_user(
        self,
        username: str,
        password: str,
        *,
        role: str | None = None,
        super_user: bool = False,
    ) -> User:
        """Create a user; 409 ``Conflict`` when the name is taken."""
        _username(username)
        self._check_role_name(role, super_user)
        try:
            digest = await hash_password(password)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        body = StoredUser(username, uuid.uuid4().hex, digest, role, super_user, 1)
        try:
            await self._write(
                lambda txn: txn.put(USERS, username, _encode(body).decode(), insert=True)
            )
        except DuplicateKey:
            raise Conflict(f"user {username!r} already exists") from None
        return (await self.user(body))[0]

    def _check_role_name(self, role: str | None, super_user: bool) -> None:
        if role is None and not super_user:
            raise ValidationError("a user needs a role (or super_user)")
        if role is not None and (not isinstance(role, str) or not 1 <= len(role) <= 64):
            raise ValidationError("a role name is 1-64 characters")

    async def update_user(
        self,
        username: str,
        *,
        password: str | None = None,
        role: str | None = None,
        super_user: bool | None = None,
    ) -> User:
        """Change a user's password, role or super-user flag (404 when there is none)."""
        stored = await self.find(username)
        if stored is None:
            raise NotFound(f"user {username!r} not found")
        changes: dict[str, Any] = {"generation": stored.generation + 1}
        if password is not None:
            try:
                changes["password_hash"] = await hash_password(password)
            except ValueError as exc:
                raise ValidationError(str(exc)) from None
        if role is not None:
            self._check_role_name(role, False)
            changes["role"] = role
        if super_user is not None:
            changes["super_user"] = bool(super_user)
        body = msgspec.structs.replace(stored, **changes)
        self._check_role_name(body.role, body.super_user)
        await self._write(
            lambda txn: txn.put(USERS, username, _encode(body).decode()), (stored, body)
        )
        return (await self.user(body))[0]

    async def remove_user(self, username: str) -> bool:
        """Delete a user; False when there was none."""
        stored = await self.find(username)
        if stored is None:
            return False
        await self._write(lambda txn: txn.delete(USERS, username), (stored, None))
        return True

    async def users(self) -> list[User]:
        """Every user, by name (no hashes)."""
        rows = self.storage.search(self.users_schema, Query.coerce(None))
        found = [_decode_user.decode(row.data) async for row in rows]
        return [(await self.user(s))[0] for s in sorted(found, key=lambda s: s.username)]

    async def _write(
        self, stage: Any, change: tuple[StoredUser, StoredUser | None] | None = None
    ) -> None:
        async def run(txn: Transaction) -> None:
            stage(txn)
            if change is not None:
                for hook in self.user_hooks:
                    await hook(txn, *change)

        await run_in_transaction(self.storage, run)
