"""The error tree, and the one place exceptions become wire errors (`to_wire`).

    McpPlatformError                 `code`: JSON-RPC code on the wire; `http_status`: None means the era decides
    ├── ProtocolError                a JSON-RPC error object (message, data)
    │   ├── ParseError                   -32700  body is not JSON
    │   ├── InvalidRequest               -32600  JSON, but not one valid JSON-RPC message
    │   │   ├── BadRequest                   400  missing Mcp-Session-Id, Content-Type, Content-Length, version, batch
    │   │   ├── OriginForbidden              403  Origin not on the allow-list
    │   │   ├── UnknownEventId               404  Last-Event-ID this session never saw
    │   │   ├── NotAcceptable                406  Accept lacks a media type the reply may use
    │   │   ├── RequestTimeout               408  body not in within `http.body_timeout_seconds`; closes
    │   │   ├── StreamConflict               409  a second GET stream for one session
    │   │   ├── PayloadTooLarge              413  body over `http.max_body_bytes`
    │   │   └── MisdirectedRequest           421  Host not on the allow-list
    │   ├── MethodNotFound               -32601  unknown, or removed in this protocol version
    │   ├── InvalidParams                -32602  params of the wrong shape, unknown tool, bad cursor
    │   ├── ResourceNotFound             -32002 (handshake era) / -32602 (2026-07-28), with `data.uri`
    │   ├── InternalError                -32603  a bug on our side; never carries the traceback
    │   ├── Unauthorized                 -32001  401, `WWW-Authenticate: Bearer` challenge
    │   │   └── AuthServiceRefused           the forward-auth service's 401 (it refuses whatever it does not know)
    │   ├── SessionNotFound              -32001  404, unknown, expired or another token's session
    │   ├── HeaderMismatch               -32020  Mcp-* routing headers disagree with the body
    │   ├── MissingClientCapability      -32021
    │   └── UnsupportedProtocolVersion   -32022  with `data.supported` and `data.requested`
    ├── InsufficientScope            -32003  403 `insufficient_scope` challenge, `data.requiredScope`
    ├── AuthServiceForbidden         -32003  403, the forward-auth service refused the caller (no challenge)
    ├── RateLimited                  -32029  429 with `Retry-After` and `data.retryAfter`
    ├── ServiceUnavailable           -32603  503 with `Retry-After` (e.g. the session store is full)
    │   ├── StoreUnavailable             a backing service (Redis, PostgreSQL) is unreachable, named
    │   │   └── CredentialUnverifiable   a verifier's own credential cannot be checked now (its JWKS is down)
    │   └── AuthServiceUnavailable       the forward-auth service cannot decide (down, slow, 5xx, misconfigured)
    ├── MethodNotAllowed             405 with `Allow` and no body (not a JSON-RPC error)
    ├── ToolError                    a tool failed in a way the model can correct: `isError: true` result
    ├── ToolTimeout                  a tool ran past its timeout: `isError: true` result naming the limit
    └── ConfigError                  settings or a tool module are invalid; raised at start or on reload

Tools raise `ToolError`; any other exception escaping a tool is logged with its traceback and reported to the
client as a short `isError` result that names the tool but not the internals. Any exception that reaches
`to_wire` without a code is a bug: it is logged and sent as a bare internal error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic_core import to_json

__all__ = [
    "FORBIDDEN",
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "MISSING_CLIENT_CAPABILITY",
    "PARSE_ERROR",
    "RESOURCE_NOT_FOUND",
    "TOO_MANY_REQUESTS",
    "UNAUTHORIZED",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "AuthServiceForbidden",
    "AuthServiceRefused",
    "AuthServiceUnavailable",
    "BadRequest",
    "ConfigError",
    "CredentialUnverifiable",
    "HeaderMismatch",
    "InsufficientScope",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "McpPlatformError",
    "MethodNotAllowed",
    "MethodNotFound",
    "MisdirectedRequest",
    "MissingClientCapability",
    "NotAcceptable",
    "OriginForbidden",
    "ParseError",
    "PayloadTooLarge",
    "ProtocolError",
    "RateLimited",
    "RequestTimeout",
    "ResourceNotFound",
    "ServiceUnavailable",
    "SessionNotFound",
    "StoreUnavailable",
    "StreamConflict",
    "ToolError",
    "ToolTimeout",
    "Unauthorized",
    "UnknownEventId",
    "UnsupportedProtocolVersion",
    "WireReply",
    "error_object",
    "modern_http_status",
    "to_wire",
]

logger = logging.getLogger(__name__)

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


class Unauthorized(ProtocolError):
    """No valid bearer token. RFC 6750: the challenge names no error when no credentials were sent at all.

    A verifier that knows the credential and rejects it says why in `description` (expired, wrong audience...).
    The endpoint adds what the client should do next (`challenged`): the RFC 9728 metadata URL and the scopes to
    ask for, when OAuth is on."""

    code = UNAUTHORIZED
    http_status = 401

    def __init__(self, *, credentials_sent: bool, description: str = "The token is unknown, revoked or malformed",
                 resource_metadata: str | None = None, scope: str | None = None) -> None:
        super().__init__("Unauthorized: a valid bearer token is required")
        self.credentials_sent = credentials_sent
        self.description = description
        self.resource_metadata = resource_metadata
        self.scope = scope

    def challenged(self, *, credentials_sent: bool, resource_metadata: str | None,
                   scope: str | None) -> Unauthorized:
        return Unauthorized(credentials_sent=credentials_sent, description=self.description,
                            resource_metadata=resource_metadata, scope=scope)

    def wire_headers(self) -> Headers:
        challenge = 'Bearer realm="mcp-platform"'
        if self.resource_metadata is not None:
            challenge += f', resource_metadata="{self.resource_metadata}"'
        if self.scope:
            challenge += f', scope="{self.scope}"'
        if self.credentials_sent:
            challenge += f', error="invalid_token", error_description="{_quotable(self.description)}"'
        return [(b"www-authenticate", challenge.encode())]


class AuthServiceRefused(Unauthorized):
    """The forward-auth service's 401. It refuses every credential it does not accept, so unlike a verifier
    rejecting a token of its own, it does not show the token was no earlier verifier's: after an earlier verifier's
    outage, the chain answers with that outage (503) rather than this 401."""


def _quotable(text: str) -> str:
    """Text safe inside an RFC 7235 quoted-string and an HTTP header: printable ASCII, no quote or backslash."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)[:200]


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


