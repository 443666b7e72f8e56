"""Who a request is: its credentials checked, ``context.user`` and ``context.role`` set.

Runs before the handler (and before middleware) on every request when auth is on. A request
with no credentials acts as the role ``anonymous``; a request with wrong credentials is refused
with 401 rather than served as anonymous (a client should learn its password is wrong).
"""

from __future__ import annotations

import base64
import binascii

from ..errors import Unauthorized
from ..http.request import Request
from ..model.roles import ANONYMOUS
from ..runtime.context import RequestContext
from .directory import Directory

__all__ = ["Authenticator", "parse_basic"]

_BAD = "invalid username or password"


def parse_basic(value: str) -> tuple[str, str]:
    """``user:password`` of a Basic credential; 401 when it is not one."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unauthorized("malformed Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed Basic credentials")
    return username, password


class Authenticator:
    """Sets the identity of each request from its ``Authorization`` header."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    async def __call__(self, request: Request, context: RequestContext) -> None:
        header = request.header("authorization")
        if not header:
            context.role = await self.directory.role(ANONYMOUS)
            return
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise Unauthorized(f"unsupported authorization scheme {scheme[:20]!r}")
        username, password = parse_basic(value)
        stored = await self.directory.authenticate(username, password)
        if stored is None:
            raise Unauthorized(_BAD)
        context.user, context.role = await self.directory.user(stored)
