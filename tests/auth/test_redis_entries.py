"""The Redis token layout: what a valid entry is, and every way one can be malformed, read through real Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_platform.auth import hash_token
from mcp_platform.auth.redis_entries import (
    MAX_ENTRY_BYTES,
    Entry,
    EntryReader,
    Malformed,
    encode_entry,
    parse_hash_entry,
    parse_json_entry,
)
from tests.auth.redis_support import redis_tokens

pytestmark = pytest.mark.anyio


def test_a_json_entry_is_read_with_its_scopes_and_expiry() -> None:
    entry = parse_json_entry(b'{"name": "alice", "scopes": ["read", "write", "read"], "expires_at": 1767225600,'
                             b' "created_by": "billing"}')
    assert entry == Entry("alice", ("read", "write"), 1767225600.0)
    assert parse_json_entry(b'{"name": "ci", "scopes": ["admin"]}').expires_at is None
    assert parse_json_entry(b'{"name": "ci", "scopes": ["admin"], "expires_at": null}').expires_at is None
    assert parse_json_entry(b'{"name": "ci", "scopes": ["read"], "expires_at": 17.5}').expires_at == 17.5


def test_encoding_round_trips() -> None:
    entry = Entry("deploy", ("read", "write"), 1767225600.0)
    assert parse_json_entry(encode_entry(entry).encode()) == entry
    assert json.loads(encode_entry(Entry("x", ("read",), None))) == {"name": "x", "scopes": ["read"],
                                                                     "expires_at": None}


@pytest.mark.parametrize(("raw", "reason"), [
    (b"", "not valid JSON"),
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "larger than"),
    (b"[" * 30_000 + b"]" * 30_000, "not valid JSON"),
    (b'"alice"', "not a JSON object"),
    (b'["alice", ["read"]]', "not a JSON object"),
    (b'{"scopes": ["read"]}', "'name'"),
    (b'{"name": 7, "scopes": ["read"]}', "'name'"),
    (b'{"name": "", "scopes": ["read"]}', "'name'"),
    (b'{"name": "   ", "scopes": ["read"]}', "'name'"),
    (b'{"name": "a\\nb", "scopes": ["read"]}', "'name'"),
    (b'{"name": "' + b"x" * 129 + b'", "scopes": ["read"]}', "'name'"),
    (b'{"name": "a"}', "'scopes'"),
    (b'{"name": "a", "scopes": "read"}', "'scopes'"),
    (b'{"name": "a", "scopes": [1]}', "'scopes'"),
    (b'{"name": "a", "scopes": []}', "'scopes' is empty"),
    (b'{"name": "a", "scopes": ["root"]}', "unknown scope 'root'"),
    (b'{"name": "a", "scopes": ["READ"]}', "unknown scope"),
    (b'{"name": "a", "scopes": ["read"], "expires_at": "tomorrow"}', "'expires_at'"),
    (b'{"name": "a", "scopes": ["read"], "expires_at": true}', "'expires_at'"),
    (b'{"name": "a", "scopes": ["read"], "expires_at": [1]}', "'expires_at'"),
    (b'{"name": "a", "scopes": ["read"], "expires_at": 1e999}', "finite"),
    (b'{"name": "a", "scopes": ["read"], "expires_at": NaN}', "finite"),
    (b'{"name": "a", "scopes": ["read"], "expires_at": 1' + b"0" * 400 + b"}", "finite"),
    (b'{"name": "a", "scopes": ["read"], "expires_at": 1' + b"0" * 5000 + b"}", "not valid JSON"),
])
def test_malformed_json_entries_say_what_is_wrong(raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed, match=reason):
        parse_json_entry(raw)


def test_a_hash_entry_is_read_too() -> None:
    assert parse_hash_entry(b"alice", b"read, write", b"1767225600") == Entry("alice", ("read", "write"), 1767225600.0)
    assert parse_hash_entry(b"ci", b"admin", None) == Entry("ci", ("admin",), None)
    assert parse_hash_entry(b"ci", b"read write", b"") == Entry("ci", ("read", "write"), None)


@pytest.mark.parametrize(("fields", "reason"), [
    ((None, b"read", None), "'name'"),
    ((b"\xff", b"read", None), "UTF-8"),
    ((b"ci", None, None), "'scopes' is empty"),
    ((b"ci", b" , ", None), "'scopes' is empty"),
    ((b"ci", b"read,sudo", None), "unknown scope 'sudo'"),
    ((b"ci", b"read", b"soon"), "'expires_at'"),
    ((b"ci", b"read", b"-5"), "'expires_at'"),
    ((b"ci", b"read", b"inf"), "'expires_at'"),
    ((b"ci", b"read", b"9" * 400), "'expires_at'"),
    ((b"ci", b"read", "１２".encode()), "'expires_at'"),
])
def test_malformed_hash_entries_say_what_is_wrong(fields: tuple[bytes | None, ...], reason: str) -> None:
    with pytest.raises(Malformed, match=reason):
        parse_hash_entry(*fields)


async def test_the_reader_tells_absent_from_present_and_malformed_in_one_round_trip() -> None:
    async with redis_tokens() as tokens:
        reader = EntryReader(tokens.client, tokens.prefix)
        assert await reader.read(hash_token("never-stored")) is None
        token = await tokens.add("alice", ["read"], expires_at=None)
        assert await reader.read(hash_token(token)) == Entry("alice", ("read",), None)
        await tokens.client.hset(tokens.prefix + hash_token("as-hash"),
                                 mapping={"name": "bob", "scopes": "write", "expires_at": "1767225600"})
        assert await reader.read(hash_token("as-hash")) == Entry("bob", ("write",), 1767225600.0)

        cases: dict[str, Any] = {"empty": b"", "huge": b"{" + b" " * MAX_ENTRY_BYTES + b"}"}
        for label, value in cases.items():
            await tokens.client.set(tokens.prefix + hash_token(label), value)
        await tokens.client.hset(tokens.prefix + hash_token("huge-hash"),
                                 mapping={"name": "x" * (MAX_ENTRY_BYTES + 1), "scopes": "read"})
        await tokens.client.rpush(tokens.prefix + hash_token("a-list"), "alice")
        with pytest.raises(Malformed, match="not valid JSON"):
            await reader.read(hash_token("empty"))
        for label in ("huge", "huge-hash"):
            with pytest.raises(Malformed, match="larger than"):
                await reader.read(hash_token(label))
        with pytest.raises(Malformed, match="Redis list, not a string or a hash"):
            await reader.read(hash_token("a-list"))
