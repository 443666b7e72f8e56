"""Declaring functions as endpoints: model methods on tables, RPC services.

class Product(Table):
    @get                                  # GET /Product/{id}/label
    def label(self) -> str: ...

    @post(egroup="stock", perm=perms.RW)  # a role needs RW_ on the egroup "stock"
    def restock(self, amount: int) -> int: ...

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
from typing import Any, TypeVar, cast, overload

from ..errors import CharterError
from . import perms as _perms

__all__ = ["MethodSpec", "RpcSpec", "Service", "delete", "get", "patch", "post", "put", "rpc"]

F = TypeVar("F")
Fn = TypeVar("Fn", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """How a table method is served: its verb, whether it is static, and who may call it.

    ``egroup``/``perm``: a caller's role needs ``perm`` (default ``perms.X``) among its bits
    for ``egroup``, as for an RPC. Neither given: the caller needs the table right its verb
    implies (GET: read, DELETE: delete, others: update). See ``charter.runtime.access``.
    """

    verb: str
    static: bool
    fn: Callable[..., Any]
    name: str
    egroup: str | None = None
    perm: int | None = None

    @property
    def declared(self) -> bool:
        """Whether who may call it is declared (egroup or perm), not implied by its verb."""
        return self.egroup is not None or self.perm is not None

    @property
    def table_right(self) -> str:
        """The table right an undeclared method needs."""
        return {"GET": "read", "DELETE": "delete"}.get(self.verb, "update")


def _unwrap(obj: Any) -> tuple[Callable[..., Any], bool]:
    if isinstance(obj, staticmethod | classmethod):
        return obj.__func__, True
    return obj, False


def _check_perm(where: str, egroup: Any, perm: Any) -> None:
    if perm is not None and (
        isinstance(perm, bool) or not isinstance(perm, int) or not 0 <= perm <= _perms.RWX
    ):
        raise CharterError(f"{where}(perm={perm!r}): permission bits are 0 to 7 (perms.R | ...)")
    if egroup is not None and (not isinstance(egroup, str) or not egroup):
        raise CharterError(f"{where}(egroup={egroup!r}): an egroup is a non-empty string")


class _Verb:
    """``@get`` serves a table method on GET; ``@get(egroup=..., perm=...)`` also says which
    permission bits a caller's role needs (see ``MethodSpec``)."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.__name__ = verb.lower()
        self.__doc__ = (
            f"Serve a table method on {verb}: static at /Table/name, instance at /Table/id/name."
        )

    @overload
    def __call__(self, obj: F, /) -> F: ...
    @overload
    def __call__(
        self, /, *, egroup: str | None = None, perm: int | None = None
    ) -> Callable[[F], F]: ...
    def __call__(
        self, obj: Any = None, /, *, egroup: str | None = None, perm: int | None = None
    ) -> Any:
        if obj is None:
            _check_perm(self.__name__, egroup, perm)
            return lambda target: self._decorate(target, egroup, perm)
        return self._decorate(obj, None, None)

    def _decorate(self, obj: F, egroup: str | None, perm: int | None) -> F:
        fn, static = _unwrap(obj)
        bits = None if perm is None else _perms.Perm(perm)
        if egroup is not None and bits is None:
            bits = _perms.X
        spec = MethodSpec(self.verb, static, fn, fn.__name__, egroup, bits)
        fn.__charter_method__ = spec  # type: ignore[attr-defined]
        if isinstance(obj, staticmethod | classmethod):
            cast("Any", obj).__charter_method__ = spec
        return obj


get = _Verb("GET")
post = _Verb("POST")
put = _Verb("PUT")
patch = _Verb("PATCH")
delete = _Verb("DELETE")


def method_spec(obj: Any) -> MethodSpec | None:
    """The ``MethodSpec`` of a class attribute, if it is a served method."""
    spec = getattr(obj, "__charter_method__", None)
    if spec is None and isinstance(obj, staticmethod | classmethod):
        spec = getattr(obj.__func__, "__charter_method__", None)
    if isinstance(spec, MethodSpec) and isinstance(obj, staticmethod | classmethod):
        return MethodSpec(spec.verb, True, spec.fn, spec.name, spec.egroup, spec.perm)
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

    _check_perm("rpc", egroup, perm)

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
