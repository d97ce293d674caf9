"""Handshake-era sessions in Redis, so any instance can serve any session.

Layout (prefix `mcpp:` by default):

- `{prefix}session:{id}`: the `SessionData` as JSON, expiring after `ttl_seconds` idle; `get` and `update`
  refresh the expiry, whichever instance serves them.
- `{prefix}sessions`: a sorted set of ids scored by last-seen time in milliseconds, for `count()` and the
  `max_sessions` cap. Members older than the TTL are pruned (with their entries below) before anything else.
- `{prefix}session-owners` (hash id -> principal), `{prefix}session-counts` (hash principal -> sessions held) and
  `{prefix}principal-sessions:{principal}` (a principal's ids, scored by `{prefix}session-uses`, a counter bumped
  on every use, so the least recently used is first even within one millisecond): the per-principal quota and
  the choice of whom to evict at the cap.

Times come from the Redis server (`TIME`), never from an instance's clock, so instances agree on what expired;
every operation is one Lua script, atomic across instances. The scripts name the per-principal and session keys
from the prefix, which a single Redis (not Redis Cluster) allows.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError

from mcp_platform.stores.base import SessionData, SessionsFull, new_session_id
from mcp_platform.stores.redis_client import DEFAULT_PREFIX, unavailable

__all__ = ["RedisSessionStore"]

logger = logging.getLogger(__name__)

# Every script gets the same keys: KEYS[1] the ids by last-seen time, KEYS[2] the owners (id -> principal), KEYS[3]
# the session counts (principal -> n), KEYS[4] the use counter; ARGV[1] the TTL in ms, ARGV[2] the prefix, from
# which a session's key and a principal's set of ids (by last use) are named. The header defines `now` (server ms),
# `drop(id)` and `use(id, principal)`; `_PRUNE` also drops the members idle for the TTL or longer (the memory
# store's `now - seen >= ttl`), whose session keys Redis has expired at the same moment (a touch needs no pruning:
# it only reads its own key, which Redis expires).
_HEADER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local prefix = ARGV[2]
local function owned(principal) return prefix .. 'principal-sessions:' .. principal end
local function drop(id)
  local removed = redis.call('DEL', prefix .. 'session:' .. id)
  redis.call('ZREM', KEYS[1], id)
  local owner = redis.call('HGET', KEYS[2], id)
  if owner then
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', owned(owner), id)
    if redis.call('HINCRBY', KEYS[3], owner, -1) <= 0 then redis.call('HDEL', KEYS[3], owner) end
  end
  return removed
end
local function use(id, principal)
  redis.call('ZADD', KEYS[1], now, id)
  redis.call('ZADD', owned(principal), redis.call('INCR', KEYS[4]), id)
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
  redis.call('PEXPIRE', owned(principal), ttl)
end
"""

_PRUNE = _HEADER + """
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - ttl)) do drop(id) end
"""

# ARGV[3] the cap, ARGV[4] the per-principal quota, ARGV[5] the id, ARGV[6] the JSON, ARGV[7] the principal.
# A principal at its quota loses its least recently used session; at the cap, the principal holding the most does,
# unless every principal holds one. 1 = created, 0 = full.
_CREATE = _PRUNE + """
local principal = ARGV[7]
while redis.call('ZCARD', owned(principal)) >= tonumber(ARGV[4]) do
  drop(redis.call('ZRANGE', owned(principal), 0, 0)[1])
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local counts = redis.call('HGETALL', KEYS[3])
  local biggest, most = nil, 1
  for i = 1, #counts, 2 do
    local n = tonumber(counts[i + 1])
    if n > most then biggest, most = counts[i], n end
  end
  if not biggest then return 0 end
  drop(redis.call('ZRANGE', owned(biggest), 0, 0)[1])
end
redis.call('SET', prefix .. 'session:' .. ARGV[5], ARGV[6], 'PX', ttl)
redis.call('HSET', KEYS[2], ARGV[5], principal)
redis.call('HINCRBY', KEYS[3], principal, 1)
use(ARGV[5], principal)
return 1
"""

