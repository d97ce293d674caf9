"""Redis tokens for the tests: a key prefix of the test's own on the run's Redis database, entries written as the
platform's service would write them, and every key under the prefix deleted afterwards (never a FLUSHDB, so
parallel tests on the same database stay apart)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from mcp_platform.auth import generate_token, hash_token
from mcp_platform.settings import Settings
from tests.services import require_redis
from tests.support import make_settings

__all__ = ["RedisTokens", "redis_tokens"]


class RedisTokens:
    def __init__(self, url: str, client: aioredis.Redis) -> None:
        self.url = url
        self.client = client
        self.prefix = f"mcpp-test:{secrets.token_hex(6)}:token:"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 6379

    @property
    def database(self) -> str:
        return urlsplit(self.url).path.strip("/") or "0"

    def key(self, token: str) -> str:
        return self.prefix + hash_token(token)

    async def put(self, value: Any, *, token: str | None = None) -> str:
        """Store `value` (JSON-encoded unless bytes) under a new token's key, or `token`'s; returns the token."""
        token = token or generate_token()
        await self.client.set(self.key(token), value if isinstance(value, bytes) else json.dumps(value))
        return token

    async def add(self, name: str, scopes: list[str], expires_at: float | None = None) -> str:
        return await self.put({"name": name, "scopes": scopes, "expires_at": expires_at})

    def settings(self, tmp_path: Path, *, url: str | None = None, mode: list[str] | None = None,
                 redis: dict[str, Any] | None = None, auth: dict[str, Any] | None = None, **overrides: Any) -> Settings:
        """Test settings with `auth.mode` `mode` (default redis only) on this prefix and `url` (default the test
        Redis); `redis` adds `auth.redis` values, `auth` other `auth` values, `overrides` anything else."""
        tmp_path.mkdir(parents=True, exist_ok=True)
        section = {"url": url or self.url, "key_prefix": self.prefix, **(redis or {})}
        return make_settings(tmp_path, auth={"mode": mode or ["redis"], "redis": section, **(auth or {})},
                             **overrides)

    async def clean(self) -> None:
        keys = [key async for key in self.client.scan_iter(match=self.prefix + "*", count=1000)]
        if keys:
            await self.client.delete(*keys)


@asynccontextmanager
async def redis_tokens() -> AsyncIterator[RedisTokens]:
    url = require_redis()
    client = aioredis.Redis.from_url(url)
    tokens = RedisTokens(url, client)
    try:
        yield tokens
    finally:
        await tokens.clean()
        await client.aclose()
