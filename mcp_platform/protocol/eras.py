"""The two protocol eras: which one a request belongs to, and the rules each imposes before dispatch.

Handshake era (2024-11-05 .. 2025-11-25): `initialize` negotiates a version and opens a session.
Modern era (2026-07-28): every POST carries its own `_meta` envelope, mirrored in `MCP-Protocol-Version`,
`Mcp-Method` and `Mcp-Name` headers; there are no sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_types import LOG_LEVEL_META_KEY, PROTOCOL_VERSION_META_KEY
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from mcp_platform.errors import (
    HEADER_MISMATCH,
    UNSUPPORTED_PROTOCOL_VERSION,
    HeaderMismatch,
    InvalidParams,
    ProtocolError,
    UnsupportedProtocolVersion,
)
from mcp_platform.protocol.sdk_inbound import (
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
)

__all__ = [
    "HANDSHAKE_VERSIONS",
    "MODERN_METHODS_REMOVED",
    "MODERN_VERSIONS",
    "ModernEnvelope",
    "check_mcp_param_headers",
    "check_modern_request",
    "is_modern",
    "negotiate_version",
]

HANDSHAKE_VERSIONS: tuple[str, ...] = tuple(HANDSHAKE_PROTOCOL_VERSIONS)
MODERN_VERSIONS: tuple[str, ...] = tuple(MODERN_PROTOCOL_VERSIONS)
LATEST_HANDSHAKE = HANDSHAKE_VERSIONS[-1]

# Methods that exist only in the handshake era; at 2026-07-28 they are unknown methods (404, -32601).
MODERN_METHODS_REMOVED = frozenset({
    "initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe",
    "notifications/initialized", "notifications/cancelled", "notifications/roots/list_changed",
})


def negotiate_version(requested: Any) -> str:
    """Echo the client's version when we speak it, else offer our latest handshake version."""
    if isinstance(requested, str) and requested in HANDSHAKE_VERSIONS:
        return requested
    return LATEST_HANDSHAKE


def is_modern(version_header: str | None, message: Mapping[str, Any]) -> bool:
    """Which era a non-initialize message belongs to: the header decides; without it, a modern `_meta` does."""
    if version_header is not None:
        return version_header not in HANDSHAKE_VERSIONS
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta


@dataclass(frozen=True, slots=True)
class ModernEnvelope:
    protocol_version: str
    client_info: Any
    client_capabilities: dict[str, Any]
    log_level: str | None


def _as_error(rejection: InboundLadderRejection) -> ProtocolError:
    kinds: dict[int, type[ProtocolError]] = {
        HEADER_MISMATCH: HeaderMismatch,
        UNSUPPORTED_PROTOCOL_VERSION: UnsupportedProtocolVersion,
    }
    return kinds.get(rejection.code, InvalidParams)(rejection.message, rejection.data)


def check_modern_request(
    message: Mapping[str, Any], headers: Mapping[str, str] | None, raw_headers: Iterable[tuple[str, str]] = ()
) -> ModernEnvelope:
    """Run the 2026-07-28 ladder: envelope keys (InvalidParams), routing headers (HeaderMismatch), version
    (UnsupportedProtocolVersion). Without headers (stdio) the header rung is skipped."""
    duplicated = find_duplicated_routing_header(raw_headers)
    if duplicated is not None:
        raise HeaderMismatch(f"{duplicated} header appears more than once")
    verdict = classify_inbound_request(message, headers=headers, supported_modern_versions=MODERN_VERSIONS)
    if isinstance(verdict, InboundLadderRejection):
        raise _as_error(verdict)
    capabilities = verdict.client_capabilities
    if not isinstance(capabilities, dict):
        raise InvalidParams("Invalid params: io.modelcontextprotocol/clientCapabilities must be an object")
    meta = message["params"]["_meta"]
    level = meta.get(LOG_LEVEL_META_KEY)
    return ModernEnvelope(verdict.protocol_version, verdict.client_info, capabilities,
                          level if isinstance(level, str) else None)


def check_mcp_param_headers(input_schema: dict[str, Any], arguments: Mapping[str, Any],
                            headers: Mapping[str, str]) -> None:
    """`x-mcp-header` arguments must be mirrored exactly in `Mcp-Param-*` headers (SEP-2243)."""
    rejection = validate_mcp_param_headers(input_schema, arguments, headers)
    if rejection is not None:
        raise _as_error(rejection)
