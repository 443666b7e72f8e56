"""The HTTP/1.1 protocol of ``charter serve``: uvicorn's httptools protocol, with limits.

uvicorn bounds neither the time a client may take to send a request nor the size of its
headers, and answers unparseable requests in plain text. This subclass adds, per connection:

- an idle timeout from the moment the connection opens (uvicorn arms it only after a response);
- a header timeout, from the first read of a request to the end of its headers (slowloris);
- a body timeout, the longest a request body may stall while the app waits for it;
- a send timeout, the longest the socket may stay unwritable (a client that stopped reading);
- limits on the request line (414) and the headers (431), every error in the JSON envelope.

Timers are armed only when needed: a request whose head arrives in one read arms none. The
protocol also offers each request a ``Connection`` (``scope["extensions"]``) that tells a
streamed response when the client is gone and lets it drop a connection whose body failed.
Under plain uvicorn: ``uvicorn --http charter.http.server:CharterProtocol ...``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

import httptools
import msgspec
from uvicorn.config import Config as UvicornConfig
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from ..config import Config
from ..errors import CharterError, error_body
from .types import CONNECTION

__all__ = ["PROTOCOL", "CharterProtocol"]

PROTOCOL = "charter.http.server:CharterProtocol"
"""The import string uvicorn takes as ``http=`` (it survives worker processes and reload)."""

log = logging.getLogger("charter.http")

_IDLE, _HEAD, _BODY = 0, 1, 2  # what the connection waits for from the client
_LINGER = 2.0  # seconds a refused connection drains the client's bytes before it closes


class _Rejected(CharterError):
    """A request refused before it reaches the app."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _Connection:
    """The request's view of its connection (see ``types.Connection``)."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: CharterProtocol) -> None:
        self._protocol = protocol

    @property
    def closed(self) -> bool:
        transport = self._protocol.transport
        return transport is None or transport.is_closing()

    def abort(self) -> None:
        self._protocol.abort()

    def on_shutdown(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the server starts shutting down: an endless response (an event
        stream) ends then, instead of holding the graceful shutdown until its timeout."""
        self._protocol.shutdown_callbacks.append(fn)

    def on_lost(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the connection is lost: an idle event stream ends at once, without
        a task per stream waiting for the disconnect message."""
        self._protocol.lost_callbacks.append(fn)

    def body_writer(self) -> Callable[[bytes], bool]:
        """A function that writes a chunk of the response being streamed straight to the
        socket, from any code on the event loop, and says whether it could. Why: an event
        stream's writes would otherwise each wake the response's task and pass through its
        generators; the hub writes an event to a thousand idle subscribers in one loop.

        It writes only while it is safe to put bytes between the response's own sends: the
        response has started, with chunked coding, and is not complete; no later request
        has replaced it; the socket is open and not over its high-water mark (else the
        caller falls back to the response's own ``send``, which waits for the socket). The
        caller must not write while a send of the response's own is in progress."""
        protocol = self._protocol
        cycle = protocol.cycle

        def write(chunk: bytes) -> bool:
            transport = protocol.transport
            if (
                protocol.cycle is not cycle
                or cycle is None
                or not cycle.response_started
                or cycle.response_complete
                or not cycle.chunked_encoding
                or protocol.flow.write_paused
                or transport is None
                or transport.is_closing()
            ):
                return False
            transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            return True

        return write


def _call_all(callbacks: list[Callable[[], None]]) -> None:
    for fn in callbacks:
        try:
            fn()
        except Exception:
            log.exception("a connection callback failed")


class CharterProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with Charter's timeouts and limits (module docstring)."""

    def __init__(
        self,
        config: UvicornConfig,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = _settings(self.app)
        self.timeout_keep_alive = settings.idle_timeout  # type: ignore[assignment]
        self.header_timeout = settings.header_timeout
        self.body_timeout = settings.body_timeout
        self.send_timeout = settings.send_timeout
        self.max_url_length = settings.max_url_length
        self.max_header_size = settings.max_header_size
        self._head_limit = settings.max_url_length + settings.max_header_size + 1024
        self._phase = _IDLE
        self._head_bytes = 0  # read since the current request's headers began (about)
        self._header_size = 0  # the current request's header lines
        self._body_at = 0.0  # when body bytes last arrived
        self._timer: asyncio.TimerHandle | None = None  # the header or body deadline
        self._send_timer: asyncio.TimerHandle | None = None
        self._discarding = False  # refused: what still arrives is dropped
        self._extensions = {CONNECTION: _Connection(self)}
        self.shutdown_callbacks: list[Callable[[], None]] = []
        self.lost_callbacks: list[Callable[[], None]] = []

    # -- connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never sends a byte is idle too.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)
        _call_all(self.lost_callbacks)
        self.lost_callbacks = []
        self.shutdown_callbacks = []

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        if self._phase != _BODY:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._cancel_timers()
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            rejected = exc.__context__
            if not isinstance(rejected, _Rejected):
                log.debug("unparseable request: %s", exc)
                rejected = _Rejected(400, "MALFORMED_INPUT", "the request is not valid HTTP/1.1")
            self._refuse(rejected)
            return
        if self._phase == _HEAD:
            if self._head_bytes > self._head_limit:
                self._refuse(_header_size_error(self.max_header_size))
            elif self._timer is None:
                self._timer = self.loop.call_later(self.header_timeout, self._head_expired)
        elif self._phase == _BODY:
            self._body_at = self.loop.time()
            if self._timer is None:
                self._timer = self.loop.call_later(self.body_timeout, self._body_expired)

    # -- parser callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = self._extensions  # type: ignore[typeddict-item]
        self._unset_keepalive_if_required()  # only a request ends idleness, not stray bytes
        self._phase = _HEAD
        self._header_size = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.max_url_length:
            limit = self.max_url_length
            raise _Rejected(414, "URI_TOO_LONG", f"the request target is over {limit} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_size += len(name) + len(value) + 4
        if self._header_size > self.max_header_size:
            raise _header_size_error(self.max_header_size)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._head_bytes = 0
        self._cancel_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        self._cancel_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._phase != _IDLE:  # the next request has begun: its own deadline runs
            self._unset_keepalive_if_required()

    # -- flow control --------------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.send_timeout, self._send_expired)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    # -- deadlines -----------------------------------------------------------------------------

    def _head_expired(self) -> None:
        self._timer = None
        if self._phase == _HEAD:
            self._refuse(
                _Rejected(
                    408,
                    "REQUEST_TIMEOUT",
                    f"the request headers took longer than {self.header_timeout:g} s",
                )
            )

    def _body_expired(self) -> None:
        self._timer = None
        if self._phase != _BODY:
            return
        now = self.loop.time()
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            self._body_at = now  # the app is not reading yet: not the client's delay
        remaining = self._body_at + self.body_timeout - now
        if remaining > 0:
            self._timer = self.loop.call_later(remaining, self._body_expired)
            return
        self._refuse(
            _Rejected(
                408,
                "REQUEST_TIMEOUT",
                f"the request body stalled for longer than {self.body_timeout:g} s",
            )
        )

    def _send_expired(self) -> None:
        self._send_timer = None
        log.warning(
            "%s stopped reading for %g s: connection dropped",
            _peer(self.client),
            self.send_timeout,
        )
        self.abort()

    # -- ending --------------------------------------------------------------------------------

    def shutdown(self) -> None:
        callbacks, self.shutdown_callbacks = self.shutdown_callbacks, []
        _call_all(callbacks)
        super().shutdown()

    def abort(self) -> None:
        """Drop the connection now, unsent bytes included, and release the request's app."""
        self._cancel_timers()
        self._release_cycle()
        self.flow.resume_writing()  # a send waiting for the socket returns
        if self.transport is not None:
            self.transport.abort()

    def _refuse(self, rejected: _Rejected) -> None:
        """Answer in the envelope when nothing else is being written, then close."""
        self._cancel_timers()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._phase == _BODY and cycle is not None:  # this request's app may be running
            busy = bool(self.pipeline) or cycle.response_started
        else:  # an earlier request may still be answering
            busy = cycle is not None and not cycle.response_complete
        self._release_cycle()
        self._phase = _IDLE
        if busy:
            self.transport.close()
            return
        self.transport.write(self._envelope(rejected))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        # Close gently: closing with unread bytes (the rest of an over-long request) resets
        # the connection, and a reset can destroy the answer before the client reads it.
        # So end our side, drop what still arrives, and close when the client does, or soon.
        self.transport.write_eof()
        self._discarding = True
        self.flow.resume_reading()
        self._timer = self.loop.call_later(_LINGER, self.transport.close)

    def _release_cycle(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive answers http.disconnect, sends drop
            cycle.message_event.set()

    def _envelope(self, rejected: _Rejected) -> bytes:
        body = msgspec.json.encode(error_body(rejected.status, rejected.code, rejected.message))
        content = [STATUS_LINE[rejected.status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        return b"".join(content)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _cancel_timers(self) -> None:
        self._cancel_timer()
        self._unset_keepalive_if_required()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None


def _header_size_error(limit: int) -> _Rejected:
    return _Rejected(431, "HEADERS_TOO_LARGE", f"the request headers are larger than {limit} bytes")


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"


def _settings(app: Any) -> Config:
    """The Charter settings of the served app, found under uvicorn's middleware."""
    for _ in range(16):
        config = getattr(app, "config", None)
        if isinstance(config, Config):
            return config
        app = getattr(app, "app", None)
        if app is None:
            break
    return _environment_settings()


@functools.cache
def _environment_settings() -> Config:
    return Config.build()
