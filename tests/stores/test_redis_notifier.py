from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from mcp_platform.errors import StoreUnavailable
from mcp_platform.stores.memory import MemoryNotifier
from mcp_platform.stores.redis import RedisNotifier, connect
from tests.stores.support import Listener, RedisEnv, Twin


@asynccontextmanager
async def _notifier(twin: Twin) -> AsyncIterator[Any]:
    if twin.kind == "memory":
        yield MemoryNotifier()
        return
    async with RedisNotifier(twin.redis.client()) as notifier:
        yield notifier


async def _kill_pubsub_connections(admin: aioredis.Redis, name: str) -> int:
    killed = 0
    for client in await admin.client_list(_type="pubsub"):
        if client.get("name") == name:
            killed += await admin.client_kill_filter(_id=client["id"])
    return killed


# Behaviours shared with the memory notifier.

@pytest.mark.anyio
async def test_every_subscriber_gets_every_event_in_order(twin: Twin) -> None:
    async with _notifier(twin) as notifier, Listener(notifier) as first, Listener(notifier) as second:
        events = [{"kind": "tools"}, {"kind": "resource", "uri": "file:///a b/é"}, {"kind": "prompts"}]
        for event in events:
            await notifier.publish(event)
        for listener in (first, second):
            assert [await listener.next() for _ in events] == events


@pytest.mark.anyio
async def test_the_subscriber_count_follows_open_subscriptions(twin: Twin) -> None:
    async with _notifier(twin) as notifier:
        assert notifier.subscriber_count == 0
        async with Listener(notifier), Listener(notifier):
            assert notifier.subscriber_count == 2
        assert notifier.subscriber_count == 0


# Redis only.

@pytest.mark.anyio
async def test_an_event_reaches_the_subscribers_of_every_instance_once(redis_env: RedisEnv) -> None:
    async with RedisNotifier(redis_env.client()) as one, RedisNotifier(redis_env.client()) as two, \
            Listener(one) as on_one, Listener(two) as on_two:
        assert one.connected and two.connected
        await one.publish({"kind": "tools"})
        await two.publish({"kind": "prompts"})
        for listener in (on_one, on_two):
            assert [await listener.next(), await listener.next()] == [{"kind": "tools"}, {"kind": "prompts"}]
            assert listener.pending() == 0


@pytest.mark.anyio
async def test_publish_here_reaches_this_instance_only(redis_env: RedisEnv) -> None:
    async with RedisNotifier(redis_env.client()) as one, RedisNotifier(redis_env.client()) as two, \
            Listener(one) as on_one, Listener(two) as on_two:
        await one.publish_here({"kind": "tools"})
        await one.publish({"kind": "prompts"})  # shared: its arrival on two shows "tools" would have come first
        assert [await on_one.next(), await on_one.next()] == [{"kind": "tools"}, {"kind": "prompts"}]
        assert await on_two.next() == {"kind": "prompts"}
        assert on_one.pending() == on_two.pending() == 0


@pytest.mark.anyio
async def test_messages_that_are_not_change_events_are_ignored(redis_env: RedisEnv,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    async with RedisNotifier(redis_env.client()) as notifier, Listener(notifier) as listener:
        for junk in (b"not json", b"[1, 2]", b'"tools"', b"\xff\xfe"):
            await redis_env.admin.publish("mcpp:changes", junk)
        await notifier.publish({"kind": "tools"})
        assert await listener.next() == {"kind": "tools"}
        assert listener.pending() == 0
    assert [r.getMessage() for r in caplog.records].count(
        "notifier mcpp:changes: ignoring a message that is not JSON") == 2


@pytest.mark.anyio
@pytest.mark.parametrize("retries", [0, 2])
async def test_the_reader_recovers_when_its_connection_is_killed(redis_env: RedisEnv, retries: int,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    name = f"notifier-{secrets.token_hex(4)}"
    caplog.set_level(logging.INFO, logger="mcp_platform.stores.redis_notifier")
    async with RedisNotifier(redis_env.client(client_name=name, retries=retries)) as notifier, \
            RedisNotifier(redis_env.client()) as publisher, Listener(notifier) as listener:
        await publisher.publish({"kind": "tools"})
        assert await listener.next() == {"kind": "tools"}
        assert await _kill_pubsub_connections(redis_env.admin, name) == 1
        # Events published before the reader has subscribed again are lost (they are hints): keep publishing.
        with anyio.fail_after(10):
            while True:
                await publisher.publish({"kind": "resources"})
                with anyio.move_on_after(0.2):
                    assert await listener.next() == {"kind": "resources"}
                    break
        assert notifier.connected
    lost = [r for r in caplog.records if "lost Redis" in r.getMessage()]
    assert len(lost) <= 1
    if retries == 0:  # the driver gives up at once, so the notifier's own loop subscribes again
        assert len(lost) == 1 and "connection failed" in lost[0].getMessage()


@pytest.mark.anyio
async def test_an_unreachable_redis_is_retried_with_a_bounded_doubling_backoff(
        caplog: pytest.LogCaptureFixture) -> None:
    waits: list[float] = []
    enough = anyio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 9:
            enough.set()
        await anyio.sleep(0)

    client = connect("redis://:s3cret@127.0.0.1:1/0", retries=0)
    try:
        notifier = RedisNotifier(client, sleep=sleep)
        async with notifier:
            assert not notifier.connected
            with anyio.fail_after(10):
                await enough.wait()
            with pytest.raises(StoreUnavailable, match="^redis is unavailable: connection failed$"):
                await notifier.publish({"kind": "tools"})
        assert waits[:9] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert warnings == ["notifier mcpp:changes: lost Redis (connection failed); retrying"]
    finally:
        await client.aclose()
