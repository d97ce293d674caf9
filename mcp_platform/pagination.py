"""Opaque list cursors (tools/list, prompts/list, resources/list): base64url JSON tagged with the list they belong
to, so a cursor from one list is refused by another. They hold positions, not secrets, so they are not signed."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic_core import from_json, to_json

from mcp_platform.errors import InvalidParams

__all__ = ["decode_cursor", "encode_cursor"]

_MAX_CURSOR = 2048


def encode_cursor(kind: str, state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(to_json({"k": kind, **state})).decode().rstrip("=")


def decode_cursor(cursor: Any, kind: str) -> dict[str, Any]:
    """The state inside `cursor`, or -32602 for anything this server did not issue for this list."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_CURSOR:
        raise InvalidParams("Invalid params: cursor must be a cursor string returned by this list")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = from_json(raw)
    except (ValueError, binascii.Error):
        raise InvalidParams("Invalid params: unknown cursor") from None
    if not isinstance(state, dict) or state.get("k") != kind:
        raise InvalidParams("Invalid params: unknown cursor")
    return state
