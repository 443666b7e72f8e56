"""Application settings: arguments to ``App(...)``, overridden by ``CHARTER_*`` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["DEFAULT_DATABASE", "Config"]

DEFAULT_DATABASE = "sqlite:///./data/charter.db"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(slots=True)
class Config:
    """Every setting of an app; each one can be set by ``CHARTER_<NAME>`` (upper case)."""

    database: str = DEFAULT_DATABASE
    pool_size: int | None = None
    pool_timeout: float | None = None
    auth: bool = False
    validate_responses: bool | None = None
    max_body_size: int = 10 * 1024 * 1024
    cors_origins: tuple[str, ...] = ()
    shared: str | None = None
    mqtt: str | None = None
    debug: bool = False
    # Connection limits, enforced by the server protocol of ``charter serve`` (seconds, bytes).
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 5.0
    send_timeout: float = 30.0
    max_url_length: int = 16 * 1024
    max_header_size: int = 64 * 1024

    @classmethod
    def build(cls, environ: Mapping[str, str] | None = None, **given: Any) -> Config:
        """Settings from ``App(...)`` arguments, then the environment (which wins)."""
        env = os.environ if environ is None else environ
        config = cls(**{k: v for k, v in given.items() if v is not None})
        for spec in fields(cls):
            raw = env.get(f"CHARTER_{spec.name.upper()}")
            if raw is not None:
                setattr(config, spec.name, _parse(spec.name, raw))
        return config


def _parse(name: str, raw: str) -> Any:
    if name in ("auth", "debug", "validate_responses"):
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError(f"CHARTER_{name.upper()}={raw!r} is not a boolean")
    if name in ("max_body_size", "pool_size", "max_url_length", "max_header_size"):
        return int(raw)
    if name in _SECONDS:
        seconds = float(raw)
        if not seconds > 0:
            raise ValueError(f"CHARTER_{name.upper()}={raw!r} is not a positive number of seconds")
        return seconds
    if name == "cors_origins":
        return tuple(o.strip() for o in raw.split(",") if o.strip())
    return raw


_SECONDS = ("header_timeout", "body_timeout", "idle_timeout", "send_timeout", "pool_timeout")
