"""Declaring functions as endpoints: model methods on tables, RPC services.

class Product(Table):
    @get                                  # GET /Product/{id}/label
    def label(self) -> str: ...

    @post                                 # POST /Product/discount
    @staticmethod
    async def discount(percent: float) -> int: ...

class Orders(Service):
    @rpc(egroup="api-v1", perm=perms.RWX)  # POST /rpc/place_order
    async def place_order(self, product_id: str, qty: int) -> dict: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from ..errors import CharterError
from . import perms as _perms

__all__ = ["MethodSpec", "RpcSpec", "Service", "delete", "get", "patch", "post", "put", "rpc"]

F = TypeVar("F")
Fn = TypeVar("Fn", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """How a table method is served: its verb, and whether it is static."""

    verb: str
    static: bool
    fn: Callable[..., Any]
    name: str


def _unwrap(obj: Any) -> tuple[Callable[..., Any], bool]:
    if isinstance(obj, staticmethod | classmethod):
        return obj.__func__, True
    return obj, False


def _verb(verb: str) -> Callable[[F], F]:
    def decorate(obj: F) -> F:
        fn, static = _unwrap(obj)
        spec = MethodSpec(verb, static, fn, fn.__name__)
        fn.__charter_method__ = spec  # type: ignore[attr-defined]
        if isinstance(obj, staticmethod | classmethod):
            obj.__charter_method__ = spec  # type: ignore[union-attr]
        return obj

    decorate.__name__ = verb.lower()
    decorate.__doc__ = (
        f"Serve a table method on {verb}: static at /Table/name, instance at /Table/id/name."
    )
    return decorate


get = _verb("GET")
post = _verb("POST")
put = _verb("PUT")
patch = _verb("PATCH")
delete = _verb("DELETE")


def method_spec(obj: Any) -> MethodSpec | None:
    """The ``MethodSpec`` of a class attribute, if it is a served method."""
    spec = getattr(obj, "__charter_method__", None)
    if spec is None and isinstance(obj, staticmethod | classmethod):
        spec = getattr(obj.__func__, "__charter_method__", None)
    if isinstance(spec, MethodSpec) and isinstance(obj, staticmethod | classmethod):
        return MethodSpec(spec.verb, True, spec.fn, spec.name)
    return spec if isinstance(spec, MethodSpec) else None


@dataclass(frozen=True, slots=True)
class RpcSpec:
    """An RPC endpoint: its name, egroup and the permission bits a caller needs."""

    name: str
    egroup: str | None
    perm: int
    fn: Callable[..., Any]


@overload
def rpc(fn: Fn, *, egroup: str | None = ..., perm: int = ..., name: str | None = ...) -> Fn: ...
@overload
def rpc(
    fn: None = None, *, egroup: str | None = ..., perm: int = ..., name: str | None = ...
) -> Callable[[Fn], Fn]: ...
def rpc(
    fn: Callable[..., Any] | None = None,
    *,
    egroup: str | None = None,
    perm: int = _perms.X,
    name: str | None = None,
) -> Any:
    """Serve a ``Service`` method at ``POST /rpc/{name}``.

    Args:
        egroup: the endpoint group whose grant is checked (see ``charter.runtime.grants``).
        perm: bits the caller's grant for ``egroup`` must hold (``granted & perm == perm``);
            default ``perms.X`` (execute).
        name: the RPC name (default: the method's name).
    """

    if isinstance(perm, bool) or not isinstance(perm, int) or not 0 <= perm <= _perms.RWX:
        raise CharterError(f"rpc(perm={perm!r}): permission bits are 0 to 7 (perms.R | perms.W...)")
    if egroup is not None and (not isinstance(egroup, str) or not egroup):
        raise CharterError(f"rpc(egroup={egroup!r}): an egroup is a non-empty string")

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        spec = RpcSpec(name or f.__name__, egroup, _perms.Perm(perm), f)
        f.__charter_rpc__ = spec  # type: ignore[attr-defined]
        return f

    return decorate(fn) if fn is not None else decorate


class Service:
    """A group of RPC methods; one instance per app (``self.app`` is the app)."""

    app: Any = None

    @classmethod
    def rpc_methods(cls) -> list[RpcSpec]:
        found: list[RpcSpec] = []
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                spec = getattr(value, "__charter_rpc__", None)
                if isinstance(spec, RpcSpec):
                    found = [s for s in found if s.name != spec.name] + [spec]
        return found
