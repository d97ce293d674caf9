"""Signed `requestState` for 2026-07-28 input rounds.

The client carries the state between rounds, so it is attacker-controlled: it is signed with the server's key
(`signing.SignedCodec`), bound to the tool and the caller, and expires. Anything altered, foreign or stale is -32602.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mcp_platform.errors import InvalidParams
from mcp_platform.signing import InvalidToken, SignedCodec

__all__ = ["RequestStateCodec"]

_KIND = "request-state"


class RequestStateCodec:
    def __init__(self, key: bytes, *, max_age: float = 3600.0, max_bytes: int = 32_768,
                 clock: Callable[[], float] = time.time) -> None:
        if len(key) < 32:
            raise ValueError("the request-state key must be at least 32 bytes")
        self._codec = SignedCodec(key, max_chars=max_bytes, clock=clock)
        self._max_age = max_age
        self._max_bytes = max_bytes
        self._clock = clock

    def encode(self, *, target: str, principal: str, answers: dict[str, Any], state: dict[str, Any]) -> str:
        try:
            # Whole seconds from issue, as before: a round is valid for max_age after the second it was issued in.
            return self._codec.encode(_KIND, {"a": answers, "s": state}, bind=[target, principal],
                                      expires_at=int(self._clock()) + self._max_age)
        except InvalidToken:
            raise InvalidParams(f"Invalid params: the answers so far exceed the {self._max_bytes}-byte request "
                                "state limit") from None

    def decode(self, token: Any, *, target: str, principal: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The (answers, state) inside `token`, verified for this target and caller."""
        try:
            payload = self._codec.decode(token, _KIND, bind=[target, principal])
        except InvalidToken:
            raise InvalidParams("Invalid params: requestState was altered, expired, or issued for another "
                                "request") from None
        answers, state = payload.get("a"), payload.get("s")
        return (answers if isinstance(answers, dict) else {}), (state if isinstance(state, dict) else {})
