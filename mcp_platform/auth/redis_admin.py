"""`mcp-platform token ... --store redis`: create, list and revoke tokens in the Redis layout the `redis` verifier
reads, plus a name index (`{prefix}names`: name -> token hash) so that list and revoke work by name, without SCAN.

A token created with an expiry gets a Redis expiry at the same moment, so Redis drops the key itself; its index
entry stays until it is revoked (listed as gone) or its name is used again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from mcp_platform.auth.bearer import check_new_token, generate_token, hash_token
from mcp_platform.auth.redis_entries import Entry, EntryReader, Malformed, encode_entry, index_key, token_key

__all__ = ["MAX_EXPIRES_IN", "RedisTokenInfo", "RedisTokenStore", "parse_duration"]

_DURATION = re.compile(r"([0-9]{1,10})([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_EXPIRES_IN = 10 * 365 * 86400
"""Ten years: a longer `--expires-in` is refused (leave it out for a token that never expires)."""


def parse_duration(text: str) -> int:
    """`90`, `90s`, `15m`, `12h` or `30d` as seconds (1 s to ten years); `ValueError` otherwise."""
    match = _DURATION.fullmatch(text.strip())
    seconds = int(match[1]) * _UNIT[match[2]] if match else 0
    if not 1 <= seconds <= MAX_EXPIRES_IN:
        raise ValueError("--expires-in takes a duration such as 3600, 90m, 12h or 30d (at most ten years)")
    return seconds


@dataclass(frozen=True, slots=True)
class RedisTokenInfo:
    name: str
    scopes: tuple[str, ...]
    expires_at: float | None
    state: str
    """`active`, `expired`, `gone` (the key is no longer there) or `malformed`."""


class RedisTokenStore:
    """Named tokens in Redis. Only the hash is stored; a token is shown once, when created. `wall` is Unix time."""

    def __init__(self, client: aioredis.Redis, prefix: str, wall: Callable[[], float] = time.time) -> None:
        self._client = client
        self._prefix = prefix
        self._index = index_key(prefix)
        self._reader = EntryReader(client, prefix)
        self._wall = wall

    async def create(self, name: str, scopes: list[str], expires_in: int | None = None) -> str:
        check_new_token(name, scopes)
        token = generate_token()
        token_hash = hash_token(token)
        if not await self._client.hsetnx(self._index, name, token_hash):
            held = await self._client.hget(self._index, name)
            if held is not None and await self._client.exists(token_key(self._prefix, _text(held))):
                raise ValueError(f"a token named {name!r} already exists; revoke it first")
            await self._client.hset(self._index, name, token_hash)  # its token expired or was deleted: reuse
        expires_at = None if expires_in is None else int(self._wall()) + expires_in
        entry = encode_entry(Entry(name, tuple(sorted(set(scopes))), expires_at))
        try:
            await self._client.set(token_key(self._prefix, token_hash), entry, exat=expires_at)
        except BaseException:
            await self._client.hdel(self._index, name)
            raise
        return token

    async def list(self) -> list[RedisTokenInfo]:
        indexed = await self._client.hgetall(self._index)
        found = []
        for raw_name, raw_hash in sorted(indexed.items()):
            name = _text(raw_name)
            try:
                entry = await self._reader.read(_text(raw_hash))
            except Malformed:
                found.append(RedisTokenInfo(name, (), None, "malformed"))
                continue
            if entry is None:
                found.append(RedisTokenInfo(name, (), None, "gone"))
                continue
            expired = entry.expires_at is not None and entry.expires_at <= self._wall()
            found.append(RedisTokenInfo(name, entry.scopes, entry.expires_at, "expired" if expired else "active"))
        return found

    async def revoke(self, name: str) -> bool:
        held = await self._client.hget(self._index, name)
        if held is None:
            return False
        await self._client.delete(token_key(self._prefix, _text(held)))
        await self._client.hdel(self._index, name)
        return True


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
