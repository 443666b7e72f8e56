"""HTML form bodies: ``application/x-www-form-urlencoded`` and ``multipart/form-data``.

A form holds text only, so decoding gives a ``Form`` (each name and the texts sent for it, in
order); whoever knows the declared types (a table's fields, a method's parameters) turns it into
values with ``Form.typed``, coercing each text as a query string parameter is. The body size
limit applies as for every body; a form is flat, so it cannot nest, and it holds at most
``MAX_FORM_FIELDS`` fields.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Mapping
from typing import Any

import msgspec
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from ..errors import MalformedInput
from ..limits import MAX_FORM_FIELDS
from ..schema.annotations import is_list_type, without_none
from ..schema.signature import _convert_text

__all__ = ["Form", "parse_multipart", "parse_urlencoded"]

_TOO_MANY = f"a form holds at most {MAX_FORM_FIELDS} fields"


class Form(dict[str, list[str | bytes]]):
    """Each field name and the values sent for it (``k`` and ``k[]`` are one name)."""

    def __init__(self) -> None:
        super().__init__()
        self.lists: set[str] = set()  # names written ``k[]``: a list even when sent once
        self.count = 0

    def add(self, name: str, value: str | bytes) -> None:
        self.count += 1
        if self.count > MAX_FORM_FIELDS:
            raise MalformedInput(_TOO_MANY)
        if name.endswith("[]"):
            name = name[:-2]
            self.lists.add(name)
        self.setdefault(name, []).append(value)

    def typed(self, types: Mapping[str, Any]) -> dict[str, Any]:
        """The fields as values of ``types`` (by name), converted as query text is.

        A name sent more than once (or written ``k[]``, or declared a list) is a list. A text
        that does not convert stays text, so validation reports it where it reports every
        other wrong value (a 422 naming the field).
        """
        out: dict[str, Any] = {}
        for name, raw in self.items():
            tp = types.get(name)
            texts = [_text(value, tp, name) for value in raw]
            many = len(texts) > 1 or name in self.lists or (tp is not None and is_list_type(tp))
            value: Any = texts if many else texts[0]
            if tp is not None and tp is not Any:
                # A text that does not convert stays: validation answers 422 for it.
                with contextlib.suppress(msgspec.ValidationError, TypeError):
                    value = _convert_text(value, tp)
            out[name] = value
        return out


def _text(value: str | bytes, tp: Any, name: str) -> str | bytes:
    if isinstance(value, str) or without_none(tp)[0] is bytes:
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedInput(f"form field {name!r} is not UTF-8 text") from None


_UNION = type(int | None)


def parse_urlencoded(body: bytes) -> Form:
    """``a=1&b=x&b=y`` (UTF-8, ``+`` for a space); a malformed escape is a 400."""
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError:
        raise MalformedInput("the form is not UTF-8 text") from None
    except ValueError:
        raise MalformedInput(_TOO_MANY) from None
    form = Form()
    for name, value in pairs:
        form.add(name, value)
    return form


def parse_multipart(body: bytes, content_type: str) -> Form:
    """Each part named by its ``Content-Disposition``; a file part gives its content."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedInput("a multipart/form-data body needs a boundary parameter")
    form = Form()
    state: dict[str, Any] = {"field": b"", "value": b"", "headers": {}, "data": []}

    def on_part_begin() -> None:
        state["headers"], state["data"] = {}, []

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["data"].append(data[start:end])

    def on_part_end() -> None:
        disposition, options = parse_options_header(state["headers"].get(b"content-disposition"))
        name = options.get(b"name")
        if disposition != b"form-data" or name is None:
            raise MalformedInput("a multipart/form-data part names no field")
        try:
            text_name = name.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedInput("a form field name is not UTF-8 text") from None
        form.add(text_name, b"".join(state["data"]))

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise MalformedInput(f"body is not valid multipart/form-data: {exc}") from None
    if parser.state != MultipartState.END:
        raise MalformedInput("the multipart/form-data body ends before its closing boundary")
    return form
