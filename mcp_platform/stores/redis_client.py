"""The Redis connection the shared stores use, and how its failures become `StoreUnavailable`.

One client per process (`connect`), shared by every Redis store; the app closes it with `await client.aclose()`.
Failures that mean "Redis is not there right now" (refused or dropped connections, timeouts, a server still loading
its dataset) become `StoreUnavailable("redis", reason)` with a fixed short reason: the driver's own messages name
the host and port, and a URL may carry a password, so neither reaches a client or a log line through us.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mcp_platform import spans
from mcp_platform.errors import StoreUnavailable

__all__ = ["DEFAULT_PREFIX", "UNREACHABLE", "connect", "redis_health", "unavailable", "unreachable_reason"]

DEFAULT_PREFIX = "mcpp:"
"""Prepended to every key and channel, so several deployments (or tests) can share one Redis."""

UNREACHABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, BusyLoadingError)
"""Errors meaning Redis cannot be used right now (as opposed to a bug in a command)."""


def connect(url: str, *, socket_timeout: float = 3.0, connect_timeout: float = 1.0, retries: int = 2,
            health_check_interval: int = 15, client_name: str = "mcp-platform") -> aioredis.Redis:
    """A client for `url` (`redis://[:password@]host:port/db`, or `rediss://`), connecting lazily.

    Timeouts are short so a dead server costs a request seconds, not minutes; `socket_timeout` must stay above the
    event store's blocking read (1 s). Commands are retried `retries` times on connection errors with a short
    backoff, which hides a failover or a restart; idle connections are checked every `health_check_interval` s.
    Responses are bytes (`decode_responses=False`): stream events are stored as raw bytes.
    """
    client = aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        health_check_interval=health_check_interval,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        client_name=client_name,
        decode_responses=False,
    )
    spans.instrument_redis(client)  # only when requests are traced
    return client


def unreachable_reason(exc: BaseException) -> str:
    """A short, secret-free description of why Redis is unusable."""
    if isinstance(exc, AuthenticationError):
        return "authentication failed"
    if isinstance(exc, BusyLoadingError):
        return "still loading its dataset"
    if isinstance(exc, RedisTimeoutError):
        return "timed out"
    return "connection failed"


@contextlib.contextmanager
def unavailable() -> Iterator[None]:
    """Turn Redis connection failures raised inside the block into `StoreUnavailable`."""
    try:
        yield
    except UNREACHABLE as exc:
        raise StoreUnavailable("redis", unreachable_reason(exc)) from exc


async def redis_health(client: aioredis.Redis) -> str | None:
    """For readiness checks: `None` when Redis answers PING, else a short reason."""
    try:
        await client.ping()
    except UNREACHABLE as exc:
        return unreachable_reason(exc)
    return None
