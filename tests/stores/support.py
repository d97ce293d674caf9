"""Twin harnesses: each store's behaviour tests run against the memory and the Redis implementation alike.

Time: the memory stores read a hand-moved clock. The Redis stores read the Redis server's clock, which a test
cannot move, so `RedisEnv.age` moves the stored state back instead: every key's expiry comes `seconds` sooner
(keys whose time is up are deleted, as Redis would), last-seen scores and bucket timestamps become `seconds`
older. To the stores that is the same as `seconds` passing, without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import redis.asyncio as aioredis

from mcp_platform.stores.redis_client import DEFAULT_PREFIX, connect
from tests.services import require_redis
from tests.support import TestClock, eventually

__all__ = ["Listener", "RedisEnv", "Twin"]


class RedisEnv:
    """Clients on the test database (15), which is flushed on entry; every client is closed on exit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: list[aioredis.Redis] = []
        self.admin = self.client(client_name="mcp-platform-test-admin")
        """A client for looking at and ageing the stored state."""

    def client(self, **kwargs: Any) -> aioredis.Redis:
        """A new client, as another instance of the server would have."""
        client = connect(self.url, **kwargs)
        self._clients.append(client)
        return client

    @classmethod
    @asynccontextmanager
    async def open(cls) -> AsyncIterator[RedisEnv]:
        env = cls(require_redis())
        try:
            await env.admin.flushdb()
            yield env
        finally:
            for client in env._clients:
                await client.aclose()

    async def age(self, seconds: float) -> None:
        ms = round(seconds * 1000)
        async for key in self.admin.scan_iter(match=f"{DEFAULT_PREFIX}*"):
            kind = await self.admin.type(key)
            if kind == b"zset":
                scored: Any = await self.admin.zrange(key, 0, -1, withscores=True)
                if scored:
                    await self.admin.zadd(key, {member: score - ms for member, score in scored})
            elif kind == b"hash" and await self.admin.hexists(key, "at"):
                await self.admin.hincrbyfloat(key, "at", -seconds)
            left = await self.admin.pttl(key)
            if left >= 0:
                if left - ms <= 0:
                    await self.admin.delete(key)
                else:
                    await self.admin.pexpire(key, left - ms)


class Twin:
    """What a shared test needs from either implementation: `now()` for callers that pass a time, `elapse()`."""

    def __init__(self, kind: str, clock: TestClock, env: RedisEnv | None) -> None:
        self.kind = kind
        self.clock = clock
        self.env = env

    def now(self) -> float:
        return self.clock.now()

    async def elapse(self, seconds: float) -> None:
        self.clock.advance(seconds)
        if self.env is not None:
            await self.env.age(seconds)

    @classmethod
    @asynccontextmanager
    async def open(cls, kind: str) -> AsyncIterator[Twin]:
        if kind == "memory":
            yield cls(kind, TestClock(), None)
            return
        async with RedisEnv.open() as env:
            yield cls(kind, TestClock(), env)

    @property
    def redis(self) -> RedisEnv:
        assert self.env is not None
        return self.env


class Listener:
    """Drains one `subscribe()` of a notifier into a queue; ready once the notifier counts the subscription."""

    def __init__(self, notifier: Any) -> None:
        self._notifier = notifier
        self._events = notifier.subscribe()
        self._received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _pump(self) -> None:
        async for event in self._events:
            await self._received.put(event)

    async def __aenter__(self) -> Listener:
        before = self._notifier.subscriber_count
        self._task = asyncio.get_running_loop().create_task(self._pump())
        await eventually(lambda: self._notifier.subscriber_count > before, interval=0, what="the subscription")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._events.aclose()

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            return await self._received.get()

    def pending(self) -> int:
        return self._received.qsize()
