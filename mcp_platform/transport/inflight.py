"""Handshake-era calls running on this instance, and the routing of what clients send about them.

A client's `notifications/cancelled`, or its answer to a request a tool made (elicitation, sampling), arrives as
a separate POST, which a load balancer may hand to any instance. Both go out on the internal bus; the instance
running the call acts on them. With one instance the bus is in-process and the path is the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mcp_platform.errors import ToolError
from mcp_platform.stores.base import Notifier
from mcp_platform.transport.sse import CallStream

__all__ = ["InFlight"]

logger = logging.getLogger(__name__)

ServerRequest = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class InFlight:
    def __init__(self, bus: Notifier | None) -> None:
        self._bus = bus
        self._calls: dict[tuple[str, Any], CallStream] = {}
        self._replies: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
        self._next_request = 0

    @contextmanager
    def running(self, session_id: str, request_id: Any, stream: CallStream) -> Iterator[None]:
        """Register a call for the time it runs, so a cancellation can find it."""
        key = (session_id, request_id)
        self._calls[key] = stream
        try:
            yield
        finally:
            if self._calls.get(key) is stream:
                del self._calls[key]

    def requester(self, session_id: str, stream: CallStream) -> ServerRequest:
        """How a tool sends a request to the client: on the call's own stream; the answer comes back by `reply`."""

        async def request(method: str, params: dict[str, Any]) -> dict[str, Any]:
            self._next_request += 1
            request_id = f"srv-{self._next_request}"
            waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._replies[(session_id, request_id)] = waiting
            try:
                await stream.send_message({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
                return await waiting
            finally:
                self._replies.pop((session_id, request_id), None)

        return request

    async def reply(self, session_id: str, request_id: Any, result: Any, error: Any) -> None:
        await self._send({"kind": "reply", "session": session_id, "id": str(request_id), "result": result,
                          "error": error})

    async def cancel(self, session_id: str, request_id: Any) -> None:
        await self._send({"kind": "cancel", "session": session_id, "id": request_id})

    async def cancel_session(self, session_id: str) -> None:
        for owner, request_id in list(self._calls):
            if owner == session_id:
                await self.cancel(session_id, request_id)

    async def _send(self, event: dict[str, Any]) -> None:
        if self._bus is None:
            self._act(event)
        else:
            await self._bus.publish(event)

    async def serve(self) -> None:
        """Act on cancellations and replies for calls running here, wherever they arrived (runs for the app's life)."""
        if self._bus is None:
            return
        async for event in self._bus.subscribe():
            try:
                self._act(event)
            except Exception:
                logger.exception("could not act on an internal event")

    def _act(self, event: dict[str, Any]) -> None:
        session_id = event.get("session")
        if not isinstance(session_id, str):
            return
        if event.get("kind") == "cancel":
            stream = self._calls.get((session_id, event.get("id")))
            if stream is not None:
                stream.request_cancel()
        elif event.get("kind") == "reply":
            waiting = self._replies.get((session_id, str(event.get("id"))))
            if waiting is None or waiting.done():
                return
            result, error = event.get("result"), event.get("error")
            if isinstance(result, dict):
                waiting.set_result(result)
            else:
                reason = error.get("message") if isinstance(error, dict) else None
                waiting.set_exception(ToolError(f"The client refused the request: {reason or 'no reason'}"))
