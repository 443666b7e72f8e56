"""Who may call an endpoint: an RPC's egroup bits, a contract route's roles (SPEC 5 and 6).

Every RPC and every contract route asks ``require`` before it reads its arguments, with the
request's ``RequestContext``. The rules:

- A super user passes every check. With ``App(auth=False)`` (the only mode until sign-in is
  built) a request has no role and acts as a super user, so today every check passes; the
  identity layer only has to put a user and a role on the context.
- ``perm`` (RPC): the caller's role grants bits per egroup (``role.egroups[egroup]``); the
  call passes when ``granted & perm == perm``. An RPC without an egroup is granted to no role
  (only super users may call it), unless its ``perm`` is ``perms.NONE``.
- ``roles`` (contract route): ``None`` or ``"unauthenticated"``: anyone; ``True``: any
  signed-in user; ``"unauthenticated-only"``: only requests that are not signed in; a list of
  role names: a signed-in user whose role is named (``"unauthenticated"`` in the list admits
  anyone).
- A refusal is 401 ``UNAUTHORIZED`` when the request is not signed in (``context.user`` is
  None), else 403 ``FORBIDDEN``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from ..errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from .context import RequestContext

__all__ = ["RoleLike", "refuse", "require"]


class RoleLike(Protocol):
    """What ``require`` reads from ``context.role`` (the identity layer supplies roles)."""

    name: str
    super_user: bool
    egroups: Mapping[str, int]


def require(
    context: RequestContext | None,
    *,
    egroup: str | None = None,
    perm: int | None = None,
    roles: Sequence[str] | bool | str | None = None,
) -> None:
    """Raise ``Unauthorized`` or ``Forbidden`` unless the context may call the endpoint.

    Args:
        context: the request's context; None (server code, not a request) always passes.
        egroup: the endpoint group of an RPC.
        perm: the bits the caller's grant for ``egroup`` must hold; None: no bit check.
        roles: a contract's ``roles`` (see the module docstring).
    """
    if context is None:
        return
    if roles == "unauthenticated-only":
        if context.user is not None:
            raise Forbidden("this endpoint is only for requests that are not signed in")
        return
    if context.is_super_user:
        return
    if perm is not None and not _granted(context.role, egroup, perm):
        refuse(context, f"the egroup {egroup!r} needs permission bits {perm}")
    if roles is None or roles == "unauthenticated":
        return
    if roles is False:  # Contract refuses it; here it admits no one but super users
        refuse(context, "this endpoint admits no role")
    names = [roles] if isinstance(roles, str) else [] if roles is True else list(roles)
    if "unauthenticated" in names:
        return
    if context.user is None:
        refuse(context, "sign in to use this endpoint")
    name = getattr(context.role, "name", None)
    if roles is not True and name not in names:
        refuse(context, f"the role {name!r} may not use this endpoint")


def _granted(role: Any, egroup: str | None, perm: int) -> bool:
    egroups: Mapping[str, int] = getattr(role, "egroups", None) or {}
    granted = egroups.get(egroup, 0) if egroup is not None else 0
    return granted & perm == perm


def refuse(context: RequestContext, message: str) -> NoReturn:
    """401 (with ``WWW-Authenticate``) when the request is not signed in, else 403."""
    if context.user is None:
        raise Unauthorized(message)
    raise Forbidden(message)
