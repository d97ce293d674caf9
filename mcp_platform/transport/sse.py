"""Responses on the raw ASGI `send`: JSON, and SSE that starts only when a call first emits a notification.

A tool call runs in its own task so that the response can switch to SSE mid-call, heartbeats can flow while it is
quiet, and a client that goes away can be noticed (and, where the era says so, cancel the call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pydantic_core import to_json
from starlette.types import Receive, Send

__all__ = ["SSE_HEADERS", "CallStream", "send_json", "send_status", "sse_event", "wait_disconnect"]

logger = logging.getLogger(__name__)

SSE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
_PING = b": ping\n\n"


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


class CallStream:
    """The response to one request whose handler may emit notifications before its reply."""

    def __init__(self, send: Send, *, heartbeat: float, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._send = send
        self._heartbeat = heartbeat
        self._headers = list(headers)
        self._lock = asyncio.Lock()
        self.started = False
        self.closed = False

    async def _start(self) -> None:
        if not self.started:
            self.started = True
            await self._send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *self._headers]})

    async def _write(self, chunk: bytes) -> None:
        async with self._lock:
            if self.closed:
                return
            try:
                await self._start()
                await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
            except OSError:  # the client went away; the disconnect watcher handles the rest
                self.closed = True

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        """Send one notification as an SSE event (switching the response to SSE if it was not yet)."""
        await self._write(sse_event(to_json({"jsonrpc": "2.0", "method": method, "params": params})))

    async def send_message(self, message: dict[str, Any]) -> None:
        """Send any JSON-RPC message (a request to the client, in the handshake era) as an SSE event."""
        await self._write(sse_event(to_json(message)))

    async def run(
        self,
        work: Awaitable[tuple[int, bytes]],
        receive: Receive,
        *,
        cancel_on_disconnect: bool,
        background: set[asyncio.Task[Any]],
        on_task: Callable[[asyncio.Task[tuple[int, bytes]]], None] | None = None,
    ) -> None:
        """Run `work` (it returns the HTTP status for a JSON reply, and the encoded JSON-RPC reply) and deliver
        the reply as JSON or as the SSE stream's last event. If the client disconnects, the task is cancelled when
        `cancel_on_disconnect`; otherwise it finishes on its own (bounded by the tool timeout) and its reply is
        dropped."""
        loop = asyncio.get_running_loop()
        task: asyncio.Task[tuple[int, bytes]] = loop.create_task(work)  # type: ignore[arg-type]
        if on_task is not None:
            on_task(task)
        gone = loop.create_task(wait_disconnect(receive))
        try:
            while True:
                done, _ = await asyncio.wait({task, gone}, timeout=self._heartbeat,
                                             return_when=asyncio.FIRST_COMPLETED)
                if task in done:
                    break
                if gone in done:
                    self.closed = True
                    if cancel_on_disconnect:
                        task.cancel()
                    else:
                        _detach(task, background)
                    return
                await self._write(_PING)
        finally:
            gone.cancel()
        if task.cancelled():
            # Cancelled by the client (notifications/cancelled): it asked for no reply, so end the response empty.
            async with self._lock:
                if not self.closed:
                    await self._start()
                    await self._send({"type": "http.response.body", "body": b"", "more_body": False})
                    self.closed = True
            return
        status, reply = task.result()
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            if self.started:
                await self._send({"type": "http.response.body", "body": sse_event(reply), "more_body": False})
            else:
                await send_json(self._send, status, reply, self._headers)


def _detach(task: asyncio.Task[Any], background: set[asyncio.Task[Any]]) -> None:
    """Keep a still-running call alive after its client left (the loop holds tasks only weakly)."""
    background.add(task)

    def _done(finished: asyncio.Task[Any]) -> None:
        background.discard(finished)
        if not finished.cancelled() and finished.exception() is not None:
            logger.error("detached call failed", exc_info=finished.exception())

    task.add_done_callback(_done)


async def hold_stream(send: Send, receive: Receive, *, heartbeat: float) -> None:
    """A standalone GET stream: headers now, heartbeats while quiet, until the client leaves."""
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    await send({"type": "http.response.body", "body": _PING, "more_body": True})
    while True:
        try:
            await asyncio.wait_for(wait_disconnect(receive), timeout=heartbeat)
            return
        except TimeoutError:
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": _PING, "more_body": True})
