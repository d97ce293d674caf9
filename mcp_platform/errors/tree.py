"""The error tree's classes (see `mcp_platform.errors` for the tree), except the auth refusals (`auth.py`).

Every refusal carries its JSON-RPC code, its HTTP status (None: the era decides) and its headers; `wire.py`
turns any of them into what goes out.
"""

from __future__ import annotations

from typing import Any, ClassVar

Headers = list[tuple[bytes, bytes]]

# JSON-RPC 2.0 and MCP error codes, named once.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNAUTHORIZED = -32001
RESOURCE_NOT_FOUND = -32002
FORBIDDEN = -32003
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022
TOO_MANY_REQUESTS = -32029


class McpPlatformError(Exception):
    """Base of every error this package raises on purpose."""

    code: ClassVar[int | None] = None
    """The JSON-RPC error code it is sent with; None: not a wire error (reaching `to_wire` is a bug)."""
    http_status: ClassVar[int | None] = None
    """The HTTP status it is sent with; None: the era decides (see `to_wire`)."""

    @property
    def wire_message(self) -> str:
        return str(self)

    @property
    def wire_data(self) -> Any:
        return None

    def wire_headers(self) -> Headers:
        return []


def _retry_seconds(seconds: float) -> int:
    """Whole seconds, rounded up, at least 1: what `Retry-After` and `data.retryAfter` carry."""
    return max(1, int(seconds + 0.999))


class ProtocolError(McpPlatformError):
    """A request the protocol layer refuses; sent as a JSON-RPC error object."""

    code = INTERNAL_ERROR

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    @property
    def wire_message(self) -> str:
        return self.message

    @property
    def wire_data(self) -> Any:
        return self.data


class ParseError(ProtocolError):
    code = PARSE_ERROR


class InvalidRequest(ProtocolError):
    code = INVALID_REQUEST


class BadRequest(InvalidRequest):
    http_status = 400


class OriginForbidden(InvalidRequest):
    http_status = 403


class UnknownEventId(InvalidRequest):
    http_status = 404


class NotAcceptable(InvalidRequest):
    http_status = 406


class RequestTimeout(InvalidRequest):
    """The request body did not arrive in time. The connection is closed: the rest of the body may still come."""

    http_status = 408

    def wire_headers(self) -> Headers:
        return [(b"connection", b"close")]


class StreamConflict(InvalidRequest):
    http_status = 409


class PayloadTooLarge(InvalidRequest):
    http_status = 413


class MisdirectedRequest(InvalidRequest):
    http_status = 421


class MethodNotFound(ProtocolError):
    code = METHOD_NOT_FOUND


class InvalidParams(ProtocolError):
    code = INVALID_PARAMS


class InternalError(ProtocolError):
    code = INTERNAL_ERROR


class ResourceNotFound(ProtocolError):
    """Not found; the era decides the code (see `error_object`)."""

    code = RESOURCE_NOT_FOUND
    modern_code: ClassVar[int] = INVALID_PARAMS


class HeaderMismatch(ProtocolError):
    code = HEADER_MISMATCH


class MissingClientCapability(ProtocolError):
    code = MISSING_CLIENT_CAPABILITY


class UnsupportedProtocolVersion(ProtocolError):
    code = UNSUPPORTED_PROTOCOL_VERSION


class SessionNotFound(ProtocolError):
    code = UNAUTHORIZED
    http_status = 404

    def __init__(self) -> None:
        super().__init__("Session not found")


class ToolError(McpPlatformError):
    """Raised by a tool to return `isError: true` with this message, which the model reads to correct itself."""


class ToolTimeout(McpPlatformError):
    def __init__(self, tool: str, seconds: float) -> None:
        super().__init__(f"Tool {tool} did not finish within its {seconds:g} s timeout and was stopped.")
        self.seconds = seconds


class RateLimited(McpPlatformError):
    code = TOO_MANY_REQUESTS
    http_status = 429

    def __init__(self, retry_after: float, what: str = "requests") -> None:
        super().__init__(f"rate limit exceeded for {what}; retry after {retry_after:.1f} s")
        self.retry_after = retry_after

    @property
    def wire_message(self) -> str:
        return f"Too many requests: {self}"

    @property
    def wire_data(self) -> Any:
        return {"retryAfter": _retry_seconds(self.retry_after)}

    def wire_headers(self) -> Headers:
        return [(b"retry-after", str(_retry_seconds(self.retry_after)).encode())]


class ServiceUnavailable(McpPlatformError):
    """The server cannot take the request now; `retry_after` seconds is a fair wait. Nothing needs a restart.
    A subclass may set its own `retry_after` as a class attribute; a raise site may pass one."""

    code = INTERNAL_ERROR
    http_status = 503
    retry_after: float = 5.0

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.retry_after = retry_after

    @property
    def wire_message(self) -> str:
        return f"Service unavailable: {self}"

    def wire_headers(self) -> Headers:
        return [(b"retry-after", str(_retry_seconds(self.retry_after)).encode())]


class Draining(ServiceUnavailable):
    """The server is shutting down (SIGTERM): it finishes its running calls but takes no new session, call or
    stream. Another instance can take it now, hence the short `Retry-After`."""

    retry_after = 1.0

    def __init__(self, message: str = "the server is shutting down", *, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)


class StoreUnavailable(ServiceUnavailable):
    """A backing service is down. The message names it (never its credentials); requests get 503 until it is
    back, and nothing needs a restart."""

    def __init__(self, service: str, detail: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(f"{service} is unavailable" + (f": {detail}" if detail else ""), retry_after=retry_after)
        self.service = service


class MethodNotAllowed(McpPlatformError):
    """An HTTP method `/mcp` does not serve (in this era): 405 naming the allowed ones, and no body."""

    http_status = 405

    def __init__(self, allow: str) -> None:
        super().__init__(f"Method not allowed; allowed: {allow}")
        self.allow = allow

    def wire_headers(self) -> Headers:
        return [(b"allow", self.allow.encode())]


class ConfigError(McpPlatformError):
    """Invalid settings or tool modules; the message names the field or file and why."""


# 2026-07-28 maps error codes to HTTP statuses; everything else is a 200 with the error in the body.
