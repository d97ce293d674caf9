"""Handshake-era sessions in Redis, so any instance can serve any session.

Layout (prefix `mcpp:` by default):

- `{prefix}session:{id}`: the `SessionData` as JSON, expiring after `ttl_seconds` idle; `get` and `update`
  refresh the expiry, whichever instance serves them.
- `{prefix}sessions`: a sorted set of ids scored by last-seen time in milliseconds, for `count()` and the
  `max_sessions` cap. Members older than the TTL are pruned before counting.

Times come from the Redis server (`TIME`), never from an instance's clock, so instances agree on what expired;
pruning, counting and the create-with-cap run in Lua scripts, atomic across instances.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError

from mcp_platform.stores.base import SessionData, SessionsFull, new_session_id
from mcp_platform.stores.redis_client import DEFAULT_PREFIX, unavailable

__all__ = ["RedisSessionStore"]

logger = logging.getLogger(__name__)

# KEYS[1] is always the sorted set of ids; ARGV[1] the TTL in ms. Defines `now` (server ms) and drops members idle
# for the TTL or longer (the memory store's `now - seen >= ttl`), whose keys Redis has expired at the same moment.
_PRUNE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
"""

# KEYS[2] the new session's key; ARGV[2] the cap, ARGV[3] the id, ARGV[4] the JSON. 1 = created, 0 = full.
_CREATE = _PRUNE + """
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[2], ARGV[4], 'PX', ttl)
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""

# KEYS[2] the session's key; ARGV[2] the id; ARGV[3], when given, replaces the JSON (update) and is returned,
# else the stored JSON is returned (get). false when the session is unknown or expired.
_TOUCH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local value
if ARGV[3] then
  if not redis.call('SET', KEYS[2], ARGV[3], 'XX', 'PX', ttl) then value = false else value = ARGV[3] end
else
  value = redis.call('GET', KEYS[2])
  if value then redis.call('PEXPIRE', KEYS[2], ttl) end
end
if not value then
  redis.call('ZREM', KEYS[1], ARGV[2])
  return false
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return value
"""

_COUNT = _PRUNE + """
return redis.call('ZCARD', KEYS[1])
"""


class RedisSessionStore:
    """`SessionStore` over Redis: an idle TTL and a size cap shared by every instance using the same prefix."""

    def __init__(self, client: aioredis.Redis, *, ttl_seconds: float, max_sessions: int,
                 prefix: str = DEFAULT_PREFIX) -> None:
        self._client = client
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._max = max_sessions
        self._prefix = prefix
        self._ids = f"{prefix}sessions"
        self._create = client.register_script(_CREATE)
        self._touch = client.register_script(_TOUCH)
        self._count = client.register_script(_COUNT)

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}session:{session_id}"

    async def create(self, data: SessionData) -> str:
        session_id = new_session_id()
        with unavailable():
            created = await self._create(keys=[self._ids, self._key(session_id)],
                                         args=[self._ttl_ms, self._max, session_id, data.model_dump_json()])
        if not created:
            raise SessionsFull(f"the server holds its maximum of {self._max} sessions")
        return session_id

    async def get(self, session_id: str) -> SessionData | None:
        with unavailable():
            raw: Any = await self._touch(keys=[self._ids, self._key(session_id)], args=[self._ttl_ms, session_id])
        if raw is None:
            return None
        try:
            return SessionData.model_validate_json(raw)
        except ValidationError:
            # Written by an incompatible version: the client initializes a new session instead of failing forever.
            logger.warning("dropping session data that no longer validates")
            await self.delete(session_id)
            return None

    async def update(self, session_id: str, data: SessionData) -> None:
        with unavailable():
            await self._touch(keys=[self._ids, self._key(session_id)],
                              args=[self._ttl_ms, session_id, data.model_dump_json()])

    async def delete(self, session_id: str) -> bool:
        with unavailable():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(session_id))
                pipe.zrem(self._ids, session_id)
                deleted, _ = await pipe.execute()
        return bool(deleted)

    async def count(self) -> int:
        with unavailable():
            return int(await self._count(keys=[self._ids], args=[self._ttl_ms]))
