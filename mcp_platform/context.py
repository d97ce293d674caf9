"""ToolContext: what a tool sees of the request that called it.

A tool asks for one by declaring a parameter annotated `ToolContext`; the registry fills it in and leaves it out
of the input schema. Notifications (progress, log messages) go to the call's own response stream; the transport
switches that response from JSON to SSE the first time one is sent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from mcp_platform.auth_types import Principal
from mcp_platform.errors import MissingClientCapability, ToolError
from mcp_platform.settings import Settings
from mcp_platform.stores.base import Notifier

__all__ = ["LOG_LEVELS", "Backends", "Clock", "FlagReader", "InputRequired", "Notify", "ServerRequest",
           "ToolContext", "ToolHost"]

T = TypeVar("T")

Notify = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Sends one server notification (method, params) on the current request's stream."""

ServerRequest = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Sends a request to the client (handshake era) and returns its result."""

# What each client-side request needs the client to have declared.
_CAPABILITY_OF = {"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}


class InputRequired(Exception):  # noqa: N818 - it is a result, not an error
    """Raised inside a 2026-07-28 call that needs answers from the client: the call ends with an `input_required`
    result listing `requests`, and the client retries with the answers (and the signed request state)."""

    def __init__(self, requests: dict[str, dict[str, Any]]) -> None:
        super().__init__(f"input required: {', '.join(requests)}")
        self.requests = requests


def _valid_answer(method: str, answer: Any) -> bool:
    if not isinstance(answer, dict):
        return False
    if method == "elicitation/create":
        return answer.get("action") in ("accept", "decline", "cancel")
    if method == "sampling/createMessage":
        return isinstance(answer.get("content"), dict | list)
    if method == "roots/list":
        return isinstance(answer.get("roots"), list)
    return True

# RFC 5424 severities, as MCP names them, least severe first.
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
_LEVEL_RANK = {name: rank for rank, name in enumerate(LOG_LEVELS)}


@dataclass(frozen=True, slots=True)
class Clock:
    """The monotonic clock behind every time-based decision (rate limits, metric windows, session expiry).
    `create_app(settings, clock=...)` lets tests move time instead of sleeping."""

    now: Callable[[], float] = time.monotonic


class Backends:
    """The capability backends the app's lifespan started, looked up by type so tools stay decoupled from the app
    (`ctx.backend(OrmBackend)`). Only capability backends: the server's own parts are fields of the core object."""

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


class FlagReader(Protocol):
    def is_enabled(self, name: str) -> bool:
        """The flag's value; raises `KeyError` for a flag that is not declared."""
        ...


