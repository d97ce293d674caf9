"""The Redis token layout: one key per token, named by the token's hash, holding who it is and what it may do.

    {prefix}{sha256 hex of the token}  ->  '{"name": "alice", "scopes": ["read", "write"], "expires_at": 1798761600}'

A string holding a JSON object: `name` (1-128 printable characters), `scopes` (a non-empty list of `read`, `write`,
`admin`), `expires_at` (Unix seconds, or null or absent for never). Other fields are ignored, so the platform may
keep more there. A hash with the same three fields is read too (`scopes` comma- or space-separated,
`expires_at` decimal seconds or empty). Anything else at the key (bad JSON, wrong types, an unknown scope, more
than `MAX_ENTRY_BYTES`, another Redis type) is a malformed entry: the token is refused with the reason.

`{prefix}names` is the CLI's index (a hash, token name -> token hash), so `list` and `revoke` need no SCAN. It can
never clash with a token's key, which is 64 hex digits after the prefix.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from mcp_platform.auth_types import SCOPES

__all__ = ["MAX_ENTRY_BYTES", "Entry", "EntryReader", "Malformed", "encode_entry", "index_key", "parse_hash_entry",
           "parse_json_entry", "token_key"]

MAX_ENTRY_BYTES = 65536
"""A larger value (or hash field) is malformed, and is refused without being transferred."""
_MAX_NAME = 128
_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,9})?")

# KEYS[1] the token's key; ARGV[1] the largest value fetched. One round trip, whatever the key holds, and a huge
# value never leaves Redis. Returns {'none'}, {'big'}, {'string', value}, {'hash', {name, scopes, expires_at}},
# or {'other', type}.
_READ = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return {'none'} end
local limit = tonumber(ARGV[1])
if kind == 'string' then
  if redis.call('STRLEN', KEYS[1]) > limit then return {'big'} end
  return {'string', redis.call('GET', KEYS[1])}
end
if kind == 'hash' then
  for _, field in ipairs({'name', 'scopes', 'expires_at'}) do
    if redis.call('HSTRLEN', KEYS[1], field) > limit then return {'big'} end
  end
  return {'hash', redis.call('HMGET', KEYS[1], 'name', 'scopes', 'expires_at')}
end
return {'other', kind}
"""


class Malformed(ValueError):
    """The key exists but does not hold a valid entry; the message says what is wrong (never the token)."""


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    scopes: tuple[str, ...]
    expires_at: float | None


def token_key(prefix: str, token_hash: str) -> str:
    return prefix + token_hash


def index_key(prefix: str) -> str:
    return prefix + "names"


def encode_entry(entry: Entry) -> str:
    expires = None if entry.expires_at is None else int(entry.expires_at)
    return json.dumps({"name": entry.name, "scopes": list(entry.scopes), "expires_at": expires},
                      separators=(",", ":"))


def parse_json_entry(raw: bytes) -> Entry:
    if len(raw) > MAX_ENTRY_BYTES:
        raise Malformed(f"the entry is larger than {MAX_ENTRY_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # bad UTF-8 or JSON, a 5000-digit number, or 10000 nested brackets
        raise Malformed("the entry is not valid JSON") from None
    if not isinstance(data, dict):
        raise Malformed("the entry is not a JSON object")
    scopes = data.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
        raise Malformed("'scopes' is not a list of strings")
    expires_at = data.get("expires_at")
    if expires_at is not None and (isinstance(expires_at, bool) or not isinstance(expires_at, int | float)):
        raise Malformed("'expires_at' is neither a number nor null")
    try:
        seconds = None if expires_at is None else float(expires_at)
    except OverflowError:
        raise Malformed("'expires_at' is not a finite number") from None
    return _entry(data.get("name"), scopes, seconds)


def parse_hash_entry(name: bytes | None, scopes: bytes | None, expires_at: bytes | None) -> Entry:
    try:
        name_text = name.decode() if name is not None else None
        scope_list = (scopes or b"").decode().replace(",", " ").split()
        expires_text = (expires_at or b"").decode().strip()
    except UnicodeDecodeError:
        raise Malformed("a field of the entry is not UTF-8") from None
    if expires_text and not _DECIMAL.fullmatch(expires_text):
        raise Malformed("'expires_at' is not a number of seconds")
    return _entry(name_text, scope_list, float(expires_text) if expires_text else None)


def _entry(name: Any, scopes: list[str], expires_at: float | None) -> Entry:
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME or not name.isprintable():
        raise Malformed(f"'name' is not 1-{_MAX_NAME} printable characters")
    if not scopes:
        raise Malformed("'scopes' is empty")
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown:
        raise Malformed(f"unknown scope {unknown[0][:40]!r}; valid scopes are {', '.join(SCOPES)}")
    if expires_at is not None and not math.isfinite(expires_at):
        raise Malformed("'expires_at' is not a finite number")
    return Entry(name, tuple(dict.fromkeys(scopes)), expires_at)


class EntryReader:
    """Reads a token's entry: None when the key is absent (not our token), else an `Entry`; `Malformed` when the
    key holds something else. Redis errors propagate as the driver raises them."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._prefix = prefix
        self._read = client.register_script(_READ)

    async def read(self, token_hash: str) -> Entry | None:
        reply: Any = await self._read(keys=[token_key(self._prefix, token_hash)], args=[MAX_ENTRY_BYTES])
        kind = reply[0]
        if kind == b"none":
            return None
        if kind == b"string":
            return parse_json_entry(reply[1])
        if kind == b"hash":
            return parse_hash_entry(*reply[1])
        if kind == b"big":
            raise Malformed(f"the entry is larger than {MAX_ENTRY_BYTES} bytes")
        raise Malformed(f"the key holds a Redis {bytes(reply[1]).decode(errors='replace')[:20]}, "
                        "not a string or a hash")
