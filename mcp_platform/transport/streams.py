"""Long-lived SSE streams: resuming a call's stream with `Last-Event-ID`, the standalone GET stream of a session,
and 2026-07-28 `subscriptions/listen`. Change events come from the `Notifier`; replayed events from the
`EventStore`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic_core import to_json
from starlette.types import Receive, Send

from mcp_platform.errors import InvalidParams
from mcp_platform.stores.base import EventStore, Notifier
from mcp_platform.stores.memory import new_stream_id
from mcp_platform.transport.sse import SSE_HEADERS, sse_event, wait_disconnect

__all__ = ["LIST_CHANGED", "StreamRecorder", "listen_filter", "serve_stream"]

SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
LIST_CHANGED = {"tools": "notifications/tools/list_changed", "prompts": "notifications/prompts/list_changed",
                "resources": "notifications/resources/list_changed"}
_FILTER_KEYS = {"toolsListChanged": "tools", "promptsListChanged": "prompts", "resourcesListChanged": "resources"}
_PING = b": ping\n\n"


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


def _message(method: str, params: dict[str, Any]) -> bytes:
    return sse_event(to_json({"jsonrpc": "2.0", "method": method, "params": params}))


async def session_notifications(notifier: Notifier, subscriptions: Callable[[], Awaitable[list[str]]]
                                ) -> AsyncIterator[bytes]:
    """Handshake era: list-changed notifications, and resource updates for the URIs the session subscribed to."""
    async for event in notifier.subscribe():
        kind = event.get("kind")
        if kind in LIST_CHANGED:
            yield _message(LIST_CHANGED[kind], {})
        elif kind == "resource" and event.get("uri") in await subscriptions():
            yield _message("notifications/resources/updated", {"uri": event["uri"]})


def listen_filter(params: dict[str, Any]) -> dict[str, Any]:
    """The granted subset of a `subscriptions/listen` request's `notifications` filter."""
    wanted = params.get("notifications")
    if not isinstance(wanted, dict):
        raise InvalidParams("Invalid params: subscriptions/listen needs a 'notifications' object")
    granted: dict[str, Any] = {key: True for key in _FILTER_KEYS if wanted.get(key) is True}
    uris = wanted.get("resourceSubscriptions")
    if uris is not None:
        if not isinstance(uris, list) or len(uris) > 1000 or not all(isinstance(u, str) for u in uris):
            raise InvalidParams("Invalid params: resourceSubscriptions must be a list of at most 1000 URIs")
        granted["resourceSubscriptions"] = sorted(set(uris))
    return granted


async def listen_events(notifier: Notifier, granted: dict[str, Any], subscription_id: Any) -> AsyncIterator[bytes]:
    """2026-07-28: the acknowledgement, then only the kinds granted, each tagged with the subscription id."""
    meta = {SUBSCRIPTION_ID_KEY: subscription_id}
    yield _message("notifications/subscriptions/acknowledged", {"notifications": granted, "_meta": meta})
    kinds = {_FILTER_KEYS[key] for key in _FILTER_KEYS if granted.get(key)}
    uris = set(granted.get("resourceSubscriptions", ()))
    async for event in notifier.subscribe():
        kind = event.get("kind")
        if kind in kinds:
            yield _message(LIST_CHANGED[kind], {"_meta": meta})
        elif kind == "resource" and event.get("uri") in uris:
            yield _message("notifications/resources/updated", {"uri": event["uri"], "_meta": meta})


async def serve_stream(send: Send, receive: Receive, events: AsyncIterator[bytes], *, heartbeat: float,
                       first: bytes = b"") -> None:
    """An SSE response fed by `events`, with heartbeats while quiet. Ends when `events` ends (a replayed call
    reached its reply) or when the client leaves; either way nothing is left running."""
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    lock = asyncio.Lock()
    await send({"type": "http.response.body", "body": first or _PING, "more_body": True})

    async def pump() -> None:
        async for chunk in events:
            async with lock:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

    loop = asyncio.get_running_loop()
    pumping = loop.create_task(pump())
    gone = loop.create_task(wait_disconnect(receive))
    try:
        while True:
            done, _ = await asyncio.wait({pumping, gone}, timeout=heartbeat, return_when=asyncio.FIRST_COMPLETED)
            if gone in done:
                return
            if pumping in done:
                pumping.result()
                async with lock:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            async with lock:
                with contextlib.suppress(OSError):
                    await send({"type": "http.response.body", "body": _PING, "more_body": True})
    finally:
        for task in (pumping, gone):
            task.cancel()
        with contextlib.suppress(BaseException):
            await pumping
        if isinstance(events, AsyncIterator) and hasattr(events, "aclose"):
            with contextlib.suppress(Exception):
                await events.aclose()
