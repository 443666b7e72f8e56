"""Compile a Python function's signature into validators for its parameters and result.

Used by model methods, RPC services and routes alike. Body parameters are checked without
coercion; query-string parameters are coerced to their declared types. Special annotations:
``AsyncIterator[bytes]`` (a parameter receives the body as a stream; a return streams the
response), ``RequestContext`` / ``Request`` (injected), ``HttpResult[T]`` (status and headers
around a ``T``), ``Partial[T]`` (every field optional, recursively), a ``Table`` (validated as
that table's record).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, get_args, get_origin

import msgspec

from ..limits import MAX_BODY_DEPTH
from .annotations import is_list_type, without_none
from .validation import InputError, details_from_message, too_deep, validate_object

__all__ = ["Param", "Partial", "Signature", "compile_signature"]

T = TypeVar("T")

BODY, QUERY, STREAM, INJECT, PATH = "body", "query", "stream", "inject", "path"


class Partial(Generic[T]):
    """``Partial[T]``: ``T`` with every field optional, recursively (for update methods).

    The value arrives as a dict holding only the fields the caller gave.
    """


@dataclass(slots=True)
class Param:
    """One parameter of an endpoint function."""

    name: str
    annotation: Any
    checked: Any
    source: str
    default: Any = msgspec.NODEFAULT
    positional: bool = True
    is_list: bool = False

    @property
    def required(self) -> bool:
        return self.default is msgspec.NODEFAULT


@dataclass(slots=True)
class Signature:
    """What an endpoint takes and returns, compiled once."""

    params: list[Param]
    returns: Any
    return_kind: str  # "none", "value", "stream", "result"
    result_type: Any = None
    is_async: bool = True
    body_struct: Any = None
    body_types: dict[str, Any] = field(default_factory=dict)
    inject: dict[str, Any] = field(default_factory=dict)
    takes_body: bool = False  # arguments come in the body (even none: extra ones are a 422)

    @property
    def body_params(self) -> list[Param]:
        return [p for p in self.params if p.source == BODY]

    @property
    def stream_param(self) -> Param | None:
        return next((p for p in self.params if p.source == STREAM), None)

    def bind_body(self, value: Any, loc: str = "body") -> dict[str, Any]:
        """Keyword arguments from a body: an object by name, or an array of positionals."""
        params = self.body_params
        if isinstance(value, list):
            positional = [p for p in params if p.positional]  # keyword-only ones go by name
            if len(value) > len(positional):
                raise InputError(
                    [
                        {"loc": [loc, i], "code": "EXTRANEOUS_PROPERTY",
                         "message": "too many positional arguments"}
                        for i in range(len(positional), len(value))
                    ]
                )  # fmt: skip
            value = {p.name: item for p, item in zip(positional, value, strict=False)}
        if value is None and not any(p.required for p in params):
            value = {}
        try:
            struct = msgspec.convert(value, self.body_struct, strict=True)
        except msgspec.ValidationError as exc:
            required = {p.name for p in params if p.required}
            details = validate_object(value, self.body_types, required, [loc])
            raise InputError(details or [details_from_message(str(exc), [loc])]) from None
        return {
            p.name: getattr(struct, p.name)
            for p in params
            if getattr(struct, p.name) is not msgspec.UNSET
        }

    def bind_query(self, query: dict[str, list[str]], loc: str = "query") -> dict[str, Any]:
        """Keyword arguments from query parameters, coerced; ``k`` and ``k[]`` make lists."""
        out: dict[str, Any] = {}
        details: list[dict[str, Any]] = []
        for param in self.params:
            if param.source != QUERY:
                continue
            raw = query.get(param.name)
            if raw is None:
                raw = query.get(param.name + "[]")
            if raw is None:
                if param.required:
                    details.append(
                        {"loc": [loc, param.name], "code": "MISSING_PROPERTY",
                         "message": "parameter is required"}
                    )  # fmt: skip
                continue
            value: Any = raw if param.is_list else raw[-1]
            try:
                out[param.name] = _convert_text(value, param.checked)
            except msgspec.ValidationError as exc:
                details.append(details_from_message(str(exc), [loc, param.name]))
        if details:
            raise InputError(details)
        return out


def _convert_text(value: Any, type_: Any) -> Any:
    """Coerce query text to ``type_`` (JSON text for objects)."""
    try:
        return msgspec.convert(value, type_, strict=False)
    except msgspec.ValidationError:
        if isinstance(value, str) and value[:1] in ("{", "["):
            try:
                decoded = msgspec.json.decode(value)
            except (msgspec.DecodeError, RecursionError):
                pass
            else:
                if not too_deep(decoded, MAX_BODY_DEPTH):
                    return msgspec.convert(decoded, type_, strict=False)
        raise


def is_byte_stream(tp: Any) -> bool:
    """True for ``AsyncIterator[bytes]`` / ``AsyncIterable[bytes]`` / ``AsyncGenerator``."""
    origin = get_origin(tp)
    streams = (
        collections.abc.AsyncIterator,
        collections.abc.AsyncIterable,
        collections.abc.AsyncGenerator,
    )
    return origin in streams and get_args(tp)[:1] == (bytes,)


def resolve_type(tp: Any, tables: Callable[[type], Any] | None = None) -> Any:
    """The msgspec-checkable type for an annotation (``Partial`` and tables expanded)."""
    origin = get_origin(tp)
    if origin is Partial:
        (inner,) = get_args(tp)
        return _partial(inner, tables)
    if isinstance(tp, type) and hasattr(tp, "__charter_table__") and tables is not None:
        return tables(tp)
    if origin is typing.Annotated:
        base, *meta = get_args(tp)
        return typing.Annotated[(resolve_type(base, tables), *meta)]
    args = get_args(tp)
    if origin is not None and args and origin not in (typing.Literal,):
        resolved = tuple(resolve_type(a, tables) for a in args)
        if resolved != args:
            if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
                return typing.Union[resolved]  # noqa: UP007
            return origin[resolved]
    return tp


_partials: dict[Any, Any] = {}


def _partial(tp: Any, tables: Callable[[type], Any] | None) -> Any:
    """A Struct type with every field of ``tp`` optional (UNSET), nested objects partial too."""
    if tp in _partials:
        return _partials[tp]
    if isinstance(tp, type) and hasattr(tp, "__charter_table__") and tables is not None:
        tp = tables(tp)
    try:
        info = msgspec.inspect.type_info(tp)
    except (TypeError, ValueError):
        return tp
    fields = getattr(info, "fields", None)
    if fields is None:
        return tp
    hints = typing.get_type_hints(tp, include_extras=True) if not _is_struct(tp) else {}
    out = []
    for f in fields:
        annotation = hints.get(f.name, Any) if hints else _struct_hint(tp, f.name)
        nested = without_none(annotation)[0]
        if _is_object_type(nested):
            annotation = _partial(nested, tables) | None
        out.append((f.name, annotation, msgspec.UNSET))
    struct = msgspec.defstruct(
        f"Partial{getattr(tp, '__name__', 'Object')}", out, kw_only=True, forbid_unknown_fields=True
    )
    _partials[tp] = struct
    return struct


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _struct_hint(tp: Any, name: str) -> Any:
    return typing.get_type_hints(tp, include_extras=True).get(name, Any)


def _is_object_type(tp: Any) -> bool:
    if not isinstance(tp, type):
        return False
    return dataclasses.is_dataclass(tp) or issubclass(tp, msgspec.Struct) or typing.is_typeddict(tp)


def compile_signature(
    fn: Callable[..., Any],
    *,
    skip_first: bool = False,
    query_params: bool = False,
    inject: dict[Any, str] | None = None,
    tables: Callable[[type], Any] | None = None,
    path_params: frozenset[str] = frozenset(),
) -> Signature:
    """Compile ``fn``'s parameters and return annotation.

    Args:
        skip_first: leave out ``self``/``cls``.
        query_params: parameters come from the query string (GET) instead of the body.
        inject: annotation -> name of a value the endpoint provides (context, request).
        tables: maps a Table class to the type that validates its records.
        path_params: names filled from the URL path.
    """
    hints = typing.get_type_hints(fn, include_extras=True)
    parameters = list(inspect.signature(fn).parameters.values())
    if skip_first and parameters:
        parameters = parameters[1:]
    inject = inject or {}
    params: list[Param] = []
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = hints.get(p.name, Any)
        default = p.default if p.default is not inspect.Parameter.empty else msgspec.NODEFAULT
        positional = p.kind != p.KEYWORD_ONLY
        base = without_none(annotation)[0]
        injected = next((v for k, v in inject.items() if base is k), None)
        if injected is not None:
            params.append(Param(p.name, annotation, None, INJECT, default, positional))
            continue
        if is_byte_stream(base):
            params.append(Param(p.name, annotation, None, STREAM, default, positional))
            continue
        checked = resolve_type(annotation, tables)
        source = PATH if p.name in path_params else QUERY if query_params else BODY
        params.append(
            Param(
                p.name, annotation, checked, source, default, positional, is_list_type(annotation)
            )
        )
    returns = hints.get("return", Any)
    return_kind, result_type = _return_kind(returns, tables)
    body = [p for p in params if p.source == BODY]
    struct = msgspec.defstruct(
        f"{getattr(fn, '__name__', 'fn')}Params",
        [(p.name, p.checked, msgspec.NODEFAULT if p.required else p.default) for p in body],
        kw_only=True,
        forbid_unknown_fields=True,
    )
    return Signature(
        params=params,
        returns=returns,
        return_kind=return_kind,
        result_type=result_type,
        is_async=inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn),
        body_struct=struct,
        body_types={p.name: p.checked for p in body},
        takes_body=not query_params and not any(p.source == STREAM for p in params),
    )


def _mentions_table(tp: Any) -> bool:
    if isinstance(tp, type) and hasattr(tp, "__charter_table__"):
        return True
    return any(_mentions_table(arg) for arg in get_args(tp))


def _return_kind(returns: Any, tables: Callable[[type], Any] | None) -> tuple[str, Any]:
    """How a result is sent, and the type it is checked against (None: not checked).

    Records (tables) are returned as their public view, which no input type describes; they
    are trusted, as they come from storage.
    """
    if _mentions_table(returns):
        return (
            ("result", None)
            if getattr(get_origin(returns), "__charter_result__", False)
            else ("value", None)
        )
    if returns is None or returns is type(None):
        return "none", None
    if is_byte_stream(returns):
        return "stream", None
    origin = get_origin(returns)
    if origin is not None and getattr(origin, "__charter_result__", False):
        args = get_args(returns)
        return "result", resolve_type(args[0], tables) if args else Any
    if getattr(returns, "__charter_result__", False):
        return "result", Any
    return "value", resolve_type(returns, tables)


def convert_path(param: Param, text: str) -> Any:
    """A path parameter's text as its annotation says (``InputError`` at ``["path", name]``)."""
    try:
        return msgspec.convert(text, param.checked, strict=False)
    except msgspec.ValidationError as exc:
        raise InputError([details_from_message(str(exc), ["path", param.name])]) from None
