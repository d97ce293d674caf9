"""Long-lived SSE streams: resuming a call's stream with `Last-Event-ID`, the standalone GET stream of a session,
and 2026-07-28 `subscriptions/listen`. What they carry comes from the protocol edge (change notifications) or the
`EventStore` (replayed events); `sse-starlette` serves them, with heartbeats, disconnect detection, a send timeout
and a prompt end at server shutdown. (A POST reply that turns into SSE mid-call is `sse.CallStream`.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from starlette.types import Message, Receive, Scope, Send

from mcp_platform.errors import StoreUnavailable
from mcp_platform.stores.base import EventStore
from mcp_platform.stores.memory import new_stream_id
from mcp_platform.transport.sse import SSE_HEADERS, sse_event

__all__ = ["StreamRecorder", "as_events", "replay", "serve_stream"]

logger = logging.getLogger(__name__)

_PING = b": ping\n\n"
_SEND_TIMEOUT = 30.0
"""Seconds one event may take to leave; a client that reads nothing for that long is dropped, freeing its stream."""
_HEADERS = {name.decode(): value.decode() for name, value in SSE_HEADERS}


class StreamRecorder:
    """Records one response stream's events in the event store, so the client can resume it."""

    def __init__(self, store: EventStore, session_id: str, *, prime: bool, retry_ms: int | None = None) -> None:
        self.store = store
        self.session_id = session_id
        self.stream_id = new_stream_id()
        self.prime = prime
        self.retry_ms = retry_ms

    async def append(self, data: bytes) -> str:
        return await self.store.append(self.session_id, self.stream_id, data)

    async def priming(self) -> bytes:
        """The first event of a 2025-11-25 stream: an id to resume from, the reconnect delay, and no data.
        Older revisions get nothing here (their events still carry ids)."""
        if not self.prime:
            return b""
        event_id = await self.append(b"")
        retry = f"retry: {self.retry_ms}\n" if self.retry_ms is not None else ""
        return f"id: {event_id}\n{retry}data: \n\n".encode()

    async def finish(self) -> None:
        await self.store.finish(self.session_id, self.stream_id)


async def replay(store: EventStore, session_id: str, last_event_id: str) -> AsyncIterator[bytes]:
    """The events after `last_event_id` on its own stream, then live ones until the stream's reply."""
    async for event_id, data in store.follow(session_id, last_event_id):
        if data:  # the priming marker has no message to replay
            yield sse_event(data, event_id)


async def as_events(messages: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Encoded JSON-RPC messages as SSE events."""
    async for message in messages:
        yield sse_event(message)


async def _framed(events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    # A first comment at once, so the client (and any proxy) sees the stream open before the first event.
    yield _PING
    try:
        async for chunk in events:
            yield chunk
    except StoreUnavailable as exc:
        # The stream cannot go on; ending it lets the client reconnect (and resume) once the store is back.
        logger.warning("ending an SSE stream: %s", exc)
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def serve_stream(scope: Scope, receive: Receive, send: Send, events: AsyncIterator[bytes], *,
                       heartbeat: float) -> None:
    """An SSE response fed by `events` (SSE-framed bytes), with a heartbeat comment every `heartbeat` seconds.
    Ends when `events` ends (a replayed call reached its reply), when the client leaves or stops reading, or when
    the server shuts down; either way nothing is left running."""
    # Imported here, on the first stream: it imports uvicorn, which stdio never needs.
    from sse_starlette import EventSourceResponse, ServerSentEvent
    from sse_starlette.sse import SendTimeoutError

    shutdown = anyio.Event()
    response = EventSourceResponse(
        _framed(events), headers=_HEADERS, ping=heartbeat, sep="\n", send_timeout=_SEND_TIMEOUT,
        ping_message_factory=lambda: ServerSentEvent(comment="ping", sep="\n"), shutdown_event=shutdown)
    sent = _Progress(send)
    try:
        await response(scope, receive, sent)
        if shutdown.is_set() and sent.started and not sent.finished:
            # At server shutdown sse-starlette cancels the stream mid-body; the last chunk ends it cleanly, so the
            # client sees a stream that ended (and reconnects, to another instance) rather than a broken one.
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except (SendTimeoutError, OSError) as exc:
        logger.debug("SSE client stopped reading: %r", exc)


class _Progress:
    """A `send` that notes whether the response has started and finished."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = self.finished = False

    async def __call__(self, message: Message) -> None:
        await self._send(message)
        if message["type"] == "http.response.start":
            self.started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.finished = True
