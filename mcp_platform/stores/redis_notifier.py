"""Change notifications across instances over Redis pub/sub.

`publish` sends compact JSON on one channel (`{prefix}changes`). Each instance runs one background reader that is
subscribed to it and hands every message to its local subscribers through a `MemoryNotifier`, so an instance's
own events also arrive by way of Redis, exactly once; `publish_here` reaches this instance's subscribers only.
The reader outlives Redis outages: it logs the first failure, retries with a doubling, bounded delay, subscribes
again, and goes on. Events published while it was disconnected are lost; they are hints, and the next change says
the same thing again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from mcp_platform.stores.memory import MemoryNotifier
from mcp_platform.stores.redis_client import DEFAULT_PREFIX, UNREACHABLE, unavailable, unreachable_reason

__all__ = ["RedisNotifier"]

logger = logging.getLogger(__name__)


class RedisNotifier:
    """`Notifier` shared by every instance on the same channel. Start it (`await start()`, or `async with`) before
    subscribers expect events, and close it at shutdown; `sleep` is injectable so tests can watch the backoff."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = DEFAULT_PREFIX, channel: str | None = None,
                 queue_size: int = 256, retry_first: float = 0.1, retry_max: float = 5.0,
                 poll_seconds: float = 1.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._client = client
        self.channel = channel if channel is not None else f"{prefix}changes"
        self._local = MemoryNotifier(queue_size)
        self._retry_first = retry_first
        self._retry_max = retry_max
        self._poll = poll_seconds
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._connected = False

    async def publish(self, event: dict[str, Any]) -> None:
        payload = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        with unavailable():
            await self._client.publish(self.channel, payload)

    async def publish_here(self, event: dict[str, Any]) -> None:
        await self._local.publish(event)

    def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        return self._local.subscribe()

    @property
    def subscriber_count(self) -> int:
        return self._local.subscriber_count

    @property
    def connected(self) -> bool:
        """Whether the reader is subscribed now (false while Redis is unreachable)."""
        return self._connected

    async def start(self) -> None:
        """Start the reader; returns once it has subscribed, or has failed once (it then keeps retrying)."""
        if self._task is not None:
            return
        settled = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(settled), name="redis-notifier")
        await settled.wait()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._connected = False

    async def __aenter__(self) -> RedisNotifier:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _run(self, settled: asyncio.Event) -> None:
        delay = self._retry_first
        failing = False
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._connected = True
                settled.set()
                if failing:
                    logger.info("notifier %s: subscribed to Redis again", self.channel)
                    failing, delay = False, self._retry_first
                while True:
                    # A bounded wait, so the connection's health checks run while the channel is quiet.
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self._poll)
                    if message is not None and message.get("type") == "message":
                        await self._deliver(message["data"])
            except UNREACHABLE as exc:
                if not failing:
                    logger.warning("notifier %s: lost Redis (%s); retrying", self.channel, unreachable_reason(exc))
                    failing = True
            except Exception:
                # A bug must not end notifications for good: log it and reconnect like after an outage.
                logger.exception("notifier %s: reader failed; retrying", self.channel)
                failing = True
            finally:
                self._connected = False
                settled.set()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            await self._sleep(delay)
            delay = min(delay * 2, self._retry_max)

    async def _deliver(self, data: bytes) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            logger.warning("notifier %s: ignoring a message that is not JSON", self.channel)
            return
        if isinstance(event, dict):
            await self._local.publish(event)
