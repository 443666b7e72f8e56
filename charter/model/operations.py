"""Declarative multi-table transactions and the routes that serve them (Nevr's ``transaction``
and ``mapRoute``, SPEC section 9)::

    sign_up = map_route("POST", "/auth/sign-up", atomic=True, validate=SignUp,
        operations=[Operation("User", "create", data=lambda ctx: {...}),
                    Operation("Profile", "create",
                              data=lambda ctx: {"user_id": ctx.results["User"]["id"]})],
        response={"entity": "User", "omit": ["password"]})

These are declarations only: checked when written (a wrong option raises ``CharterError`` at
import, not at the first request), run by ``charter.runtime.flows`` and served by
``charter.web.mapped``. Every callable an operation takes (``data``, ``where``, ``condition``,
``transform``, the callbacks, ``validate``) may be sync or async.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import CharterError
from .contracts import Contract

__all__ = [
    "OPERATIONS",
    "RESPONSE_KEYS",
    "Flow",
    "FlowRunner",
    "MappedRoute",
    "Operation",
    "map_route",
    "set_flow_runner",
    "transaction",
]

OPERATIONS = ("create", "read", "list", "update", "delete", "upsert")
RESPONSE_KEYS = frozenset({"entity", "pick", "omit", "transform"})
_NEEDS_DATA = {"create", "update", "upsert"}
_NEEDS_WHERE = {"read", "update", "delete"}
_TAKES_WHERE = _NEEDS_WHERE | {"list"}


def _table_name(table: Any) -> str:
    if isinstance(table, str) and table:
        return table
    name = getattr(table, "__charter_name__", None)
    if isinstance(table, type) and isinstance(name, str):
        return name
    raise CharterError(f"Operation: {table!r} is not a table name or a Table class")


def _callable_or(value: Any, kinds: tuple[type, ...], what: str) -> None:
    if value is not None and not callable(value) and not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise CharterError(f"Operation: {what} is a {names} or a function of the context")


@dataclass(frozen=True, slots=True)
class Operation:
    """One step of a transaction: ``op`` on the table ``table`` (a name or a Table class).

    Args:
        op: ``create`` (a new record; 409 if its key exists), ``read`` (the record ``where``
            finds, 404 if none), ``list`` (the records ``where`` matches), ``update`` (merge
            ``data`` into the one record ``where`` finds), ``delete`` (the one record ``where``
            finds; its result is the record as it was), ``upsert`` (replace or create the record
            ``data`` names by its key).
        data: the record or the changes: a dict, or a function of the ``FlowContext``.
        where: which records: ``{attribute: value}`` (equality, ANDed), a ``Query``, or a
            function of the context giving either. ``update`` and ``delete`` act on one
            record: 404 when ``where`` finds none, 409 when it finds several; ``read`` takes
            the first it finds.
        condition: a function of the context; when it returns false the step is skipped (its
            result is ``None``).
        transform: a function of the step's result giving what later steps and the response
            see as its result.
        name: the key of its result in ``ctx.results`` (default: the table name; two steps on
            one table need names).
    """

    table: Any
    op: str
    data: Any = None
    where: Any = None
    condition: Callable[[Any], Any] | None = None
    transform: Callable[[Any], Any] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        table = _table_name(self.table)
        object.__setattr__(self, "table", table)
        if self.op not in OPERATIONS:
            raise CharterError(
                f"Operation({table!r}, {self.op!r}): the operation is one of "
                + ", ".join(OPERATIONS)
            )
        if not self.name:
            object.__setattr__(self, "name", table)
        if self.op in _NEEDS_DATA and self.data is None:
            raise CharterError(f"Operation({table!r}, {self.op!r}) needs data")
        if self.op not in _NEEDS_DATA and self.data is not None:
            raise CharterError(f"Operation({table!r}, {self.op!r}) takes no data")
        if self.op in _NEEDS_WHERE and self.where is None:
            raise CharterError(f"Operation({table!r}, {self.op!r}) needs where")
        if self.op not in _TAKES_WHERE and self.where is not None:
            raise CharterError(f"Operation({table!r}, {self.op!r}) takes no where")
        _callable_or(self.data, (dict,), "data")
        if self.where is not None and not (
            callable(self.where)
            or isinstance(self.where, dict)
            or hasattr(self.where, "conditions")  # a Query (layer 2: not imported here)
        ):
            raise CharterError("Operation: where is a dict, a Query or a function of the context")
        for what, fn in (("condition", self.condition), ("transform", self.transform)):
            if fn is not None and not callable(fn):
                raise CharterError(f"Operation: {what} is a function")

    @property
    def right(self) -> str:
        """The table right the step needs (``upsert``: insert or update, decided by the runtime)."""
        return {
            "create": "insert",
            "read": "read",
            "list": "read",
            "update": "update",
            "delete": "delete",
            "upsert": "update",
        }[self.op]


class FlowRunner(Protocol):
    """What runs a ``Flow`` (``charter.runtime.flows`` installs it)."""

    def __call__(
        self,
        flow: Flow,
        *,
        body: Any,
        params: Mapping[str, Any],
        query: Mapping[str, Any],
        privileged: bool,
    ) -> Awaitable[dict[str, Any]]: ...


_runner: list[FlowRunner] = []


def set_flow_runner(runner: FlowRunner) -> None:
    """Install what ``Flow.__call__`` runs (the runtime layer's executor)."""
    _runner[:] = [runner]


Callback = Callable[[Any, Any], Any]


@dataclass(frozen=True, slots=True)
class Flow:
    """Steps run in order in one transaction; ``transaction(...)`` makes one.

    Calling it (``await flow(body=...)``) runs it as the calling request's user, inside the
    request's transaction (or a new one, committed at the end, outside a request), and returns
    every step's result by name.
    """

    operations: tuple[Operation, ...]
    atomic: bool = True
    on_success: Callback | None = None
    on_error: Callback | None = None

    async def __call__(
        self,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        privileged: bool = False,
    ) -> dict[str, Any]:
        if not _runner:
            raise CharterError("no flow runner: import charter (the App installs it)")
        return await _runner[0](
            self, body=body, params=params or {}, query=query or {}, privileged=privileged
        )


def transaction(
    operations: Sequence[Operation] | Operation,
    *,
    atomic: bool = True,
    on_success: Callback | None = None,
    on_error: Callback | None = None,
) -> Flow:
    """Declare a multi-table transaction.

    Args:
        operations: the steps, run in order; each sees the earlier ones' results.
        atomic: True: when a step fails no step leaves a trace. False: the steps that succeeded
            stay, the failing one is undone, and the error names it (``FlowError``).
        on_success: ``fn(results, ctx)``, run once the transaction has committed.
        on_error: ``fn(error, ctx)``, run once the failed steps are undone.
    """
    steps = (operations,) if isinstance(operations, Operation) else tuple(operations)
    if not steps:
        raise CharterError("transaction() needs at least one Operation")
    names: set[str] = set()
    for step in steps:
        if not isinstance(step, Operation):
            raise CharterError(f"transaction() takes Operation values, not {step!r}")
        if step.name in names:
            raise CharterError(
                f"two steps are named {step.name!r}: give one of them name='...' (results are "
                "kept by name)"
            )
        names.add(step.name)
    for what, fn in (("on_success", on_success), ("on_error", on_error)):
        if fn is not None and not callable(fn):
            raise CharterError(f"transaction(): {what} is a function")
    return Flow(steps, bool(atomic), on_success, on_error)


@dataclass(frozen=True, slots=True)
class MappedRoute:
    """A route whose handler is a ``Flow``; list it in ``App(routes=[...])``."""

    method: str
    path: str
    flow: Flow
    validate: Any = None
    response: Mapping[str, Any] = field(default_factory=dict)
    privileged: bool = False
    roles: Any = None
    status: int | None = None
    name: str = ""
    description: str | None = None


_UNSET: Any = object()


def map_route(
    method: str,
    path: str,
    *,
    operations: Sequence[Operation] | Operation | Flow,
    atomic: bool = _UNSET,
    validate: Any = None,
    response: Mapping[str, Any] | None = None,
    on_success: Callback | None = None,
    on_error: Callback | None = None,
    privileged: bool = False,
    roles: Any = None,
    status: int | None = None,
    name: str | None = None,
    description: str | None = None,
) -> MappedRoute:
    """Serve a transaction at ``method path``.

    Args:
        operations: the steps (or a ``Flow`` from ``transaction(...)``, which then carries
            ``atomic`` and the callbacks).
        atomic: as for ``transaction`` (default True).
        validate: the body's schema (a dataclass, msgspec Struct, TypedDict or JSON Schema
            dict, checked as a contract's payload: 422 ``INVALID_PROPERTIES``), or a function
            ``fn(body)`` returning the problems (strings or detail dicts; none: valid).
        response: ``{"entity": step, "pick": [...], "omit": [...], "transform": fn}``; by
            default every step's result by name. Records show what the caller may see.
        privileged: run the steps as server code (no grants, attribute permissions or row
            rules; ``allow_*`` hooks still apply). By default they run as the caller.
        roles: who may call the route, as ``Contract(roles=...)``.
        status: the success status (default 201 for POST, else 200; 204 when nothing to say).
    """
    if isinstance(operations, Flow):
        if atomic is not _UNSET or on_success is not None or on_error is not None:
            raise CharterError(
                "map_route(operations=transaction(...)): give atomic and the callbacks to "
                "transaction()"
            )
        flow = operations
    else:
        flow = transaction(
            operations,
            atomic=True if atomic is _UNSET else atomic,
            on_success=on_success,
            on_error=on_error,
        )
    spec = dict(response or {})
    unknown = set(spec) - RESPONSE_KEYS
    if unknown:
        raise CharterError(
            f"map_route response: unknown keys {sorted(unknown)} (known: entity, pick, omit, "
            "transform)"
        )
    steps = {step.name for step in flow.operations}
    entity = spec.get("entity")
    if entity is not None and entity not in steps:
        raise CharterError(f"map_route response: no step is named {entity!r}")
    if (spec.get("pick") is not None or spec.get("omit") is not None) and entity is None:
        raise CharterError("map_route response: pick and omit apply to an entity: name it")
    for key in ("pick", "omit"):
        value = spec.get(key)
        if value is not None and (
            isinstance(value, str) or not all(isinstance(v, str) for v in value)
        ):
            raise CharterError(f"map_route response: {key} is a list of attribute names")
    if spec.get("transform") is not None and not callable(spec["transform"]):
        raise CharterError("map_route response: transform is a function")
    if validate is not None and not (isinstance(validate, type | dict) or callable(validate)):
        raise CharterError("map_route validate: a schema (type or JSON Schema) or a function")
    if status is not None and not (isinstance(status, int) and 200 <= status <= 299):
        raise CharterError("map_route status: a 2xx status")
    if roles is not None:
        Contract(roles=roles)  # the same values as a contract's roles, checked the same way
    method = method.upper()
    if not path.startswith("/"):
        raise CharterError(f"map_route path {path!r} must start with /")
    label = name or f"{method.lower()}_{path.strip('/').replace('/', '_').replace('-', '_')}"
    return MappedRoute(
        method,
        path,
        flow,
        validate,
        spec,
        bool(privileged),
        roles,
        status,
        label,
        description,
    )
