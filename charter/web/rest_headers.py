"""A record's HTTP metadata: its ETag and Last-Modified, If-Match/If-None-Match matching,
``Prefer: return=representation``, and the format suffix of a path segment."""

from __future__ import annotations

from email.utils import formatdate

from ..http.codecs import SUFFIXES, Codec
from ..http.request import Request

__all__ = ["etag", "etag_matches", "prefers_representation", "record_headers", "split_suffix"]


def etag(version: int) -> str:
    return f'"{version}"'


def etag_matches(header: str, version: int) -> bool:
    if header.strip() == "*":
        return True
    tag = etag(version)
    return any(part.strip().removeprefix("W/") == tag for part in header.split(","))


def record_headers(version: int, media_type: str) -> dict[str, str]:
    return {
        "content-type": media_type,
        "etag": etag(version),
        "last-modified": formatdate(version / 1000, usegmt=True),
    }


def split_suffix(segment: str) -> tuple[str, Codec | None]:
    dot = segment.rfind(".")
    if dot > 0:
        codec = SUFFIXES.get(segment[dot:].lower())
        if codec is not None:
            return segment[:dot], codec
    return segment, None


def prefers_representation(request: Request) -> bool:
    prefer = request.header("prefer")
    return prefer is not None and "return=representation" in prefer
