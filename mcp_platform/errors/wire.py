"""The one place an exception becomes a wire error: `to_wire` (and the JSON-RPC error object it encodes)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

from mcp_platform.errors.tree import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MISSING_CLIENT_CAPABILITY,
    PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
    InternalError,
    McpPlatformError,
    MethodNotAllowed,
    ResourceNotFound,
)

logger = logging.getLogger("mcp_platform.errors")

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
