"""The error tree, and the one place exceptions become wire errors.

    McpPlatformError
    ├── ProtocolError            a JSON-RPC error object; `code` is the JSON-RPC code
    │   ├── ParseError               -32700  body is not JSON
    │   ├── InvalidRequest           -32600  JSON, but not one valid JSON-RPC message
    │   ├── MethodNotFound           -32601  unknown, or removed in this protocol version
    │   ├── InvalidParams            -32602  params of the wrong shape, unknown tool, bad cursor
    │   ├── ResourceNotFound         -32002 (handshake era) / -32602 (2026-07-28), with `data.uri`
    │   ├── InternalError            -32603  a bug on our side; never carries the traceback
    │   ├── HeaderMismatch           -32020  Mcp-* routing headers disagree with the body
    │   ├── MissingClientCapability  -32021
    │   └── UnsupportedProtocolVersion -32022 with `data.supported` and `data.requested`
    ├── ToolError                a tool failed in a way the model can correct: `isError: true` result
    ├── ToolTimeout              a tool ran past its timeout: `isError: true` result naming the limit
    ├── InsufficientScope        the token lacks the scope a tool needs: HTTP 403 `insufficient_scope`
    ├── RateLimited              over a rate limit: HTTP 429 with `Retry-After`
    ├── StoreUnavailable         a backing service (Redis, PostgreSQL) is unreachable: HTTP 503 naming it
    └── ConfigError              settings or a tool module are invalid; raised at start or on reload

Tools raise `ToolError`; any other exception escaping a tool is logged with its traceback and reported to the
client as a short `isError` result that names the tool but not the internals.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ConfigError",
    "HeaderMismatch",
    "InsufficientScope",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "McpPlatformError",
    "MethodNotFound",
    "MissingClientCapability",
    "ParseError",
    "ProtocolError",
    "RateLimited",
    "StoreUnavailable",
    "ResourceNotFound",
    "ToolError",
    "ToolTimeout",
    "UnsupportedProtocolVersion",
    "error_object",
    "modern_http_status",
]


class McpPlatformError(Exception):
    """Base of every error this package raises on purpose."""


class ProtocolError(McpPlatformError):
    """A request the protocol layer refuses; sent as a JSON-RPC error object."""

    code: ClassVar[int] = -32603

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class ParseError(ProtocolError):
    code = -32700


class InvalidRequest(ProtocolError):
    code = -32600


class MethodNotFound(ProtocolError):
    code = -32601


class InvalidParams(ProtocolError):
    code = -32602


class InternalError(ProtocolError):
    code = -32603


class ResourceNotFound(ProtocolError):
    """Not found; the era decides the code (see `error_object`)."""

    code = -32002
    modern_code: ClassVar[int] = -32602


class HeaderMismatch(ProtocolError):
    code = -32020


class MissingClientCapability(ProtocolError):
    code = -32021


class UnsupportedProtocolVersion(ProtocolError):
    code = -32022


class ToolError(McpPlatformError):
    """Raised by a tool to return `isError: true` with this message, which the model reads to correct itself."""


class ToolTimeout(McpPlatformError):
    def __init__(self, tool: str, seconds: float) -> None:
        super().__init__(f"Tool {tool} did not finish within its {seconds:g} s timeout and was stopped.")
        self.seconds = seconds


class InsufficientScope(McpPlatformError):
    def __init__(self, scope: str, what: str) -> None:
        super().__init__(f"{what} needs the {scope!r} scope")
        self.scope = scope


class RateLimited(McpPlatformError):
    def __init__(self, retry_after: float, what: str = "requests") -> None:
        super().__init__(f"rate limit exceeded for {what}; retry after {retry_after:.1f} s")
        self.retry_after = retry_after


class StoreUnavailable(McpPlatformError):
    """A backing service is down. The message names it (never its credentials); requests get 503 until it is
    back, and nothing needs a restart."""

    def __init__(self, service: str, detail: str = "") -> None:
        super().__init__(f"{service} is unavailable" + (f": {detail}" if detail else ""))
        self.service = service


class ConfigError(McpPlatformError):
    """Invalid settings or tool modules; the message names the field or file and why."""


# 2026-07-28 maps error codes to HTTP statuses; everything else is a 200 with the error in the body.
_MODERN_STATUS: dict[int, int] = {-32700: 400, -32600: 400, -32602: 400, -32020: 400, -32021: 400, -32022: 400,
                                  -32601: 404}


def modern_http_status(code: int) -> int:
    return _MODERN_STATUS.get(code, 200)


def error_object(exc: ProtocolError, *, modern: bool) -> dict[str, Any]:
    """The JSON-RPC `error` member for `exc` in the given era."""
    code = exc.modern_code if modern and isinstance(exc, ResourceNotFound) else exc.code
    err: dict[str, Any] = {"code": code, "message": exc.message}
    if exc.data is not None:
        err["data"] = exc.data
    return err
