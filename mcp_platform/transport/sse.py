"""Responses on the raw ASGI `send`: JSON, and SSE that starts only when a call first emits a notification.

A tool call runs in its own task so that the response can switch to SSE mid-call, heartbeats can flow while it is
quiet, and a client that goes away can be noticed (and, where the era says so, cancel the call). That switch is
why this SSE is framed by hand; streams that are SSE from their first byte use sse-starlette (`streams.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from typing import Any, Protocol

from pydantic_core import to_json
from starlette.types import Receive, Send

from mcp_platform.errors import WireReply

__all__ = ["SSE_HEADERS", "CallStream", "Recorder", "send_json", "send_status", "sse_event", "wait_disconnect"]

logger = logging.getLogger(__name__)

SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
_PING = b": ping\n\n"
_WATCH_AFTER = 0.05
"""Seconds a call runs before it gets a watcher task (heartbeats, disconnect); faster calls never need one."""


def sse_event(message: bytes, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n".encode() if event_id is not None else b""
    return head + b"event: message\ndata: " + message + b"\n\n"


async def send_json(send: Send, status: int, body: bytes,
                    headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


async def send_status(send: Send, status: int, headers: Iterable[tuple[bytes, bytes]] = (),
                      body: bytes = b"") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def wait_disconnect(receive: Receive) -> None:
    """Return when the client goes away (the request body has already been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class Recorder(Protocol):
    """Keeps a stream's events for `Last-Event-ID` resumption (see `transport.streams.StreamRecorder`)."""

    async def append(self, data: bytes) -> str: ...

    async def priming(self) -> bytes: ...

    async def finish(self) -> None: ...


class CallStream:
    """The response to one request whose handler may emit notifications before its reply. With a `recorder`
    (handshake-era sessions), every event also goes to the event store, even after the client left, so that it can
    resume the stream with `Last-Event-ID`."""

    def __init__(self, send: Send, *, heartbeat: float, headers: Iterable[tuple[bytes, bytes]] = (),
                 recorder: Recorder | None = None) -> None:
        self._send = send
        self._heartbeat = heartbeat
        self._headers = list(headers)
        self._recorder = recorder
        self._lock = asyncio.Lock()
        self._final_id: str | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancel_requested = False
        self.started = False
        self.closed = False

    async def _start(self) -> None:
        if not self.started:
            self.started = True
            await self._send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *self._headers]})
            if self._recorder is not None:
                await self._send({"type": "http.response.body", "body": await self._recorder.priming(),
                                  "more_body": True})

    async def _emit(self, message: bytes | None) -> None:
        """Send one event (or a heartbeat when `message` is None), recording it first when resumable."""
        async with self._lock:
            try:
                if not self.closed:
                    await self._start()
                event_id = await self._recorder.append(message) if self._recorder and message is not None else None
                if not self.closed:
                    chunk = _PING if message is None else sse_event(message, event_id)
                    await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
            except OSError:  # the client went away; the disconnect watcher handles the rest
                self.closed = True

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        """Send one notification as an SSE event (switching the response to SSE if it was not yet)."""
        await self._emit(to_json({"jsonrpc": "2.0", "method": method, "params": params}))

    async def send_message(self, message: dict[str, Any]) -> None:
        """Send any JSON-RPC message (a request to the client, in the handshake era) as an SSE event."""
        await self._emit(to_json(message))

    async def _recorded(self, work: Awaitable[WireReply]) -> WireReply:
        """Run `work`; when the reply will go out as SSE (or nobody is listening any more), record it as the
        stream's last event so a resuming client gets it exactly once."""
        try:
            reply = await work
        except asyncio.CancelledError:
            if self._recorder is not None and (self.started or self.closed):
                await self._recorder.finish()
            raise
        if self._recorder is not None:
            async with self._lock:
                if self.started or self.closed:
                    self._final_id = await self._recorder.append(reply.body)
                    await self._recorder.finish()
        return reply

    def request_cancel(self) -> None:
        """Cancel the call (the client asked: `notifications/cancelled`, or its 2026-07-28 stream closed)."""
        if self._task is not None and not self._cancel_requested:
            self._cancel_requested = True
            self._task.cancel()

    async def run(self, work: Awaitable[WireReply], receive: Receive, *, cancel_on_disconnect: bool) -> None:
        """Run `work` (the reply: the HTTP status and headers for a JSON reply, and the encoded JSON-RPC reply) in
        this request's own task, and deliver the reply as JSON or as the SSE stream's last event.

        Most calls finish in microseconds, so nothing else is started for them. A call still running after
        `_WATCH_AFTER` seconds gets a watcher task: it sends heartbeats while the call is quiet, and notices the
        client leaving, which cancels the call when `cancel_on_disconnect` (2026-07-28); otherwise the call goes on
        (bounded by its timeout) and its events stay in the event store for a resuming client.
        """
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        watcher: list[asyncio.Task[None]] = []
        later = loop.call_later(_WATCH_AFTER, lambda: watcher.append(
            loop.create_task(self._watch(receive, cancel_on_disconnect))))
        try:
            reply = await self._recorded(work)
        except asyncio.CancelledError:
            if not self._cancel_requested:
                raise  # the server is shutting down
            assert self._task is not None
            self._task.uncancel()
            # Cancelled by the client: it asked for no reply, so end the response without one.
            async with self._lock:
                if not self.closed:
                    self.closed = True
                    with contextlib.suppress(OSError):
                        await self._start()
                        await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        finally:
            later.cancel()
            for task in watcher:
                task.cancel()
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            if self.started:
                await self._send({"type": "http.response.body", "body": sse_event(reply.body, self._final_id),
                                  "more_body": False})
            else:
                headers = [*self._headers, *reply.headers] if reply.headers else self._headers
                await send_json(self._send, reply.status, reply.body, headers)

    async def _watch(self, receive: Receive, cancel_on_disconnect: bool) -> None:
        gone = asyncio.get_running_loop().create_task(wait_disconnect(receive))
        try:
            while True:
                done, _ = await asyncio.wait({gone}, timeout=self._heartbeat)
                if done:
                    self.closed = True
                    if cancel_on_disconnect:
                        self.request_cancel()
                    return
                await self._emit(None)
        finally:
            gone.cancel()
