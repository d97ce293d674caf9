"""Token buckets in Redis: one budget per key across every instance.

Each bucket is a hash `{prefix}ratelimit:{key}` with `tokens` and `at` (server time, seconds). A Lua script
refills, spends and writes it atomically, timed by the Redis server's clock (`TIME`): the instances' monotonic
clocks have unrelated origins, so the caller's `now` never reaches Redis. It is used only to express "full again
at" in the caller's terms. A bucket expires when it would be full again: a missing bucket is a full one.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from mcp_platform.stores.redis_client import DEFAULT_PREFIX, unavailable

__all__ = ["RedisRateLimitStore"]

# KEYS[1] the bucket; ARGV: rate per s, burst, and the cost to spend (absent: peek). Numbers go back as strings,
# since Redis truncates Lua numbers to integers. Returns {allowed, tokens} for a take, tokens for a peek.
_BUCKET = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = burst
if bucket[1] and bucket[2] then
  tokens = math.min(burst, tonumber(bucket[1]) + math.max(0, now - tonumber(bucket[2])) * rate)
end
if not ARGV[3] then return string.format('%.17g', tokens) end
local cost = tonumber(ARGV[3])
local allowed = 0
if tokens >= cost then
  allowed = 1
  tokens = tokens - cost
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.6f', now))
if rate > 0 then
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((burst - tokens) / rate * 1000)))
end
return {allowed, string.format('%.17g', tokens)}
"""


class RedisRateLimitStore:
    """`RateLimitStore` over Redis, with the same answers as `MemoryRateLimitStore` (timed by the server)."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._prefix = prefix
        self._bucket = client.register_script(_BUCKET)

    def _key(self, key: str) -> str:
        return f"{self._prefix}ratelimit:{key}"

    async def take(self, key: str, rate_per_s: float, burst: float, cost: float,
                   now: float) -> tuple[bool, float, float]:
        with unavailable():
            reply: Any = await self._bucket(keys=[self._key(key)], args=[repr(rate_per_s), repr(burst), repr(cost)])
        allowed, tokens = bool(reply[0]), float(reply[1])
        retry_after = 0.0 if allowed else (cost - tokens) / rate_per_s
        return allowed, tokens, retry_after

    async def peek(self, key: str, rate_per_s: float, burst: float, now: float) -> tuple[float, float]:
        with unavailable():
            reply: Any = await self._bucket(keys=[self._key(key)], args=[repr(rate_per_s), repr(burst)])
        tokens = float(reply)
        return tokens, now + (burst - tokens) / rate_per_s
