"""Roles, grants and the signed-in user, as declared in code (SPEC section 6).

A ``Role`` names what its users may do: everything (``super_user``), per table ``Grant``s of
``read/insert/update/delete`` with optional per-attribute rights, per egroup permission bits
(``perms``) for RPC services and model methods. Declarations are plain values: they are
checked against the app's tables when the app is built, and kept in step with the roles system
table at start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import CharterError

__all__ = ["ANONYMOUS", "Grant", "Role", "User", "attribute_rights"]

ANONYMOUS = "anonymous"
"""The role of a request that is not signed in, when auth is on (no rights unless granted)."""

_RIGHTS = {"": frozenset(), "r": frozenset("r"), "w": frozenset("w"), "rw": frozenset("rw")}


def attribute_rights(spec: str | Mapping[str, bool]) -> frozenset[str]:
    """``"r"``, ``"rw"``, ``"w"``, ``""`` or ``{"read": bool, "update": bool}`` as a set of
    ``"r"``/``"w"``; anything else raises ``CharterError`` (a typo must not grant or hide)."""
    if isinstance(spec, str):
        rights = _RIGHTS.get("".join(sorted(spec.lower())))
        if rights is None:
            raise CharterError(f"an attribute right is 'r', 'rw', 'w' or '', not {spec!r}")
        return rights
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"read", "update"}
        if unknown:
            raise CharterError(f"an attribute right has 'read' and 'update', not {sorted(unknown)}")
        return frozenset(
            letter for key, letter in (("read", "r"), ("update", "w")) if spec.get(key)
        )
    raise CharterError(f"an attribute right is a string such as 'rw' or a dict, not {spec!r}")


@dataclass(frozen=True)
class Grant:
    """What a role may do with one table.

    Args:
        read, insert, update, delete: the table operations allowed.
        attributes: when given, per attribute ``"r"`` (read), ``"rw"`` (read and update),
            ``"w"`` or ``""``; attributes not listed are hidden and read-only (the primary key
            stays readable).
    """

    read: bool = False
    insert: bool = False
    update: bool = False
    delete: bool = False
    attributes: Mapping[str, frozenset[str]] | None = None

    def __init__(
        self,
        read: bool = False,
        insert: bool = False,
        update: bool = False,
        delete: bool = False,
        attributes: Mapping[str, str | Mapping[str, bool]] | None = None,
    ) -> None:
        for name, value in (("read", read), ("insert", insert), ("update", update)):
            if not isinstance(value, bool):
                raise CharterError(f"Grant({name}=...) is True or False, not {value!r}")
        if not isinstance(delete, bool):
            raise CharterError(f"Grant(delete=...) is True or False, not {delete!r}")
        object.__setattr__(self, "read", read)
        object.__setattr__(self, "insert", insert)
        object.__setattr__(self, "update", update)
        object.__setattr__(self, "delete", delete)
        rights = None
        if attributes is not None:
            rights = {str(k): attribute_rights(v) for k, v in attributes.items()}
        object.__setattr__(self, "attributes", rights)

    def to_json(self) -> dict[str, Any]:
        """The grant as stored in the roles system table."""
        body: dict[str, Any] = {
            "read": self.read,
            "insert": self.insert,
            "update": self.update,
            "delete": self.delete,
        }
        if self.attributes is not None:
            body["attributes"] = {k: "".join(sorted(v)) for k, v in self.attributes.items()}
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Grant:
        return cls(
            read=bool(body.get("read")),
            insert=bool(body.get("insert")),
            update=bool(body.get("update")),
            delete=bool(body.get("delete")),
            attributes=body.get("attributes"),
        )


@dataclass(frozen=True)
class Role:
    """A named set of rights; every user has exactly one.

    Args:
        name: the role's name (``"anonymous"`` is the role of requests not signed in).
        super_user: may do everything, bypassing grants and row rules.
        tables: per table (its name or its class) a ``Grant``; tables not named are closed.
        egroups: per egroup the permission bits granted (``perms.R_X``...), checked against an
            RPC's or model method's declared ``perm``.
    """

    name: str
    super_user: bool = False
    tables: Mapping[str, Grant] = field(default_factory=dict)
    egroups: Mapping[str, int] = field(default_factory=dict)

    def __init__(
        self,
        name: str,
        *,
        super_user: bool = False,
        tables: Mapping[Any, Grant] | None = None,
        egroups: Mapping[str, int] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or len(name) > 64 or not name.isprintable():
            raise CharterError(f"a role name is 1-64 printable characters, not {name!r}")
        named: dict[str, Grant] = {}
        for table, grant in (tables or {}).items():
            key = table if isinstance(table, str) else getattr(table, "__name__", None)
            if not isinstance(key, str):
                raise CharterError(f"Role({name!r}, tables=...) keys are table names or classes")
            if not isinstance(grant, Grant):
                raise CharterError(f"Role({name!r}, tables={{{key!r}: ...}}) takes a Grant")
            named[key] = grant
        bits: dict[str, int] = {}
        for egroup, value in (egroups or {}).items():
            if not isinstance(value, int) or not 0 <= int(value) <= 7:
                raise CharterError(f"Role({name!r}, egroups=...) values are perms bits 0-7")
            bits[str(egroup)] = int(value)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "super_user", bool(super_user))
        object.__setattr__(self, "tables", named)
        object.__setattr__(self, "egroups", bits)

    def grant(self, table: str) -> Grant | None:
        """This role's grant on ``table``, None when it has none."""
        return self.tables.get(table)

    def to_json(self) -> dict[str, Any]:
        """The role as stored in the roles system table and listed by ``GET /auth/roles``."""
        return {
            "name": self.name,
            "super_user": self.super_user,
            "tables": {k: g.to_json() for k, g in self.tables.items()},
            "egroups": dict(self.egroups),
        }

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Role:
        return cls(
            str(body["name"]),
            super_user=bool(body.get("super_user")),
            tables={k: Grant.from_json(v) for k, v in (body.get("tables") or {}).items()},
            egroups=dict(body.get("egroups") or {}),
        )


@dataclass(frozen=True)
class User:
    """The signed-in user, as hooks and row rules see it (``None`` when not signed in).

    ``id`` is stable for the user's lifetime (use it in row rules: ``owner == user.id``);
    ``role`` is the role's name.
    """

    id: str
    username: str
    role: str
    super_user: bool = False
