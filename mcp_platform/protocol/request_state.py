"""Signed `requestState` for 2026-07-28 input rounds.

The client carries the state between rounds, so it is attacker-controlled: it is HMAC-SHA256 signed with the
server's key, bound to the tool and the caller, and expires. Anything altered, foreign or stale is -32602.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from pydantic_core import from_json, to_json

from mcp_platform.errors import InvalidParams

__all__ = ["RequestStateCodec"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RequestStateCodec:
    def __init__(self, key: bytes, *, max_age: float = 3600.0, max_bytes: int = 32_768,
                 clock: Callable[[], float] = time.time) -> None:
        if len(key) < 32:
            raise ValueError("the request-state key must be at least 32 bytes")
        self._key = key
        self._max_age = max_age
        self._max_bytes = max_bytes
        self._clock = clock

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()

    def encode(self, *, target: str, principal: str, answers: dict[str, Any], state: dict[str, Any]) -> str:
        body = to_json({"t": target, "p": principal, "a": answers, "s": state, "iat": int(self._clock())})
        token = f"{_b64(body)}.{_b64(self._mac(body))}"
        if len(token) > self._max_bytes:
            raise InvalidParams(f"Invalid params: the answers so far exceed the {self._max_bytes}-byte request "
                                "state limit")
        return token

    def decode(self, token: Any, *, target: str, principal: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The (answers, state) inside `token`, verified for this target and caller."""
        refused = InvalidParams("Invalid params: requestState was altered, expired, or issued for another request")
        if not isinstance(token, str) or len(token) > self._max_bytes or token.count(".") != 1:
            raise refused
        body_text, mac_text = token.split(".")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (ValueError, binascii.Error):
            raise refused from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise refused
        payload = from_json(body)
        if (not isinstance(payload, dict) or payload.get("t") != target or payload.get("p") != principal
                or not isinstance(payload.get("iat"), int) or self._clock() - payload["iat"] > self._max_age):
            raise refused
        answers, state = payload.get("a"), payload.get("s")
        return (answers if isinstance(answers, dict) else {}), (state if isinstance(state, dict) else {})
