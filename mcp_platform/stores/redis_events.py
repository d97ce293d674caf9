"""Resumable SSE streams in Redis Streams, so a client can resume on any instance.

Layout (prefix `mcpp:` by default):

- `{prefix}events:{session}:{stream}`: one Redis stream per response stream. Event `seq` (from 1) is entry
  `{seq}-1` with field `d` holding the message bytes (empty for the priming marker); the finish marker is entry
  `{last seq}-2` with field `end`, so it takes no sequence number. Trimmed to about `max_events` entries; expires
  `keep_seconds` after the last append, and again `keep_seconds` after the finish.
- `{prefix}streams:{session}`: the session's stream ids, for `forget_session` (no SCAN over the keyspace).

Event ids are `{stream}:{seq}`, as in the memory store (`parse_event_id`). Session ids never contain `:`
(URL-safe base64), so a key names exactly one (session, stream) pair.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from mcp_platform.stores.base import parse_event_id
from mcp_platform.stores.redis_client import DEFAULT_PREFIX, unavailable

__all__ = ["RedisEventStore"]

# The next sequence number follows the newest entry's (an event's `{seq}-1` or a marker's `{seq}-2`): approximate
# trimming always keeps the newest entry. The session's set lives as long as its longest-lived stream (GT).
# KEYS: stream, session's set; ARGV: stream id, data, max events, keep ms. Returns the sequence number.
_APPEND = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local seq = 1
if last then seq = tonumber(string.match(last[1], '^(%d+)')) + 1 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], string.format('%d-1', seq), 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('PEXPIRE', KEYS[2], ARGV[4], 'GT') == 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4], 'NX') end
return seq
"""

# KEYS: stream, session's set; ARGV: keep ms. Unknown or already finished streams are left alone.
_FINISH = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if not last or string.sub(last[1], -2) == '-2' then return 0 end
redis.call('XADD', KEYS[1], string.match(last[1], '^(%d+)') .. '-2', 'end', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1], 'GT')
return 1
"""

_BATCH = 100


def _position(entry_id: bytes) -> tuple[int, int]:
    seq, _, sub = entry_id.partition(b"-")
    return int(seq), int(sub)


class RedisEventStore:
    """`EventStore` over Redis Streams; `follow` waits for new events with blocking reads of `block_ms` per round,
    so a follower on one instance sees what another instance appends."""

    def __init__(self, client: aioredis.Redis, *, max_events: int = 1000, keep_seconds: float = 300.0,
                 prefix: str = DEFAULT_PREFIX, block_ms: int = 1000) -> None:
        self._client = client
        self._max_events = max_events
        self._keep_ms = max(1, round(keep_seconds * 1000))
        self._prefix = prefix
        self._block_ms = block_ms
        self._append = client.register_script(_APPEND)
        self._finish = client.register_script(_FINISH)

    def _key(self, session_id: str, stream_id: str) -> str:
        return f"{self._prefix}events:{session_id}:{stream_id}"

    def _set_key(self, session_id: str) -> str:
        return f"{self._prefix}streams:{session_id}"

    async def append(self, session_id: str, stream_id: str, data: bytes) -> str:
        with unavailable():
            seq = await self._append(keys=[self._key(session_id, stream_id), self._set_key(session_id)],
                                     args=[stream_id, data, self._max_events, self._keep_ms])
        return f"{stream_id}:{int(seq)}"

    async def finish(self, session_id: str, stream_id: str) -> None:
        with unavailable():
            await self._finish(keys=[self._key(session_id, stream_id), self._set_key(session_id)],
                               args=[self._keep_ms])

    async def follow(self, session_id: str, last_event_id: str) -> AsyncIterator[tuple[str, bytes]]:
        parsed = parse_event_id(last_event_id)
        key = self._key(session_id, parsed[0]) if parsed else ""
        with unavailable():
            known = parsed is not None and await self._client.exists(key) > 0
        if parsed is None or not known:
            raise LookupError(f"unknown event id {last_event_id[:80]!r}")
        stream_id, after = parsed
        # XREAD returns what is stored after the cursor, or blocks for new entries; the first round only looks.
        cursor = (after, 1)
        block: int | None = None
        while True:
            with unavailable():
                reply: Any = await self._client.xread({key: f"{cursor[0]}-{cursor[1]}"}, count=_BATCH, block=block)
                newest: Any = [] if reply else await self._client.xrevrange(key, count=1)
            if not reply:
                # Forgotten or expired: nothing more can come. Finished at or before the cursor: all was sent.
                if not newest or (newest[0][0].endswith(b"-2") and _position(newest[0][0]) <= cursor):
                    return
                block = self._block_ms
                continue
            for _key, entries in reply:
                for entry_id, fields in entries:
                    cursor = _position(entry_id)
                    if b"end" in fields:
                        return
                    yield f"{stream_id}:{cursor[0]}", fields[b"d"]

    async def exists(self, session_id: str, event_id: str) -> bool:
        parsed = parse_event_id(event_id)
        if parsed is None:
            return False
        with unavailable():
            return bool(await self._client.exists(self._key(session_id, parsed[0])))

    async def forget_session(self, session_id: str) -> None:
        set_key = self._set_key(session_id)
        with unavailable():
            members = await self._client.smembers(set_key)
            keys = [self._key(session_id, m.decode() if isinstance(m, bytes) else m) for m in members]
            await self._client.delete(set_key, *keys)
