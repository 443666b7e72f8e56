"""Field declarations: ``Field(...)`` options and ``relationship(...)`` on table attributes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from . import perms

__all__ = ["MISSING", "Field", "FieldInfo", "RelationshipInfo", "relationship"]


class _Missing:
    """Sentinel for 'no default given'."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


class FieldInfo:
    """Everything ``Field(...)`` says about one attribute of a table."""

    __slots__ = (
        "created_time",
        "default",
        "default_factory",
        "description",
        "ge",
        "gt",
        "indexed",
        "input",
        "le",
        "lt",
        "max_length",
        "min_length",
        "pattern",
        "perm",
        "primary_key",
        "returned",
        "updated_time",
    )

    def __init__(
        self,
        default: Any = MISSING,
        *,
        default_factory: Callable[[], Any] | None = None,
        primary_key: bool = False,
        indexed: bool = False,
        input: bool = True,
        returned: bool = True,
        perm: int | None = None,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        description: str | None = None,
        created_time: bool = False,
        updated_time: bool = False,
    ) -> None:
        self.default = default
        self.default_factory = default_factory
        self.primary_key = primary_key
        self.indexed = indexed or primary_key
        bits = perms.RW_ if perm is None else perm
        if not input or created_time or updated_time:
            bits &= ~perms._W_
        if not returned:
            bits &= ~perms.R__
        self.perm = bits
        self.input = bool(bits & perms._W_)
        self.returned = bool(bits & perms.R__)
        self.ge, self.gt, self.le, self.lt = ge, gt, le, lt
        self.min_length, self.max_length, self.pattern = min_length, max_length, pattern
        self.description = description
        self.created_time = created_time
        self.updated_time = updated_time

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING or self.default_factory is not None

    def make_default(self) -> Any:
        if self.default_factory is not None:
            return self.default_factory()
        return self.default

    def constraints(self) -> dict[str, Any]:
        """The msgspec ``Meta`` keyword arguments of this field's constraints."""
        names = ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def merge(self, other: FieldInfo) -> FieldInfo:
        """Combine an ``Annotated`` Field with the one given as the default."""
        merged = FieldInfo()
        for name in self.__slots__:
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(merged, name, theirs if theirs not in (None, False, MISSING) else mine)
        merged.perm = self.perm & other.perm
        merged.input = bool(merged.perm & perms._W_)
        merged.returned = bool(merged.perm & perms.R__)
        return merged


def Field(
    default: Any = MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    primary_key: bool = False,
    indexed: bool = False,
    input: bool = True,
    returned: bool = True,
    perm: int | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
    description: str | None = None,
    created_time: bool = False,
    updated_time: bool = False,
) -> Any:
    """Declare a table attribute's options.

    Args:
        default: value when a create omits the attribute (mutable defaults are copied).
        primary_key: this attribute identifies the record (a UUID string is generated when a
            create omits a string key).
        indexed: keep an index so queries on it do not scan.
        input: False drops the attribute from client input (the server sets it).
        returned: False keeps it out of every response and event.
        perm: field bits (``perms.R__`` readable only, ``perms.RW_`` the default).
        ge, gt, le, lt, min_length, max_length, pattern: constraints checked on input.
        description: documentation carried into the JSON Schema.
        created_time, updated_time: timestamps the server maintains.
    """
    return FieldInfo(
        default,
        default_factory=default_factory,
        primary_key=primary_key,
        indexed=indexed,
        input=input,
        returned=returned,
        perm=perm,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        min_length=min_length,
        max_length=max_length,
        pattern=pattern,
        description=description,
        created_time=created_time,
        updated_time=updated_time,
    )


class RelationshipInfo:
    """A link to another table: to-one through ``from_`` (our foreign key), to-many through
    ``to`` (the other table's foreign key pointing at our primary key)."""

    __slots__ = ("from_", "many", "target", "to")

    def __init__(self, from_: str | None = None, to: str | None = None) -> None:
        if (from_ is None) == (to is None):
            raise TypeError("relationship() takes exactly one of from_= or to=")
        self.from_ = from_
        self.to = to
        self.target: Any = None  # the related Table class, resolved when the app is built
        self.many = False


def relationship(
    *, from_: str | None = None, to: str | None = None, init: Literal[False] = False
) -> Any:
    """Declare a relationship attribute (not stored; followed by queries and nested selects).

    Args:
        from_: name of this table's attribute holding the related record's primary key (to-one,
            or to-many when it holds a list of keys).
        to: name of the related table's attribute holding this record's primary key (to-many).
        init: always False; it tells type checkers (``dataclass_transform``) that a relationship
            is not a keyword of the table's constructor.
    """
    return RelationshipInfo(from_=from_, to=to)
