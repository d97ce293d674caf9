"""Connection limits below ASGI: a bounded request head, a deadline for it, and a cap on open connections.

The app only sees a request once uvicorn has parsed its head, so these limits live in uvicorn's HTTP protocol
classes. httptools (the parser `uvicorn[standard]` brings) accepts a head of any size and any number of headers,
and joins a header value's pieces by concatenation: a 64 MiB value costs seconds of event-loop time. So the head
is fed to the parser at most `max_header_bytes` at a time, and a head that is still unfinished after that many
bytes (or that holds more than `max_headers` fields) is answered 431 and its connection closed. A connection that
sends no complete head within `head_timeout_seconds` is closed: uvicorn only times out connections that finished
a request. Beyond `max_connections` open connections, requests get uvicorn's 503 (`limit_concurrency`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from mcp_platform.settings import HttpSettings

__all__ = ["HeadLimits", "protocol_class", "server_options"]

logger = logging.getLogger(__name__)

_431 = b"Request Header Fields Too Large"


@dataclass(frozen=True, slots=True)
class HeadLimits:
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    head_timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, http: HttpSettings) -> HeadLimits:
        return cls(http.max_header_bytes, http.max_headers, http.head_timeout_seconds)


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head that broke a limit."""


class _Limited(asyncio.Protocol):
    """What both parsers share: counting head bytes, the head deadline, and the 431 answer. Mixed in before a
    uvicorn protocol class, whose `transport`, `cycle` and `loop` it uses."""

    limits: ClassVar[HeadLimits] = HeadLimits()
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    _head_bytes: int = 0
    _head_timer: asyncio.TimerHandle | None = None
    _refused: bool = False

    def _awaiting_head(self) -> bool:
        """Whether the bytes that arrive now belong to a request head."""
        raise NotImplementedError

    def _head_pending(self) -> bool:
        """Whether part of a head has arrived and the rest has not (its deadline runs)."""
        return self._awaiting_head()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        while not self.transport.is_closing():
            if not self._awaiting_head():
                super().data_received(data)
                return
            room = self.limits.max_header_bytes - self._head_bytes
            if len(data) <= room:  # the usual case: a whole head, or the rest of one, in one read
                self._head_bytes += len(data)
                super().data_received(data)
                self._after_feed()
                return
            if room <= 0:
                self._refuse(f"request head over {self.limits.max_header_bytes} bytes")
                return
            # Only as much as the head may still grow reaches the parser, so its cost stays bounded.
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            self._after_feed()

    def _after_feed(self) -> None:
        if not self._awaiting_head():
            self._head_done()
        elif self._head_pending():
            self._arm()  # a head began and is unfinished; a head that arrives whole never needs a timer

    def _head_done(self) -> None:
        self._disarm()
        self._head_bytes = 0

    def _next_head(self) -> None:
        """The request's body is in: whatever comes next is the next request's head."""
        self._head_bytes = 0

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.head_timeout_seconds, self._head_timeout)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _busy(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._awaiting_head():
            return
        if self._busy():  # a pipelined head waits behind a response still being sent
            self._arm()
            return
        logger.debug("closing a connection that sent no complete request head in %ss",
                     self.limits.head_timeout_seconds)
        self.transport.close()

    def _refuse(self, why: str) -> None:
        logger.info("refused a request: %s", why)
        if not self._busy():  # an answer now would land in the middle of another response
            message = f"{why}\n".encode()
            self.transport.write(b"HTTP/1.1 431 " + _431 + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                 b"content-length: " + str(len(message)).encode() + b"\r\nconnection: close\r\n\r\n"
                                 + message)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        if self._refused:  # the parser stopped because a callback refused the head
            self._refuse(f"more than {self.limits.max_headers} header fields")
            return
        send_400: Any = getattr(super(), "send_400_response")  # noqa: B009 - defined by the uvicorn class
        send_400(msg)


class _LimitedH11Connection(h11.Connection):
    """h11, counting header fields; h11 itself bounds the head's bytes (`max_incomplete_event_size`)."""

    def __init__(self, max_header_bytes: int, max_headers: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self.max_headers = max_headers
        self.too_large = False

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            self.too_large = exc.error_status_hint == 431
            raise
        if isinstance(event, h11.Request) and len(event.headers) > self.max_headers:
            self.too_large = True
            raise h11.RemoteProtocolError("too many header fields", error_status_hint=431)
        return event


class LimitedH11(_Limited, H11Protocol):
    """uvicorn's h11 protocol with the head limits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _LimitedH11Connection(self.limits.max_header_bytes, self.limits.max_headers)

    def _awaiting_head(self) -> bool:
        return self.conn.their_state is h11.IDLE

    def send_400_response(self, msg: str) -> None:
        conn = self.conn
        self._refused = isinstance(conn, _LimitedH11Connection) and conn.too_large
        super().send_400_response(msg)


def _httptools_class() -> type[_Limited] | None:
    if importlib.util.find_spec("httptools") is None:
        return None
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class LimitedHttpTools(_Limited, HttpToolsProtocol):
        """uvicorn's httptools protocol with the head limits."""

        _in_head = True
        _begun = False

        def _awaiting_head(self) -> bool:
            return self._in_head

        def _head_pending(self) -> bool:
            return self._in_head and self._begun

        def on_message_begin(self) -> None:
            self._begun = True
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            # Counted once the head is in (as h11 does), not per header: the head's byte cap already bounds the
            # list the parser built, and a call per header field is a tenth of a small request's parsing.
            if len(self.headers) > self.limits.max_headers:
                self._refused = True
                raise _HeadTooLarge
            self._in_head = self._begun = False
            self._head_done()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head = True
            self._next_head()
            super().on_message_complete()

    return LimitedHttpTools


def protocol_class(limits: HeadLimits, parser: str = "auto") -> type[asyncio.Protocol]:
    """A uvicorn `http=` protocol class applying `limits`: on httptools when it is installed (or asked for), else
    on h11 (`parser="h11"` forces it)."""
    base: type[_Limited] | None = None if parser == "h11" else _httptools_class()
    if base is None:
        if parser == "httptools":
            raise RuntimeError("httptools is not installed")
        base = LimitedH11
    configured = type(base.__name__, (base,), {"limits": limits, "__module__": __name__})
    return cast("type[asyncio.Protocol]", configured)


def server_options(http: HttpSettings, parser: str = "auto") -> dict[str, Any]:
    """`uvicorn.Config` keyword arguments that apply the connection limits of `http`."""
    return {
        "http": protocol_class(HeadLimits.from_settings(http), parser),
        # uvicorn answers 503 once the open connections, this one included, reach limit_concurrency.
        "limit_concurrency": http.max_connections + 1,
        "h11_max_incomplete_event_size": http.max_header_bytes,
    }
