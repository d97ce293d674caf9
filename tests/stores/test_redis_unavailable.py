from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from mcp_platform.errors import StoreUnavailable
from mcp_platform.stores.base import SessionData
from mcp_platform.stores.redis import (
    RedisEventStore,
    RedisNotifier,
    RedisRateLimitStore,
    RedisSessionStore,
    connect,
    redis_health,
)
from tests.stores.support import RedisEnv

CLOSED_PORT_URL = "redis://:s3cret-password@127.0.0.1:1/0"
DATA = SessionData(protocol_version="2025-11-25", principal="alice")


async def _first(events: AsyncIterator[Any]) -> Any:
    return await anext(events)


OPERATIONS: dict[str, Callable[[aioredis.Redis], Awaitable[Any]]] = {
    "session create": lambda c: RedisSessionStore(c, ttl_seconds=60, max_sessions=5).create(DATA),
    "session get": lambda c: RedisSessionStore(c, ttl_seconds=60, max_sessions=5).get("sid"),
    "session update": lambda c: RedisSessionStore(c, ttl_seconds=60, max_sessions=5).update("sid", DATA),
    "session delete": lambda c: RedisSessionStore(c, ttl_seconds=60, max_sessions=5).delete("sid"),
    "session count": lambda c: RedisSessionStore(c, ttl_seconds=60, max_sessions=5).count(),
    "event append": lambda c: RedisEventStore(c).append("sid", "s", b"x"),
    "event finish": lambda c: RedisEventStore(c).finish("sid", "s"),
    "event follow": lambda c: _first(aiter(RedisEventStore(c).follow("sid", "s:1"))),
    "event exists": lambda c: RedisEventStore(c).exists("sid", "s:1"),
    "event forget": lambda c: RedisEventStore(c).forget_session("sid"),
    "rate take": lambda c: RedisRateLimitStore(c).take("k", 1.0, 5, 1, 0.0),
    "rate peek": lambda c: RedisRateLimitStore(c).peek("k", 1.0, 5, 0.0),
    "notify publish": lambda c: RedisNotifier(c).publish({"kind": "tools"}),
}


@asynccontextmanager
async def _client(url: str, **kwargs: Any) -> AsyncIterator[aioredis.Redis]:
    client = connect(url, **kwargs)
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def _fake_server(reply: bytes | None) -> AsyncIterator[str]:
    """A TCP server that answers every read with `reply`, or never answers (None)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(4096):
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"redis://:s3cret-password@127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    finally:
        server.close()
        await server.wait_closed()


def _assert_clean(exc: StoreUnavailable, reason: str) -> None:
    assert str(exc) == f"redis is unavailable: {reason}"
    assert exc.service == "redis"
    # The driver's error stays attached for the log's traceback: it must not carry the password either.
    assert "s3cret" not in repr(exc.__cause__)


@pytest.mark.anyio
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_every_operation_reports_an_unreachable_redis_without_secrets(operation: str) -> None:
    async with _client(CLOSED_PORT_URL, retries=0) as client:
        with anyio.fail_after(5), pytest.raises(StoreUnavailable) as caught:
            await OPERATIONS[operation](client)
        assert await redis_health(client) == "connection failed"
    _assert_clean(caught.value, "connection failed")


@pytest.mark.anyio
async def test_retries_give_up_within_a_second() -> None:
    async with _client(CLOSED_PORT_URL) as client:
        with anyio.fail_after(1), pytest.raises(StoreUnavailable):
            await RedisRateLimitStore(client).take("k", 1.0, 5, 1, 0.0)


@pytest.mark.anyio
async def test_a_server_that_does_not_answer_times_out() -> None:
    async with _fake_server(None) as url, _client(url, socket_timeout=0.2, connect_timeout=0.2, retries=0) as client:
        with anyio.fail_after(5), pytest.raises(StoreUnavailable) as caught:
            await RedisSessionStore(client, ttl_seconds=60, max_sessions=5).count()
        assert await redis_health(client) == "timed out"
    _assert_clean(caught.value, "timed out")


@pytest.mark.anyio
async def test_a_server_loading_its_dataset_is_unavailable() -> None:
    loading = b"-LOADING Redis is loading the dataset in memory\r\n"
    async with _fake_server(loading) as url, _client(url, retries=0) as client:
        with anyio.fail_after(5), pytest.raises(StoreUnavailable) as caught:
            await RedisEventStore(client).exists("sid", "s:1")
        assert await redis_health(client) == "still loading its dataset"
    _assert_clean(caught.value, "still loading its dataset")


@pytest.mark.anyio
async def test_a_reachable_redis_is_healthy(redis_env: RedisEnv) -> None:
    assert await redis_health(redis_env.client()) is None