class InsufficientScope(McpPlatformError):
    """The principal lacks a scope. `ask_for` is the scope's name at the identity provider (OAuth: what a client
    requests when it steps up); `resource_metadata` the RFC 9728 document, when OAuth is on."""

    code = FORBIDDEN
    http_status = 403

    def __init__(self, scope: str, what: str, *, ask_for: str | None = None,
                 resource_metadata: str | None = None) -> None:
        super().__init__(f"{what} needs the {scope!r} scope")
        self.scope = scope
        self.ask_for = ask_for or scope
        self.resource_metadata = resource_metadata

    @property
    def wire_message(self) -> str:
        return f"Forbidden: {self}"

    @property
    def wire_data(self) -> Any:
        return {"requiredScope": self.scope}

    def wire_headers(self) -> Headers:
        challenge = f'Bearer error="insufficient_scope", scope="{_quotable(self.ask_for)}"'
        if self.resource_metadata is not None:
            challenge += f', resource_metadata="{self.resource_metadata}"'
        challenge += f', error_description="{_quotable(str(self))}"'
        return [(b"www-authenticate", challenge.encode())]


class AuthServiceForbidden(McpPlatformError):
    """The forward-auth service knew the caller and forbade the request (its 403). Not `insufficient_scope`: no
    scope would help, so there is no challenge a client could step up with."""

    code = FORBIDDEN
    http_status = 403

    def __init__(self, message: str = "the auth service forbids this caller") -> None:
        super().__init__(message)

    @property
    def wire_message(self) -> str:
        return f"Forbidden: {self}"


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


class CredentialUnverifiable(StoreUnavailable):
    """A verifier knows the credential is its own (a JWT) but cannot check it now: the chain stops here with 503,
    and the credential goes to no other verifier (a JWT is never handed to a forward-auth service)."""


class AuthServiceUnavailable(ServiceUnavailable):
    """The forward-auth service gave no decision: unreachable, too slow, a 5xx, a redirect, or an answer it should
    not give (an admit without a principal). The message names the service (scheme, host, port and path only) and
    what went wrong; the request is refused, never allowed."""

    retry_after = 2.0

    def __init__(self, service: str, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"the auth service {service} {detail}", retry_after=retry_after)
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
_MODERN_STATUS: dict[int, int] = {PARSE_ERROR: 400, INVALID_REQUEST: 400, INVALID_PARAMS: 400, HEADER_MISMATCH: 400,
                                  MISSING_CLIENT_CAPABILITY: 400, UNSUPPORTED_PROTOCOL_VERSION: 400,
                                  METHOD_NOT_FOUND: 404}


def modern_http_status(code: int) -> int:
    return _MODERN_STATUS.get(code, 200)


def error_object(exc: McpPlatformError, *, modern: bool) -> dict[str, Any]:
    """The JSON-RPC `error` member for `exc` in the given era."""
    code = exc.modern_code if modern and isinstance(exc, ResourceNotFound) else exc.code
    err: dict[str, Any] = {"code": INTERNAL_ERROR if code is None else code, "message": exc.wire_message}
    if (data := exc.wire_data) is not None:
        err["data"] = data
    return err


@dataclass(frozen=True, slots=True)
class WireReply:
    """What goes out for one request: HTTP status (stdio ignores it), the encoded JSON-RPC reply (empty for
    none), and headers such as `Retry-After` or `WWW-Authenticate`."""

    status: int
    body: bytes
    headers: Sequence[tuple[bytes, bytes]] = ()


def to_wire(exc: BaseException, *, modern: bool, msg_id: str | int | None = None,
            dispatched: bool = False) -> WireReply:
    """Any exception as the wire error for the era. `msg_id` is echoed when known (2026-07-28 requires it).

    The HTTP status is the error's own when it has one. Otherwise, at 2026-07-28 the code decides (the spec's
    table); in the handshake era a message that could not be taken as a JSON-RPC request is a 400, and an error
    a method returned (`dispatched`) travels in a 200, as JSON-RPC over HTTP always has.
    """
    if isinstance(exc, MethodNotAllowed):
        return WireReply(405, b"", exc.wire_headers())
    if not isinstance(exc, McpPlatformError) or exc.code is None:
        logger.error("unexpected error answering a request", exc_info=exc)
        # A JSON-RPC error in a 200, as for any other -32603: the client reads a reply, never an HTTP 500 page.
        return WireReply(200, _encode(msg_id, InternalError("Internal error; see the server log"), modern))
    status = exc.http_status
    if status is None:
        # The class's code, not the era's: a modern ResourceNotFound (-32602 on the wire) has always been a 200.
        status = modern_http_status(exc.code) if modern else 200 if dispatched else 400
    return WireReply(status, _encode(msg_id, exc, modern), exc.wire_headers())


def _encode(msg_id: str | int | None, exc: McpPlatformError, modern: bool) -> bytes:
    return to_json({"jsonrpc": "2.0", "id": msg_id, "error": error_object(exc, modern=modern)})
