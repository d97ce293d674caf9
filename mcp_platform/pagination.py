"""Opaque list cursors (tools/list, prompts/list, resources/list, resources/templates/list), tagged with the list
they belong to, so a cursor from one list is refused by another.

They hold positions (the last name returned, an offset), which anyone may ask for, so forging one gains nothing:
they are signed with a fixed public key rather than the server's secret, and so work on every instance whether or
not `secret_key` is set. The tag still refuses altered, truncated and other lists' cursors in one place.
"""

from __future__ import annotations

import hashlib
from typing import Any

from mcp_platform.errors import InvalidParams
from mcp_platform.signing import InvalidToken, SignedCodec

__all__ = ["decode_cursor", "encode_cursor"]

_MAX_CURSOR = 2048
_CODEC = SignedCodec(hashlib.sha256(b"mcp-platform/list-cursors (public)").digest(), max_chars=_MAX_CURSOR)


def encode_cursor(kind: str, state: dict[str, Any]) -> str:
    return _CODEC.encode(f"list/{kind}", state)


def decode_cursor(cursor: Any, kind: str) -> dict[str, Any]:
    """The state inside `cursor`, or -32602 for anything this server did not issue for this list."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_CURSOR:
        raise InvalidParams("Invalid params: cursor must be a cursor string returned by this list")
    try:
        return _CODEC.decode(cursor, f"list/{kind}")
    except InvalidToken:
        raise InvalidParams("Invalid params: unknown cursor") from None
