"""Observers of what the server does, so metrics, audit and rate limiting stay out of the dispatch code.

Each capability's start function returns its observers as a `Hooks` of its own; the app adds them to the server's
(`include`), and dispatch and transport call them. A failing observer is logged and never fails the request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

__all__ = ["Hooks", "Outcome", "ToolCallRecord"]

logger = logging.getLogger(__name__)

Outcome = Literal["ok", "error", "timeout", "cancelled", "denied", "exception", "input_required"]


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One finished tool call. `arguments` are the raw values: observers must digest, never store, them."""

    principal: str
    tool: str
    arguments: dict[str, Any]
    outcome: Outcome
    duration_s: float
    started_at: float
    """Wall-clock start (seconds since the epoch)."""
    request_id: str | int | None = None
    read_only: bool = False
    """The tool is read-only. Observers that keep records make a writing call's record durable before the reply
    (the audit log does); a read-only call's may be written after it."""


@dataclass
class Hooks:
    tool_call: list[Callable[[ToolCallRecord], Awaitable[None]]] = field(default_factory=list)
    before_tool_call: list[Callable[[str, str], Awaitable[None]]] = field(default_factory=list)
    """Called with (principal name, tool name) before a call; may raise `RateLimited` to refuse it."""
    before_request: list[Callable[[str], Awaitable[None]]] = field(default_factory=list)
    """Called with the principal name on every authenticated request; may raise `RateLimited`."""
    auth_gate: list[Callable[[str], Awaitable[None]]] = field(default_factory=list)
    """Called with the client IP when its token failed (a valid token skips it); raises `RateLimited` after too
    many failures."""
    auth_failure: list[Callable[[str], Awaitable[None]]] = field(default_factory=list)
    """Called with the client IP after a failed authentication."""
    http_response: list[Callable[[int], None]] = field(default_factory=list)
    rate_limited: list[Callable[[], None]] = field(default_factory=list)
    """Called after a request or call was refused for its rate limit."""

    def include(self, other: Hooks) -> Callable[[], None]:
        """Add every observer of `other` to these hooks; returns the function that removes them again."""
        added = [(getattr(self, f.name), callback) for f in fields(self) for callback in getattr(other, f.name)]
        for callbacks, callback in added:
            callbacks.append(callback)

        def remove() -> None:
            for callbacks, callback in added:
                callbacks.remove(callback)

        return remove

    async def check_request(self, principal: str) -> None:
        for callback in self.before_request:
            await callback(principal)

    async def check_auth_allowed(self, ip: str) -> None:
        for callback in self.auth_gate:
            await callback(ip)

    async def note_auth_failure(self, ip: str) -> None:
        for callback in self.auth_failure:
            try:
                await callback(ip)
            except Exception:
                logger.exception("auth-failure observer %r failed", callback)

    async def check_tool_call(self, principal: str, tool: str) -> None:
        for callback in self.before_tool_call:
            await callback(principal, tool)

    async def emit_tool_call(self, record: ToolCallRecord) -> None:
        for callback in self.tool_call:
            try:
                await callback(record)
            except Exception:
                logger.exception("tool-call observer %r failed", callback)

    def note_rate_limited(self) -> None:
        for callback in self.rate_limited:
            try:
                callback()
            except Exception:
                logger.exception("rate-limit observer %r failed", callback)

    def emit_http_response(self, status: int) -> None:
        for callback in self.http_response:
            try:
                callback(status)
            except Exception:
                logger.exception("http-response observer %r failed", callback)
