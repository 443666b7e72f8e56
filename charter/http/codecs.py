"""Body formats and content negotiation: JSON, MessagePack, CBOR (both ways), CSV (responses),
and HTML forms (requests: ``forms.py``).

A path suffix (``.json .msgpack .cbor .csv``) overrides the ``Accept`` header.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import enum
import io
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import cbor2
import msgspec

from ..errors import HttpError, MalformedInput, UnsupportedMediaType
from ..limits import MAX_BODY_DEPTH
from ..schema.validation import too_deep
from .forms import Form, parse_multipart, parse_urlencoded

__all__ = [
    "CBOR",
    "CSV",
    "JSON",
    "MSGPACK",
    "SUFFIXES",
    "Codec",
    "Form",
    "for_request",
    "negotiate",
    "read_body",
]

_SPOOL_IN_MEMORY = 8 << 20  # a MessagePack array that was not counted first spills to disk
_TOO_DEEP = f"body nests arrays and objects deeper than {MAX_BODY_DEPTH} levels"


def _all_but(codes: Iterable[int]) -> bytes:
    """The bytes that ``bytes.translate`` deletes to leave only possible container openers."""
    keep = set(codes)
    return bytes(b for b in range(256) if b not in keep)


# Bytes that may open a container: a body with no more of them than the limit cannot be too
# deep, so only other bodies are walked after decoding.
_MSGPACK_OTHERS = _all_but([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])
_CBOR_OTHERS = _all_but(range(0x80, 0xDC))


def _may_be_deep(body: bytes, others: bytes | None) -> bool:
    if others is None:  # JSON: each level takes two brackets
        return len(body) > 2 * MAX_BODY_DEPTH and (
            body.count(b"[") + body.count(b"{") > MAX_BODY_DEPTH
        )
    return len(body) > MAX_BODY_DEPTH and len(body.translate(None, others)) > MAX_BODY_DEPTH


def _enc_hook(value: Any) -> Any:
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


class Codec:
    """One media type: how to encode a value and decode a body."""

    media_type: str = "application/octet-stream"
    streams_arrays = True

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, body: bytes) -> Any:
        raise UnsupportedMediaType(f"{self.media_type} is not accepted as a request body")

    async def stream_array(
        self,
        items: AsyncIterator[Any],
        *,
        count: int | None = None,
        columns: list[str] | None = None,
    ) -> AsyncIterator[bytes]:
        """``items`` as one array in this format, written as they come (a collection response).

        Args:
            count: how many items there are, when the caller knows it (MessagePack needs it
                first; without it the items are spooled, in bounded memory, and counted).
            columns: the CSV columns.
        """
        if not self.streams_arrays:
            yield self.encode([item async for item in items])
            return
        first = True
        async for item in items:
            yield (b"[" if first else b",") + self.encode(item)
            first = False
        yield b"[]" if first else b"]"


class _Msgspec(Codec):
    """JSON or MessagePack, both by msgspec: the same code, another wire format."""

    def __init__(
        self,
        media_type: str,
        format_name: str,
        module: Any,
        streams: bool,
        others: bytes | None,
    ) -> None:
        self.media_type = media_type
        self.streams_arrays = streams
        self._format = format_name
        self._encoder = module.Encoder(enc_hook=_enc_hook)
        self._decoder = module.Decoder()
        self._others = others

    def encode(self, value: Any) -> bytes:
        return self._encoder.encode(value)  # type: ignore[no-any-return]

    async def stream_array(
        self,
        items: AsyncIterator[Any],
        *,
        count: int | None = None,
        columns: list[str] | None = None,
    ) -> AsyncIterator[bytes]:
        if self.streams_arrays:  # JSON
            async for chunk in super().stream_array(items):
                yield chunk
            return
        # MessagePack: an array starts with its length.
        if count is not None:
            yield _msgpack_header(count)
            sent = 0
            async for item in items:
                if sent == count:  # cannot happen: the count and the rows share one snapshot
                    break
                sent += 1
                yield self.encode(item)
            while sent < count:  # nor this; keep the document well formed regardless
                sent += 1
                yield b"\xc0"
            return
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            count = 0
            async for item in items:
                spool.write(self.encode(item))
                count += 1
            yield _msgpack_header(count)
            spool.seek(0)
            while chunk := spool.read(1 << 16):
                yield chunk

    def decode(self, body: bytes) -> Any:
        try:
            value = self._decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise MalformedInput(f"body is not valid {self._format}: {exc}") from None
        except RecursionError:  # msgspec stops at the interpreter's recursion limit
            raise MalformedInput(_TOO_DEEP) from None
        if _may_be_deep(body, self._others) and too_deep(value, MAX_BODY_DEPTH):
            raise MalformedInput(_TOO_DEEP)
        return value


class _Cbor(Codec):
    media_type = "application/cbor"
    streams_arrays = False

    def encode(self, value: Any) -> bytes:
        return cbor2.dumps(
            msgspec.to_builtins(value, builtin_types=_CBOR_NATIVE, enc_hook=_enc_hook)
        )

    async def stream_array(
        self,
        items: AsyncIterator[Any],
        *,
        count: int | None = None,
        columns: list[str] | None = None,
    ) -> AsyncIterator[bytes]:
        yield b"\x9f"  # an indefinite-length array, closed by a break
        async for item in items:
            yield self.encode(item)
        yield b"\xff"

    def decode(self, body: bytes) -> Any:
        try:
            value = cbor2.loads(body)
        except (cbor2.CBORDecodeError, ValueError, EOFError) as exc:
            raise MalformedInput(f"body is not valid CBOR: {exc}") from None
        except RecursionError:
            raise MalformedInput(_TOO_DEEP) from None
        if _may_be_deep(body, _CBOR_OTHERS) and too_deep(value, MAX_BODY_DEPTH):
            raise MalformedInput(_TOO_DEEP)
        return value


_CBOR_NATIVE = (bytes, bytearray, dt.datetime, dt.date, uuid.UUID, decimal.Decimal)


class _Form(Codec):
    """A form body (request only): decodes to a ``Form`` of texts, typed by the reader.

    A urlencoded body that starts with ``{`` or ``[`` is JSON: ``curl -d '{...}'`` labels JSON
    with this type, and no form field name starts so.
    """

    def __init__(self, media_type: str, content_type: str) -> None:
        self.media_type = media_type
        self._content_type = content_type

    def decode(self, body: bytes) -> Any:
        if self.media_type == "multipart/form-data":
            return parse_multipart(body, self._content_type)
        if body.lstrip()[:1] in (b"{", b"["):
            return JSON.decode(body)
        return parse_urlencoded(body)


class _Csv(Codec):
    media_type = "text/csv"
    streams_arrays = False

    def encode(self, value: Any) -> bytes:
        rows = value if isinstance(value, list) else [value]
        columns: list[str] = []
        for row in rows:
            for key in row if isinstance(row, dict) else ():
                if key not in columns:
                    columns.append(key)
        return self.header(columns) + b"".join(self.row(columns, r) for r in rows)

    async def stream_array(
        self,
        items: AsyncIterator[Any],
        *,
        count: int | None = None,
        columns: list[str] | None = None,
    ) -> AsyncIterator[bytes]:
        """A header line, then a line per item (an object by column, a list in column order,
        or one value in the first column); nested values are JSON text in their cell."""
        names = columns or []
        yield self.header(names)
        async for item in items:
            yield self.row(names, item)

    @staticmethod
    def header(columns: Iterable[str]) -> bytes:
        out = io.StringIO()
        csv.writer(out).writerow(list(columns))
        return out.getvalue().encode()

    @staticmethod
    def row(columns: list[str], row: Any) -> bytes:
        out = io.StringIO()
        if isinstance(row, list | tuple):
            csv.writer(out).writerow([_cell(v) for v in row])
        elif not isinstance(row, dict):
            csv.writer(out).writerow([_cell(row)])
        else:
            csv.writer(out).writerow([_cell(row.get(c)) for c in columns])
        return out.getvalue().encode()


def _msgpack_header(count: int) -> bytes:
    if count < 16:
        return bytes([0x90 | count])
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str | int | float | bool):
        return value
    built = msgspec.to_builtins(value, enc_hook=_enc_hook)
    return built if isinstance(built, str) else msgspec.json.encode(built).decode()


JSON: Codec = _Msgspec("application/json", "JSON", msgspec.json, True, None)
MSGPACK: Codec = _Msgspec(
    "application/msgpack", "MessagePack", msgspec.msgpack, False, _MSGPACK_OTHERS
)
CBOR: Codec = _Cbor()
CSV: Codec = _Csv()

_BY_TYPE: dict[str, Codec] = {
    "application/json": JSON,
    "application/msgpack": MSGPACK,
    "application/x-msgpack": MSGPACK,
    "application/vnd.msgpack": MSGPACK,
    "application/cbor": CBOR,
    "text/csv": CSV,
}
SUFFIXES: dict[str, Codec] = {".json": JSON, ".msgpack": MSGPACK, ".cbor": CBOR, ".csv": CSV}


def negotiate(accept: str | None) -> Codec:
    """The response codec for an ``Accept`` header (JSON when nothing better matches)."""
    if (
        not accept
        or accept == "*/*"
        or (accept.startswith("application/json") and "," not in accept)
    ):
        return JSON
    best: tuple[float, int, Codec] | None = None
    for index, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        codec = _BY_TYPE.get(media.lower())
        if codec is None and media in ("*/*", "application/*"):
            codec = JSON
        if codec is not None and quality > 0 and (best is None or quality > best[0]):
            best = (quality, -index, codec)
    if best is None:
        if any(m.strip().startswith(("text/html", "text/plain")) for m in accept.split(",")):
            return JSON
        raise HttpError(406, f"none of {accept!r} can be produced", code="NOT_ACCEPTABLE")
    return best[2]


def for_request(content_type: str | None) -> Codec:
    """The codec that reads a request body of ``content_type`` (JSON when absent)."""
    if not content_type:
        return JSON
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _Form(media, content_type)
    codec = _BY_TYPE.get(media)
    if codec is None or codec is CSV:
        if media.endswith("+json"):
            return JSON
        raise UnsupportedMediaType(f"cannot read a body of type {media!r}")
    return codec


def read_body(content_type: str | None, body: bytes, types: Callable[[], Mapping[str, Any]]) -> Any:
    """A request body's value; a form's fields are typed by ``types()`` (each name's declared
    type) as query strings are (see ``forms.Form.typed``)."""
    value = for_request(content_type).decode(body)
    return value.typed(types()) if isinstance(value, Form) else value
