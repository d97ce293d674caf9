"""The error tree (classes in `tree.py`, the auth refusals in `auth.py`), and the one place exceptions become wire
errors (`wire.to_wire`). Import everything from here: `from mcp_platform.errors import Unauthorized`.

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

from mcp_platform.errors.auth import (
    AuthServiceForbidden,
    AuthServiceRefused,
    AuthServiceUnavailable,
    CredentialUnverifiable,
    InsufficientScope,
    Unauthorized,
)
from mcp_platform.errors.tree import (
    FORBIDDEN,
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MISSING_CLIENT_CAPABILITY,
    PARSE_ERROR,
    RESOURCE_NOT_FOUND,
    TOO_MANY_REQUESTS,
    UNAUTHORIZED,
    UNSUPPORTED_PROTOCOL_VERSION,
    BadRequest,
    ConfigError,
    Draining,
    HeaderMismatch,
    Headers,
    InternalError,
    InvalidParams,
    InvalidRequest,
    McpPlatformError,
    MethodNotAllowed,
    MethodNotFound,
    MisdirectedRequest,
    MissingClientCapability,
    NotAcceptable,
    OriginForbidden,
    ParseError,
    PayloadTooLarge,
    ProtocolError,
    RateLimited,
    RequestTimeout,
    ResourceNotFound,
    ServiceUnavailable,
    SessionNotFound,
    StoreUnavailable,
    StreamConflict,
    ToolError,
    ToolTimeout,
    UnknownEventId,
    UnsupportedProtocolVersion,
)
from mcp_platform.errors.wire import WireReply, error_object, modern_http_status, to_wire

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
    "Draining",
    "HeaderMismatch",
    "Headers",
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
