"""Users, roles and sign-in (SPEC section 6): the Python API behind ``charter users ...``.

Every function takes the ``App`` first and opens its storage when needed, so a script, a test
or a migration can manage users without a server::

    await charter.auth.add_user(app, "ann", "s3cret!", role="clerk")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import NotFound
from ..model.roles import Role, User
from .directory import Directory
from .passwords import hash_password, verify_password

if TYPE_CHECKING:
    from ..app import App

__all__ = [
    "add_role",
    "add_user",
    "end_sessions",
    "hash_password",
    "list_roles",
    "list_users",
    "remove_role",
    "remove_user",
    "set_password",
    "set_role",
    "verify_password",
]


async def _directory(app: App) -> Directory:
    if not app.started:
        await app.startup()
    return app.directory


async def add_user(
    app: App, username: str, password: str, *, role: str | None = None, super_user: bool = False
) -> User:
    """Create a user with a role (or ``super_user=True``); 409 when the name is taken."""
    directory = await _directory(app)
    return await directory.add_user(username, password, role=role, super_user=super_user)


async def set_password(app: App, username: str, password: str) -> User:
    """Change a user's password; cached credentials stop working on every worker."""
    return await (await _directory(app)).update_user(username, password=password)


async def set_role(
    app: App, username: str, role: str | None = None, *, super_user: bool | None = None
) -> User:
    """Give a user another role and/or change its super-user flag."""
    return await (await _directory(app)).update_user(username, role=role, super_user=super_user)


async def remove_user(app: App, username: str) -> bool:
    """Delete a user; False when there was none."""
    return await (await _directory(app)).remove_user(username)


async def list_users(app: App) -> list[User]:
    """Every user, by name."""
    return await (await _directory(app)).users()


async def add_role(app: App, role: Role) -> None:
    """Add or replace a role that is not declared in code."""
    await (await _directory(app)).add_role(role)


async def remove_role(app: App, name: str) -> bool:
    """Remove a role that is not declared in code; False when there was none."""
    return await (await _directory(app)).remove_role(name)


async def list_roles(app: App) -> list[Role]:
    """Every role: declared in code and stored."""
    return await (await _directory(app)).roles()


async def end_sessions(app: App, username: str) -> int:
    """Sign a user out everywhere: end every session (tokens, cookies) of the user, on every
    worker at once; how many there were. Its password stays valid (Basic still works)."""
    directory = await _directory(app)
    stored = await directory.find(username)
    if stored is None:
        raise NotFound(f"user {username!r} not found")
    return await app.sign_in.sessions.end_user(stored.id)
