"""One codec for every opaque token the server hands out and takes back: list cursors, ORM and static-file cursors,
2026-07-28 `requestState`.

    codec = SignedCodec(key)
    token = codec.encode("orm-cursor", {"k": [3, "Oslo"]}, bind=fingerprint)
    codec.decode(token, "orm-cursor", bind=fingerprint)          # -> {"k": [3, "Oslo"]}, or InvalidToken

A token is `base64url(body) "." base64url(tag)`, unpadded. The body is compact JSON: the payload, and when given
what the token is bound to (`bind`: a query, a caller...) and when it expires. The tag is HMAC-SHA256, cut to 128
bits, over a fixed prefix, the token's `kind` and the body: a token of one kind never passes as another, even under
the same key. Decoding checks, in this order and before parsing any JSON: type, size, alphabet and canonical
base64 (so padding or spare-bit games cannot make two spellings of one token), the tag in constant time; then
expiry and binding. Every refusal is one exception, `InvalidToken`, whose `reason` lets a caller word its error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic_core import from_json, to_json

__all__ = ["MIN_KEY_BYTES", "InvalidToken", "Reason", "SignedCodec"]

MIN_KEY_BYTES = 16
TAG_BYTES = 16
"""128 bits: forging a tag takes about 2**128 guesses, and cursors stay short enough to nest in one another."""

Reason = Literal["malformed", "too_large", "signature", "expired", "bound"]

_DOMAIN = b"mcp-platform/signed/v1\x00"
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_KIND = re.compile(r"[a-z0-9][a-z0-9:/._-]{0,63}")


class InvalidToken(ValueError):
    """A token this codec did not issue for this kind, or no longer accepts.

    `reason`: `malformed` (not a token at all), `too_large`, `signature` (forged, altered, another key or another
    kind), `expired`, or `bound` (genuine, but issued for another query or caller)."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # non-canonical: spare bits set, or a length no encoder produces
        raise ValueError("non-canonical base64")
    return data


def _check_kind(kind: str) -> bytes:
    if not _KIND.fullmatch(kind):
        raise ValueError(f"token kind {kind!r} must be 1-64 of a-z 0-9 : / . _ -")
    return kind.encode("ascii")


class SignedCodec:
    """Signs and verifies tokens with one key. `max_chars` bounds what `decode` reads and `encode` issues; `clock`
    (seconds, the same scale as `expires_at`) decides expiry."""

    def __init__(self, key: bytes, *, max_chars: int = 16_384, clock: Callable[[], float] = time.time) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a signing key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self.max_chars = max_chars
        self._clock = clock

    def _tag(self, kind: bytes, body: bytes) -> bytes:
        return hmac.new(self._key, _DOMAIN + kind + b"\x00" + body, hashlib.sha256).digest()[:TAG_BYTES]

    def encode(self, kind: str, payload: dict[str, Any], *, expires_at: float | None = None,
               bind: Any = None) -> str:
        """A token carrying `payload` (JSON-able). `bind` (JSON-able) must be given again, equal, to decode it;
        after `expires_at` it is refused. `InvalidToken("too_large")` when the token would exceed `max_chars`."""
        kind_bytes = _check_kind(kind)
        body_fields: dict[str, Any] = {"d": payload}
        if bind is not None:
            body_fields["b"] = bind
        if expires_at is not None:
            body_fields["e"] = expires_at
        body = to_json(body_fields)
        token = f"{_b64(body)}.{_b64(self._tag(kind_bytes, body))}"
        if len(token) > self.max_chars:
            raise InvalidToken("too_large")
        return token

    def decode(self, token: object, kind: str, *, bind: Any = None) -> dict[str, Any]:
        """The payload of `token`, verified for `kind` and `bind`; `InvalidToken` for anything else."""
        kind_bytes = _check_kind(kind)
        if not isinstance(token, str):
            raise InvalidToken("malformed")
        if len(token) > self.max_chars:
            raise InvalidToken("too_large")
        if not _TOKEN.fullmatch(token):
            raise InvalidToken("malformed")
        body_text, tag_text = token.split(".")
        try:
            body, tag = _unb64(body_text), _unb64(tag_text)
        except (ValueError, binascii.Error):
            raise InvalidToken("malformed") from None
        if len(tag) != TAG_BYTES or not hmac.compare_digest(tag, self._tag(kind_bytes, body)):
            raise InvalidToken("signature")
        try:
            fields = from_json(body)
        except ValueError:  # only a holder of the key could have signed this
            raise InvalidToken("malformed") from None
        if not isinstance(fields, dict) or not isinstance(fields.get("d"), dict):
            raise InvalidToken("malformed")
        expires_at = fields.get("e")
        if expires_at is not None:
            if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
                raise InvalidToken("malformed")
            if self._clock() > expires_at:
                raise InvalidToken("expired")
        # Compared as JSON text: a tuple bound at encode matches the list it became, but 1 never matches true.
        if to_json(fields.get("b")) != to_json(bind):
            raise InvalidToken("bound")
        payload: dict[str, Any] = fields["d"]
        return payload
