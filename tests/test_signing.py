"""The signing codec: what it issues round-trips, and anything else (garbage, truncated, bit-flipped, another kind,
key or binding, expired, huge, non-ASCII, padded) is refused with `InvalidToken` and never any other error."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from mcp_platform.errors import InvalidParams
from mcp_platform.pagination import decode_cursor, encode_cursor
from mcp_platform.signing import InvalidToken, SignedCodec

KEY = b"k" * 32
ALPHABET = string.ascii_letters + string.digits + "-_"
B64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
"""URL-safe base64 in value order."""


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _token(**kwargs: Any) -> str:
    return SignedCodec(KEY).encode("test", {"after": "b/c.txt", "n": 3}, **kwargs)


def _reason(codec: SignedCodec, token: object, kind: str = "test", **kwargs: Any) -> str:
    with pytest.raises(InvalidToken) as caught:
        codec.decode(token, kind, **kwargs)
    return caught.value.reason


@pytest.mark.parametrize("payload", [{}, {"a": 1}, {"path": "ünï/cödé ☃/𝄞.txt", "n": [1, 2.5, None, True]},
                                     {"nested": {"deep": [{"x": "y" * 500}]}}, {"q": "\x00\n\"'\\"}])
def test_payloads_round_trip(payload: dict[str, Any]) -> None:
    codec = SignedCodec(KEY)
    token = codec.encode("test", payload, bind=["list", "css", None, True])
    assert token.isascii() and token.count(".") == 1 and "=" not in token
    assert codec.decode(token, "test", bind=["list", "css", None, True]) == payload


def test_another_codec_with_the_same_key_accepts_the_token() -> None:
    """What makes cursors work across instances that share `secret_key`."""
    token = SignedCodec(KEY).encode("test", {"a": 1}, bind="q")
    assert SignedCodec(bytes(KEY)).decode(token, "test", bind="q") == {"a": 1}


@pytest.mark.parametrize("garbage", [
    "", ".", "..", "a.b.c", "abc.", ".abc", "abc", "not a token", "a b.c", "%41%42.%43", "a+b.c/d", "YQ==.YQ==",
    "é.é", "\x00.\x00", "ａ.ｂ", "a\u200b.b", "a.b\n", "\ta.b", "e30.e30", "eyJkIjp7fX0.AAAAAAAAAAAAAAAAAAAAAA",
])
def test_garbage_is_refused(garbage: str) -> None:
    assert _reason(SignedCodec(KEY), garbage) in {"malformed", "signature"}


@pytest.mark.parametrize("value", [None, 42, 1.5, True, b"abc.def", ["abc.def"], {"t": "abc.def"}])
def test_values_that_are_not_strings_are_refused(value: object) -> None:
    assert _reason(SignedCodec(KEY), value) == "malformed"


def test_every_truncation_is_refused() -> None:
    token, codec = _token(), SignedCodec(KEY)
    for end in range(len(token)):
        with pytest.raises(InvalidToken):
            codec.decode(token[:end], "test")
    for start in range(1, len(token)):
        with pytest.raises(InvalidToken):
            codec.decode(token[start:], "test")


def test_every_changed_character_is_refused() -> None:
    token, codec = _token(), SignedCodec(KEY)
    for index, char in enumerate(token):
        for other in ALPHABET + ".=+/":
            if other != char:
                with pytest.raises(InvalidToken):
                    codec.decode(token[:index] + other + token[index + 1:], "test")


def test_padding_and_spare_bit_spellings_are_refused() -> None:
    token, codec = _token(), SignedCodec(KEY)
    body, tag = token.split(".")
    # 16 tag bytes take 22 characters; the last carries 2 bits of the tag and 4 spare ones, so 15 other
    # characters spell the same bytes to a lenient decoder.
    spare = [c for c in B64 if c != tag[-1] and B64.index(c) >> 4 == B64.index(tag[-1]) >> 4]
    assert len(spare) == 15
    for variant in [f"{body}=.{tag}", f"{body}.{tag}=", f"{body}.{tag}==", f"{body}==.{tag}==", *(
            f"{body}.{tag[:-1]}{c}" for c in spare)]:
        assert _reason(codec, variant) == "malformed", variant


def test_a_token_of_another_kind_is_refused() -> None:
    codec = SignedCodec(KEY)
    token = codec.encode("list/tools", {"after": "x"})
    assert codec.decode(token, "list/tools") == {"after": "x"}
    for kind in ("list/prompts", "list/tool", "list/toolsx", "orm-cursor", "static-cursor", "request-state"):
        assert _reason(codec, token, kind) == "signature"


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = SignedCodec(b"z" * 32).encode("test", {"a": 1}, bind="other")
    # Signature first: a forger learns nothing about the binding.
    assert _reason(SignedCodec(KEY), token, bind="q") == "signature"


@pytest.mark.parametrize(("issued", "asked"), [
    ("q1", "q2"), ("q", None), (None, "q"), (["list", "a", None, True], ["list", "a", None, False]),
    ([1], [True]), ([1], [1.0]), ({"t": "tool:a", "p": "alice"}, {"p": "alice", "t": "tool:a"}), ("", None),
])
def test_a_token_bound_elsewhere_is_refused(issued: Any, asked: Any) -> None:
    codec = SignedCodec(KEY)
    assert _reason(codec, codec.encode("test", {"a": 1}, bind=issued), bind=asked) == "bound"


def test_a_tuple_binding_matches_its_list() -> None:
    codec = SignedCodec(KEY)
    assert codec.decode(codec.encode("test", {}, bind=("a", 1)), "test", bind=["a", 1]) == {}


def test_expired_tokens_are_refused() -> None:
    clock = Clock()
    codec = SignedCodec(KEY, clock=clock)
    token = codec.encode("test", {"a": 1}, expires_at=clock.now + 60)
    clock.now += 60
    assert codec.decode(token, "test") == {"a": 1}
    clock.now += 0.001
    assert _reason(codec, token) == "expired"


def test_huge_tokens_are_refused_before_decoding() -> None:
    codec = SignedCodec(KEY, max_chars=200)
    assert _reason(codec, "a" * 201) == "too_large"
    assert _reason(codec, "a" * 10_000_000) == "too_large"
    assert _reason(codec, "é" * 201) == "too_large"
    with pytest.raises(InvalidToken) as caught:
        codec.encode("test", {"x": "y" * 200})
    assert caught.value.reason == "too_large"
    assert codec.decode(codec.encode("test", {"x": "y" * 50}), "test") == {"x": "y" * 50}


def test_random_strings_are_refused_and_raise_nothing_else() -> None:
    rng = random.Random(10)
    codec = SignedCodec(KEY)
    pool = ALPHABET + ".=+/ \x00é☃\n"
    for _ in range(3000):
        value = "".join(rng.choice(pool) for _ in range(rng.randrange(0, 80)))
        with pytest.raises(InvalidToken):
            codec.decode(value, "test")


@pytest.mark.parametrize("key", [b"", b"short", b"x" * 15])
def test_short_keys_are_refused(key: bytes) -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        SignedCodec(key)


@pytest.mark.parametrize("kind", ["", "Tools", "a b", "a\x00b", "é", "x" * 65])
def test_kinds_are_plain_names(kind: str) -> None:
    codec = SignedCodec(KEY)
    with pytest.raises(ValueError, match="token kind"):
        codec.encode(kind, {})
    with pytest.raises(ValueError, match="token kind"):
        codec.decode(_token(), kind)


def test_list_cursors_resume_and_keep_to_their_list() -> None:
    cursor = encode_cursor("tools", {"after": "query_records"})
    assert decode_cursor(cursor, "tools") == {"after": "query_records"}
    for other in ("prompts", "resources", "templates"):
        with pytest.raises(InvalidParams, match="unknown cursor"):
            decode_cursor(cursor, other)
    for value in ("", None, 5, "x" * 2049):
        with pytest.raises(InvalidParams, match="cursor must be a cursor string"):
            decode_cursor(value, "tools")
    with pytest.raises(InvalidParams, match="unknown cursor"):
        decode_cursor(cursor[:-1] + ("A" if cursor[-1] != "A" else "B"), "tools")