# ARGV[3] the id; ARGV[4], when given, replaces the JSON (update) and is returned, else the stored JSON is returned
# (get). false when the session is unknown or expired.
_TOUCH = _HEADER + """
local key = prefix .. 'session:' .. ARGV[3]
local value
if ARGV[4] then
  if not redis.call('SET', key, ARGV[4], 'XX', 'PX', ttl) then value = false else value = ARGV[4] end
else
  value = redis.call('GET', key)
  if value then redis.call('PEXPIRE', key, ttl) end
end
if not value then
  drop(ARGV[3])
  return false
end
local owner = redis.call('HGET', KEYS[2], ARGV[3])
if not owner then
  -- A session stored before the quota existed (an upgrade): file it under its principal instead of losing it.
  local ok, decoded = pcall(cjson.decode, value)
  owner = ok and type(decoded) == 'table' and type(decoded.principal) == 'string' and decoded.principal or ''
  redis.call('HSET', KEYS[2], ARGV[3], owner)
  redis.call('HINCRBY', KEYS[3], owner, 1)
end
use(ARGV[3], owner)
return value
"""

# The session's JSON when it was there (for its duration), else what `drop` removed (0).
_DELETE = _HEADER + """
local value = redis.call('GET', prefix .. 'session:' .. ARGV[3])
local removed = drop(ARGV[3])
if value and removed == 1 then return value end
return removed
"""

_COUNT = _PRUNE + """
return redis.call('ZCARD', KEYS[1])
"""


class RedisSessionStore:
    """`SessionStore` over Redis: an idle TTL, a size cap and a per-principal quota shared by every instance using
    the same prefix (eviction as in `MemorySessionStore`)."""

    def __init__(self, client: aioredis.Redis, *, ttl_seconds: float, max_sessions: int,
                 max_per_principal: int | None = None, prefix: str = DEFAULT_PREFIX,
                 on_end: Callable[[SessionData, float], None] | None = None) -> None:
        """`on_end(data, 0.0)` hears of each session deleted here. Expiry happens in Redis, unseen, and a session
        outlives the instance that opened it, so neither is heard of."""
        self._on_end = on_end
        self._client = client
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._max = max_sessions
        self._quota = max_sessions if max_per_principal is None else max_per_principal
        self._prefix = prefix
        self._keys = [f"{prefix}sessions", f"{prefix}session-owners", f"{prefix}session-counts",
                      f"{prefix}session-uses"]
        self._create = client.register_script(_CREATE)
        self._touch = client.register_script(_TOUCH)
        self._delete = client.register_script(_DELETE)
        self._count = client.register_script(_COUNT)

    async def create(self, data: SessionData) -> str:
        session_id = new_session_id()
        with unavailable():
            created = await self._create(keys=self._keys, args=[
                self._ttl_ms, self._prefix, self._max, self._quota, session_id, data.model_dump_json(),
                data.principal])
        if not created:
            raise SessionsFull(f"the server holds its maximum of {self._max} sessions")
        return session_id

    async def get(self, session_id: str) -> SessionData | None:
        with unavailable():
            raw: Any = await self._touch(keys=self._keys, args=[self._ttl_ms, self._prefix, session_id])
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
            await self._touch(keys=self._keys, args=[self._ttl_ms, self._prefix, session_id, data.model_dump_json()])

    async def delete(self, session_id: str) -> bool:
        with unavailable():
            raw: Any = await self._delete(keys=self._keys, args=[self._ttl_ms, self._prefix, session_id])
        if not isinstance(raw, bytes):
            return bool(raw)
        if self._on_end is not None:
            with contextlib.suppress(ValidationError):  # written by an incompatible version: no duration to tell
                self._on_end(SessionData.model_validate_json(raw), 0.0)
        return True

    async def count(self) -> int:
        with unavailable():
            return int(await self._count(keys=self._keys, args=[self._ttl_ms, self._prefix]))
