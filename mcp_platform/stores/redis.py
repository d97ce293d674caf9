"""The Redis implementations of the shared stores, for several instances behind one load balancer.

    client = connect(settings.state.redis_url)      # one per process; `await client.aclose()` at shutdown
    RedisSessionStore(client, ttl_seconds=..., max_sessions=...)
    RedisEventStore(client)
    RedisRateLimitStore(client)
    RedisNotifier(client)                            # `await start()` / `await close()`, or `async with`
    await redis_health(client)                       # None, or a short reason for /readyz

Every store takes a key `prefix` (default `mcpp:`); instances that share state must use the same one. Failures
to reach Redis raise `StoreUnavailable("redis", reason)`, which the HTTP layer answers with 503.
"""

from __future__ import annotations

from mcp_platform.stores.redis_client import DEFAULT_PREFIX, connect, redis_health
from mcp_platform.stores.redis_events import RedisEventStore
from mcp_platform.stores.redis_notifier import RedisNotifier
from mcp_platform.stores.redis_ratelimit import RedisRateLimitStore
from mcp_platform.stores.redis_sessions import RedisSessionStore

__all__ = ["DEFAULT_PREFIX", "RedisEventStore", "RedisNotifier", "RedisRateLimitStore", "RedisSessionStore",
           "connect", "redis_health"]
