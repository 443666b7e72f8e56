"""Cross-origin resource sharing, configured once on the app."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CORS"]


@dataclass(frozen=True, slots=True)
class CORS:
    """CORS policy. ``allow_origins=["*"]`` allows every origin (without credentials)."""

    allow_origins: Sequence[str] = ("*",)
    allow_methods: Sequence[str] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    allow_headers: Sequence[str] = ("*",)
    expose_headers: Sequence[str] = ("ETag", "Location", "Content-Range", "Last-Modified")
    allow_credentials: bool = False
    max_age: int = 600

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.allow_origins or origin in self.allow_origins

    def headers(self, origin: str) -> dict[str, str]:
        """Headers for an actual (non-preflight) response to ``origin``."""
        wildcard = "*" in self.allow_origins and not self.allow_credentials
        headers = {
            "access-control-allow-origin": "*" if wildcard else origin,
            "access-control-expose-headers": ", ".join(self.expose_headers),
        }
        if not wildcard:
            headers["vary"] = "Origin"
        if self.allow_credentials:
            headers["access-control-allow-credentials"] = "true"
        return headers

    def preflight(self, origin: str, requested_headers: str | None) -> dict[str, str]:
        headers = self.headers(origin)
        headers["access-control-allow-methods"] = ", ".join(self.allow_methods)
        if "*" in self.allow_headers:
            headers["access-control-allow-headers"] = requested_headers or "*"
        else:
            headers["access-control-allow-headers"] = ", ".join(self.allow_headers)
        headers["access-control-max-age"] = str(self.max_age)
        return headers
