"""Application settings: arguments to ``App(...)``, overridden by ``CHARTER_*`` variables."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import CharterError

__all__ = ["DEFAULT_DATABASE", "MIN_SECRET_LENGTH", "Config", "not_available"]

DEFAULT_DATABASE = "sqlite:///./data/charter.db"
MIN_SECRET_LENGTH = 32
"""Characters a ``CHARTER_SECRET`` needs at least: a short one could be guessed offline."""
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
    # Sign-in (auth on): token lifetimes in seconds, failed sign-ins allowed per window, and the
    # signing secret (never shown: not in repr, not in any message).
    access_token_ttl: float = 15 * 60.0
    refresh_token_ttl: float = 14 * 24 * 3600.0
    signin_limit: int = 10
    signin_address_limit: int = 50
    signin_window: float = 300.0
    secret: str | None = field(default=None, repr=False)
    # Realtime (docs/realtime.md): how long and how many events the log keeps for resuming,
    # the events a subscriber may have waiting before it is closed (to resume), and the
    # seconds between keep-alive comments on an idle stream.
    event_retention: float = 24 * 3600.0
    event_retention_count: int = 100_000
    subscriber_buffer: int = 1000
    keepalive: float = 15.0
    # The encrypted RPC channel (docs/crypto.md): seconds a session lives from its handshake.
    channel_ttl: float = 3600.0
    # The garbage collector's first-generation threshold set at start (0: untouched); see
    # charter/runtime/collector.py.
    gc_threshold: int = 10_000

    @classmethod
    def build(cls, environ: Mapping[str, str] | None = None, **given: Any) -> Config:
        """Settings from ``App(...)`` arguments, then the environment (which wins).

        Raises:
            CharterError: a setting names a feature that is not built yet (``_UNBUILT``).
            ValueError: a value is out of range or a variable does not parse.
        """
        env = os.environ if environ is None else environ
        config = cls(**{k: v for k, v in given.items() if v is not None})
        from_env: set[str] = set()
        for spec in fields(cls):
            raw = env.get(f"CHARTER_{spec.name.upper()}")
            if raw is not None:
                setattr(config, spec.name, _parse(spec.name, raw))
                from_env.add(spec.name)
        for name in _POSITIVE:
            value = getattr(config, name)
            if value is not None and not value > 0:
                where = _origin(name, env if name in from_env else None)
                raise ValueError(f"{where} must be a positive number, not {value!r}")
        if config.gc_threshold < 0:
            where = _origin("gc_threshold", env if "gc_threshold" in from_env else None)
            raise ValueError(f"{where} must be 0 (off) or a positive number of objects")
        if config.secret is not None and len(config.secret) < MIN_SECRET_LENGTH:
            where = _origin("secret", env if "secret" in from_env else None)
            raise ValueError(
                f"{where} must be at least {MIN_SECRET_LENGTH} characters (make one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if config.mqtt is not None:
            _check_mqtt(config.mqtt, _origin("mqtt", env if "mqtt" in from_env else None))
        for name, (feature, advice) in _UNBUILT.items():
            if getattr(config, name):
                where = _origin(name, env if name in from_env else None)
                undo = f"unset CHARTER_{name.upper()}" if name in from_env else f"remove {name}="
                raise not_available(where, feature, f"{advice}; {undo}")
        return config


def _origin(name: str, env: Mapping[str, str] | None) -> str:
    """Where a setting came from, for an error message: never its text (it may hold a secret)."""
    if env is None:
        return f"App({name}=...)"
    variable = f"CHARTER_{name.upper()}"
    return f"{variable}={env[variable]}" if name in ("auth", "debug") else variable


def _check_mqtt(url: str, where: str) -> None:
    """An MQTT URL must name a broker (``mqtt://host:1883``, ``mqtts://`` for TLS)."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or port == -1:
        raise ValueError(f"{where} must be a URL like mqtt://host:1883 (mqtts:// for TLS)")


def not_available(where: str, feature: str, advice: str) -> CharterError:
    """The error for an option whose feature is not built yet: it must not be silently ignored."""
    return CharterError(
        f"{where} asks for {feature}, which this release does not provide yet; {advice}"
    )


# Settings accepted by the SPEC whose features come in later releases: setting one raises
# rather than being ignored.
_UNBUILT: dict[str, tuple[str, str]] = {
    "debug": (
        "debug mode",
        "unexpected errors are logged in full by the server either way",
    ),
}

_POSITIVE = (
    "pool_size",
    "pool_timeout",
    "max_body_size",
    "header_timeout",
    "body_timeout",
    "idle_timeout",
    "send_timeout",
    "max_url_length",
    "max_header_size",
    "access_token_ttl",
    "refresh_token_ttl",
    "signin_limit",
    "signin_address_limit",
    "signin_window",
    "event_retention",
    "event_retention_count",
    "subscriber_buffer",
    "keepalive",
    "channel_ttl",
)


def _parse(name: str, raw: str) -> Any:
    if name in ("auth", "debug", "validate_responses"):
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError(f"CHARTER_{name.upper()}={raw!r} is not a boolean")
    if name in (
        "max_body_size",
        "pool_size",
        "max_url_length",
        "max_header_size",
        "signin_limit",
        "signin_address_limit",
        "event_retention_count",
        "subscriber_buffer",
        "gc_threshold",
    ):
        return int(raw)
    if name in _SECONDS:
        return float(raw)
    if name == "cors_origins":
        return tuple(o.strip() for o in raw.split(",") if o.strip())
    if name in ("shared", "mqtt", "secret"):
        return raw.strip() or None
    return raw


_SECONDS = (
    "header_timeout",
    "body_timeout",
    "idle_timeout",
    "send_timeout",
    "pool_timeout",
    "access_token_ttl",
    "refresh_token_ttl",
    "signin_window",
    "event_retention",
    "keepalive",
    "channel_ttl",
)
