"""Serve a Python function over HTTP: bind its arguments, call it, check and encode its result.

One ``Endpoint`` per model method, RPC and route, built when the app is built.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import inspect
import logging
import uuid
from collections.abc import Callable
from typing import Any, get_args, get_origin

import msgspec

from ..errors import InvalidResponse, ValidationError
from ..http.codecs import Codec, negotiate, read_body
from ..http.request import Request
from ..http.response import Response
from ..model.results import HttpResult
from ..runtime.context import current_context
from ..schema.annotations import without_none
from ..schema.signature import INJECT, PATH, QUERY, Partial, Signature, convert_path
from ..schema.validation import InputError

__all__ = ["Endpoint"]

log = logging.getLogger("charter.endpoints")

_NATIVE = (bytes, bytearray, memoryview, dt.datetime, dt.date, dt.time, uuid.UUID, decimal.Decimal)


def _builtins(value: Any, *, whole: bool = False) -> Any:
    """``value`` as JSON-like builtins; a record as the request's role may see it (``whole``:
    as any client may, which is what its declared type describes)."""

    def hook(obj: Any) -> Any:
        public = getattr(obj, "__charter_public__", None)
        if public is not None:
            return public(whole)
        if hasattr(obj, "to_dict"):
            return obj.to_dict()
        raise NotImplementedError(f"cannot encode {type(obj).__name__}")

    return msgspec.to_builtins(value, builtin_types=_NATIVE, enc_hook=hook)


def _converter(annotation: Any) -> Callable[[Any], Any] | None:
    """How a checked value becomes what the parameter's annotation promises (None: as is)."""
    base = without_none(annotation)[0]
    origin = get_origin(base)
    if origin is Partial:
        return lambda value: msgspec.to_builtins(value, builtin_types=_NATIVE)
    if isinstance(base, type) and hasattr(base, "__charter_table__"):

        def record(value: Any) -> Any:
            values = {
                f: v for f, v in msgspec.structs.asdict(value).items() if v is not msgspec.UNSET
            }
            return base(**values)

        return record
    args = get_args(base)
    # Containers of tables or partials: convert their items (list[Brand], dict[str, Brand]).
    if origin in (list, set, frozenset) and len(args) == 1:
        item = _converter(args[0])
        if item is not None:
            each = item
            return lambda value: origin(None if v is None else each(v) for v in value)
    if origin is dict and len(args) == 2:
        item = _converter(args[1])
        if item is not None:
            each = item
            return lambda value: {k: None if v is None else each(v) for k, v in value.items()}
    return None


class Endpoint:
    """A compiled function endpoint.

    Args:
        fn: the function (sync or async; a sync one runs in a worker thread).
        signature: its compiled signature.
        name: the endpoint's name (for logs, middleware filters, OpenAPI).
        validate_result: check the result against the return annotation.
        result_types: when given, the result must match one of these (contract responses).
        bound: a callable giving the first argument (a record, a service) per request.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        signature: Signature,
        name: str,
        *,
        validate_result: bool = True,
        result_types: list[Any] | None = None,
        bound: Callable[[Request, dict[str, str]], Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.fn = fn
        self.signature = signature
        self.name = name
        self.validate_result = validate_result
        self.result_types = result_types
        self.bound = bound
        self.meta = meta or {}
        self._has_body = signature.takes_body
        self._has_query = any(p.source == QUERY for p in signature.params)
        self._stream = signature.stream_param
        self._generator = inspect.isasyncgenfunction(fn)
        self._inject = [p for p in signature.params if p.source == INJECT]
        self._path = [p for p in signature.params if p.source == PATH]
        # Values to hand over as what the signature names, not as the Struct that checked them.
        self._convert: list[tuple[str, Callable[[Any], Any]]] = [
            (p.name, convert)
            for p in signature.params
            if (convert := _converter(p.annotation)) is not None
        ]

    async def __call__(self, request: Request, **path: str) -> Response:
        kwargs = await self.arguments(request, path)
        args: tuple[Any, ...] = ()
        if self.bound is not None:
            args = (await self.bound(request, path),)
        if self._generator:
            result = self.fn(*args, **kwargs)  # an async generator: the response streams it
        elif self.signature.is_async:
            result = await self.fn(*args, **kwargs)
        else:
            result = await asyncio.to_thread(self.fn, *args, **kwargs)
        return self.respond(request, result)

    async def arguments(self, request: Request, path: dict[str, str]) -> dict[str, Any]:
        """Keyword arguments for one request, validated (422 with every problem)."""
        sig = self.signature
        kwargs: dict[str, Any] = {}
        try:
            if self._has_query:
                kwargs.update(sig.bind_query(request.query))
            if self._has_body:
                body = await request.body()
                content_type = request.header("content-type")
                value = read_body(content_type, body, lambda: sig.body_types) if body else None
                kwargs.update(sig.bind_body(value))
            for param in self._path:
                kwargs[param.name] = convert_path(param, path[param.name])
        except InputError as exc:
            raise ValidationError(details=exc.details) from None
        for name, convert in self._convert:
            if name in kwargs and kwargs[name] is not None:
                kwargs[name] = convert(kwargs[name])
        if self._stream is not None:
            kwargs[self._stream.name] = request.stream(limit=None)
        for param in self._inject:
            kwargs[param.name] = self._injected(param.annotation, request)
        return kwargs

    @staticmethod
    def _injected(annotation: Any, request: Request) -> Any:
        if annotation is Request:
            return request
        return current_context()

    def respond(self, request: Request, result: Any) -> Response:
        """The HTTP response for a handler's result."""
        if isinstance(result, Response):
            return result
        kind = self.signature.return_kind
        status, headers = 200, {}
        if kind == "stream" and result is not None:
            return Response(200, stream=result, media_type="application/octet-stream")
        expected = self.signature.result_type
        if isinstance(result, HttpResult):
            status, headers, result = result.status, dict(result.headers), result.body
        if result is None and (kind in ("none", "result") or status == 200):
            if status == 200:
                status = 204
            return Response(status, headers=headers)
        codec = negotiate(request.header("accept"))
        value = _builtins(result)
        if self.validating():
            # Checked as declared: before the attributes the role may not read are left out.
            context = current_context()
            restricted = context is not None and not context.is_super_user
            declared = _builtins(result, whole=True) if restricted else value
            if self.result_types is not None:
                self._check_any(declared, self.result_types)
            elif expected is not None and kind in ("value", "result"):
                self._check(declared, expected)
            elif kind == "none":  # declared to return nothing, yet returned something
                self._check(declared, None)
        return self._encode(status, headers, value, codec)

    def validating(self) -> bool:
        """Whether results are checked against their declaration."""
        return self.validate_result

    def _encode(self, status: int, headers: dict[str, str], value: Any, codec: Codec) -> Response:
        headers.setdefault("content-type", codec.media_type)
        return Response(status, codec.encode(value), headers)

    def _check(self, value: Any, expected: Any) -> None:
        try:
            msgspec.convert(value, expected, strict=True)
        except msgspec.ValidationError as exc:
            log.error("%s returned an invalid response: %s", self.name, exc)
            raise InvalidResponse("the response does not match its declaration") from None
        except TypeError:  # an annotation msgspec cannot check (a bare class): trust it
            pass

    def _check_any(self, value: Any, expected: list[Any]) -> None:
        errors = []
        for shape in expected:
            try:
                msgspec.convert(value, shape, strict=True)
                return
            except msgspec.ValidationError as exc:
                errors.append(str(exc))
        log.error("%s returned an invalid response: %s", self.name, "; ".join(errors))
        raise InvalidResponse("the response does not match its contract")
