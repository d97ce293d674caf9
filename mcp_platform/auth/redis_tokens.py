"""The `redis` verifier: tokens the platform's own service keeps in Redis (layout in `redis_entries.py`).

A presented token is hashed and its key read. Absent: not ours (the next verifier in `auth.mode` may know it).
Present and valid: its principal. Present but expired or malformed: 401 with the reason. Each answer is kept for
`auth.redis.cache_seconds` (`AnswerCache`), so revoking a token is deleting its key, effective on every instance
within that time, and a flood of random tokens costs at most one Redis read per token per cache age (and then the
failed-auth limit's 429).

Redis down, slow or refusing: 503 naming Redis once `timeout_seconds` is up, never an admission. Answers already
cached keep being used until they age out, so an outage of a few seconds goes unnoticed by clients in use, and a
revocation is still never delayed beyond the cache age.

The lookups have a connection pool of their own, even when `auth.redis.url` falls back to `state.redis_url`, so
their short timeout is theirs and a busy event store cannot hold an authentication up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mcp_platform.auth.bearer import hash_token
from mcp_platform.auth.cache import AnswerCache, Missing
from mcp_platform.auth.chain import Presented, TokenVerifier
from mcp_platform.auth.redis_entries import EntryReader, Malformed
from mcp_platform.auth_types import Principal, expand_scopes
from mcp_platform.core import Core
from mcp_platform.errors import ConfigError, StoreUnavailable, Unauthorized
from mcp_platform.settings import RedisTokenSettings, Settings
from mcp_platform.stores.redis_client import UNREACHABLE, connect, unreachable_reason

__all__ = ["SERVICE", "RedisTokenVerifier", "open_client", "redis_location", "start"]

logger = logging.getLogger(__name__)

SERVICE = "the Redis token store"
"""How a 503 names what is down."""
EXPIRED = "The token has expired"


@dataclass(frozen=True, slots=True)
class _Admitted:
    principal: Principal
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class _Refused:
    description: str


_Answer = _Admitted | _Refused | None


class RedisTokenVerifier:
    """Looks tokens up in Redis through a bounded, short-lived cache. `clock` ages the cache (monotonic); `wall`
    (Unix time) is what `expires_at` is compared with."""

    name = "redis"

    def __init__(self, client: aioredis.Redis, config: RedisTokenSettings, *, location: str,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._reader = EntryReader(client, config.key_prefix)
        self._config = config
        self._location = location
        self._wall = wall
        self._cache: AnswerCache[_Answer] = AnswerCache(
            self._lookup, lambda answer: isinstance(answer, _Admitted), size=config.cache_size,
            max_age=config.cache_seconds, clock=clock)

    async def verify(self, token: str, request: Presented | None = None) -> Principal | None:
        token_hash = hash_token(token)
        answer = self._cache.fresh(token_hash)
        if isinstance(answer, Missing):
            if request is not None:
                await request.before_lookup()
            answer = await self._cache.get(token_hash)
        if answer is None:
            return None
        if isinstance(answer, _Refused):
            raise Unauthorized(credentials_sent=True, description=answer.description)
        if answer.expires_at is not None and answer.expires_at <= self._wall():
            raise Unauthorized(credentials_sent=True, description=EXPIRED)
        return answer.principal

    async def _lookup(self, token_hash: str) -> _Answer:
        try:
            async with asyncio.timeout(self._config.timeout_seconds):
                entry = await self._reader.read(token_hash)
        except Malformed as exc:
            # The hash's head identifies the key to the operator; it reveals nothing of the token.
            logger.warning("redis token entry %s...: %s", token_hash[:12], exc)
            return _Refused(f"The token's entry in Redis is malformed: {exc}")
        except TimeoutError:
            raise StoreUnavailable(SERVICE, f"no answer within {self._config.timeout_seconds:g} s") from None
        except UNREACHABLE as exc:
            raise StoreUnavailable(SERVICE, unreachable_reason(exc)) from None
        except RedisError as exc:  # a refused command (ACL, out of memory...): the driver's text names no secret
            logger.warning("redis token lookup refused: %s: %s", type(exc).__name__, exc)
            raise StoreUnavailable(SERVICE, "the lookup was refused") from None
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= self._wall():
            return _Refused(EXPIRED)
        return _Admitted(Principal(entry.name, expand_scopes(entry.scopes)), entry.expires_at)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.name, "redis": self._location, "key_prefix": self._config.key_prefix,
                "cache_size": self._config.cache_size, "cache_seconds": self._config.cache_seconds,
                "timeout_seconds": self._config.timeout_seconds, "cached_answers": len(self._cache)}

    async def close(self) -> None:
        await self._cache.close()


def redis_location(url: str) -> str:
    """Where `url` points, for operators: scheme, host, port and database, never the user or password."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"unix:{parts.path}"
        database = parts.path.strip("/") or "0"
        return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}/{database}"
    except ValueError:
        return "(an unreadable URL)"


def open_client(settings: Settings) -> tuple[aioredis.Redis, str]:
    """A client for the token Redis (`auth.redis.url`, else `state.redis_url`) and where it points."""
    config = settings.auth.redis
    url = config.url or settings.state.redis_url
    if url is None:
        raise ConfigError("auth.mode 'redis' needs auth.redis.url (or state.redis_url): the Redis the tokens are in")
    timeout = config.timeout_seconds
    try:
        client = connect(url, socket_timeout=timeout, connect_timeout=min(1.0, timeout), retries=1,
                         client_name="mcp-platform-auth")
    except ValueError:  # the driver's message would repeat the URL, password included
        raise ConfigError("auth.redis.url (or state.redis_url) is not a usable Redis URL") from None
    return client, redis_location(url)


async def start(settings: Settings, core: Core, stack: AsyncExitStack) -> TokenVerifier:
    client, location = open_client(settings)
    stack.push_async_callback(client.aclose)
    config = settings.auth.redis
    verifier = RedisTokenVerifier(client, config, location=location, clock=core.clock.now)
    stack.push_async_callback(verifier.close)
    logger.info("redis tokens: %s, keys %s<sha256>, answers kept %g s (at most %d)", location, config.key_prefix,
                config.cache_seconds, config.cache_size)
    try:
        async with asyncio.timeout(config.timeout_seconds):
            await client.ping()
    except (TimeoutError, RedisError) as exc:
        # Serve anyway: other verifiers may work, and Redis tokens get 503 only until Redis answers.
        reason = "timed out" if isinstance(exc, TimeoutError) else unreachable_reason(exc)
        logger.warning("the Redis token store at %s does not answer (%s): its tokens get 503 until it does",
                       location, reason)
    return verifier