class ToolHost(Protocol):
    """What the running server lends each tool call (the app's `Core` is one). A protocol, so this module needs
    nothing from the layers that build it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def flags(self) -> FlagReader: ...

    @property
    def notifier(self) -> Notifier: ...

    @property
    def backends(self) -> Backends: ...


async def _drop(method: str, params: dict[str, Any]) -> None:
    return None


class ToolContext:
    """The request a tool runs for: caller, progress, logging, and the platform's backends."""

    __slots__ = ("_answers", "_core", "_last_progress", "_log_rank", "_notify", "_progress_token", "_server_request",
                 "client_capabilities", "modern", "principal", "protocol_version", "request_id", "state", "tool_name")

    def __init__(
        self,
        *,
        principal: Principal,
        tool_name: str,
        request_id: str | int,
        protocol_version: str,
        core: ToolHost | None = None,
        notify: Notify | None = None,
        progress_token: str | int | None = None,
        log_level: str | None = None,
        client_capabilities: dict[str, Any] | None = None,
        modern: bool = False,
        server_request: ServerRequest | None = None,
        answers: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.principal = principal
        self.tool_name = tool_name
        self.request_id = request_id
        self.protocol_version = protocol_version
        self._core = core
        self._notify: Notify = notify or _drop
        self._progress_token = progress_token
        self._log_rank = _LEVEL_RANK.get(log_level, len(LOG_LEVELS)) if log_level is not None else len(LOG_LEVELS)
        self._last_progress: float | None = None
        self.client_capabilities = client_capabilities or {}
        self.modern = modern
        self._server_request = server_request
        self._answers = answers or {}
        self.state: dict[str, Any] = state if state is not None else {}
        """JSON-able values a 2026-07-28 tool keeps across its input rounds (signed, so the client cannot alter
        them)."""

    @property
    def answers(self) -> dict[str, Any]:
        """Every answer the client has given this call so far, by request key (2026-07-28 input rounds)."""
        return dict(self._answers)

    def client_supports(self, capability: str) -> bool:
        return isinstance(self.client_capabilities.get(capability), dict)

    async def ask(self, requests: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Ask the client for input: `requests` maps a key to `{"method": ..., "params": ...}` (elicitation/create,
        sampling/createMessage, roots/list). Returns the answers by key.

        Handshake era: each request is sent on this call's stream and awaited. 2026-07-28: answers already given
        are returned; otherwise the call ends with an `input_required` result and resumes when the client retries.
        A capability the client did not declare is a `MissingClientCapability` error naming it.
        """
        missing = {_CAPABILITY_OF[r["method"]] for r in requests.values()
                   if r["method"] in _CAPABILITY_OF and not self.client_supports(_CAPABILITY_OF[r["method"]])}
        if missing:
            raise MissingClientCapability(
                f"Missing required client capability: {', '.join(sorted(missing))}",
                {"requiredCapabilities": {name: {} for name in sorted(missing)}})
        if self.modern:
            answers = {k: self._answers[k] for k, r in requests.items() if _valid_answer(r["method"],
                                                                                         self._answers.get(k))}
            pending = {k: r for k, r in requests.items() if k not in answers}
            if pending:
                raise InputRequired(pending)
            return answers
        if self._server_request is None:
            raise ToolError("This request cannot ask the client for input; call it as a tool.")
        return {key: await self._server_request(r["method"], r.get("params", {})) for key, r in requests.items()}

    async def elicit(self, message: str, schema: dict[str, Any], *, key: str = "elicitation") -> dict[str, Any]:
        """Ask the user for structured input; returns `{"action": "accept"|"decline"|"cancel", "content": {...}}`."""
        request = {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}
        return (await self.ask({key: request}))[key]  # type: ignore[no-any-return]

    async def sample(self, prompt: str, *, max_tokens: int = 100, key: str = "sampling") -> dict[str, Any]:
        """Ask the client's model to complete `prompt`; returns the CreateMessageResult."""
        params = {"messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
                  "maxTokens": max_tokens}
        return (await self.ask({key: {"method": "sampling/createMessage", "params": params}}))[key]  # type: ignore[no-any-return]

    async def list_roots(self, *, key: str = "roots") -> list[dict[str, Any]]:
        answer = (await self.ask({key: {"method": "roots/list", "params": {}}}))[key]
        roots = answer.get("roots", []) if isinstance(answer, dict) else []
        return roots if isinstance(roots, list) else []

    async def list_changed(self, kind: str) -> None:
        """Tell every listening client that the `tools`, `prompts` or `resources` list changed."""
        if kind not in ("tools", "prompts", "resources"):
            raise ValueError("kind must be 'tools', 'prompts' or 'resources'")
        await self._publish({"kind": kind})

    async def resource_updated(self, uri: str) -> None:
        """Tell clients subscribed to `uri` that it changed."""
        await self._publish({"kind": "resource", "uri": uri})

    async def _publish(self, event: dict[str, Any]) -> None:
        if self._core is not None:
            await self._core.notifier.publish(event)

    @property
    def settings(self) -> Settings:
        """The server's settings in effect now (a config reload swaps them)."""
        if self._core is None:
            raise LookupError("this context belongs to no server, so it has no settings")
        return self._core.settings

    def flag(self, name: str, default: bool = False) -> bool:
        """Whether feature flag `name` is on: declared in the config file, flipped with `set_feature_flag`.
        A flag the config does not declare (or a server without flags) reads as `default`."""
        if self._core is None:
            return default
        try:
            return self._core.flags.is_enabled(name)
        except KeyError:
            return default

    def backend(self, kind: type[T]) -> T:
        """The configured backend of type `kind` (raises `LookupError` naming it when absent)."""
        if kind is Settings:  # before `ctx.settings` existed, tools asked for the settings this way
            return self.settings  # type: ignore[return-value]
        if self._core is None:
            raise LookupError(f"no {kind.__name__} backend is configured on this server")
        return self._core.backends.get(kind)

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
