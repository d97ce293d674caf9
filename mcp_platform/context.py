"""ToolContext: what a tool sees of the request that called it.

A tool asks for one by declaring a parameter annotated `ToolContext`; the registry fills it in and leaves it out
of the input schema. Notifications (progress, log messages) go to the call's own response stream; the transport
switches that response from JSON to SSE the first time one is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from mcp_platform.auth_types import Principal

__all__ = ["LOG_LEVELS", "Backends", "Notify", "ToolContext"]

T = TypeVar("T")

Notify = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Sends one server notification (method, params) on the current request's stream."""

# RFC 5424 severities, as MCP names them, least severe first.
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
_LEVEL_RANK = {name: rank for rank, name in enumerate(LOG_LEVELS)}


class Backends:
    """The capability backends the app's lifespan created, looked up by type so tools stay decoupled from the app."""

    def __init__(self, items: Mapping[type[Any], Any] | None = None) -> None:
        self._items: dict[type[Any], Any] = dict(items or {})

    def add(self, instance: Any, kind: type[Any] | None = None) -> None:
        self._items[kind or type(instance)] = instance

    def get(self, kind: type[T]) -> T:
        try:
            value: T = self._items[kind]
        except KeyError:
            raise LookupError(f"no {kind.__name__} backend is configured on this server") from None
        return value

    def find(self, kind: type[T]) -> T | None:
        value: T | None = self._items.get(kind)
        return value


async def _drop(method: str, params: dict[str, Any]) -> None:
    return None


class ToolContext:
    """The request a tool runs for: caller, progress, logging, and the platform's backends."""

    __slots__ = ("_last_progress", "_log_rank", "_notify", "_progress_token", "backends", "principal",
                 "protocol_version", "request_id", "tool_name")

    def __init__(
        self,
        *,
        principal: Principal,
        tool_name: str,
        request_id: str | int,
        protocol_version: str,
        backends: Backends,
        notify: Notify | None = None,
        progress_token: str | int | None = None,
        log_level: str | None = None,
    ) -> None:
        self.principal = principal
        self.tool_name = tool_name
        self.request_id = request_id
        self.protocol_version = protocol_version
        self.backends = backends
        self._notify: Notify = notify or _drop
        self._progress_token = progress_token
        self._log_rank = _LEVEL_RANK.get(log_level, len(LOG_LEVELS)) if log_level is not None else len(LOG_LEVELS)
        self._last_progress: float | None = None

    def backend(self, kind: type[T]) -> T:
        """The configured backend of type `kind` (raises `LookupError` naming it when absent)."""
        return self.backends.get(kind)

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Send `notifications/progress` if the client asked for progress; values that do not increase are dropped,
        because the protocol requires progress to increase."""
        if self._progress_token is None:
            return
        if self._last_progress is not None and progress <= self._last_progress:
            return
        self._last_progress = progress
        params: dict[str, Any] = {"progressToken": self._progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self._notify("notifications/progress", params)

    async def log(self, level: str, message: str, *, logger: str | None = None) -> None:
        """Send `notifications/message` when the client's log level lets `level` through."""
        rank = _LEVEL_RANK.get(level)
        if rank is None:
            raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
        if rank < self._log_rank:
            return
        params: dict[str, Any] = {"level": level, "data": message}
        if logger is not None:
            params["logger"] = logger
        await self._notify("notifications/message", params)

    async def debug(self, message: str) -> None:
        await self.log("debug", message)

    async def info(self, message: str) -> None:
        await self.log("info", message)

    async def warning(self, message: str) -> None:
        await self.log("warning", message)

    async def error(self, message: str) -> None:
        await self.log("error", message)
