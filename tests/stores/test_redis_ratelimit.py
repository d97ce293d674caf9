from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mcp_platform.stores.base import RateLimitStore
from mcp_platform.stores.memory import MemoryRateLimitStore
from mcp_platform.stores.redis import RedisRateLimitStore
from tests.stores.support import RedisEnv, Twin

RATE = 0.1  # one token per 10 s: the Redis server's clock keeps running between calls, this keeps it negligible
HOSTILE_KEYS = ["", "*", "principal:*", "a:b", "\x00", "é" * 100, "x" * 5000, "ratelimit:alice"]


def _store(twin: Twin) -> RateLimitStore:
    if twin.kind == "memory":
        return MemoryRateLimitStore()
    return RedisRateLimitStore(twin.redis.client())


def approx(value: float, tolerance: float = 0.05) -> Any:
    return pytest.approx(value, abs=tolerance)


# Behaviours shared with the memory store.

@pytest.mark.anyio
async def test_a_bucket_allows_its_burst_then_refuses_with_the_wait(twin: Twin) -> None:
    store = _store(twin)
    taken = [await store.take("alice", RATE, 3, 1, twin.now()) for _ in range(3)]
    assert [allowed for allowed, _, _ in taken] == [True, True, True]
    assert [tokens for _, tokens, _ in taken] == [approx(2), approx(1), approx(0)]
    assert [wait for _, _, wait in taken] == [0.0, 0.0, 0.0]
    allowed, tokens, wait = await store.take("alice", RATE, 3, 1, twin.now())
    assert not allowed and tokens == approx(0) and wait == approx(10, 0.5)


@pytest.mark.anyio
async def test_tokens_come_back_at_the_rate_up_to_the_burst(twin: Twin) -> None:
    store = _store(twin)
    for _ in range(3):
        await store.take("alice", RATE, 3, 1, twin.now())
    await twin.elapse(10)
    assert (await store.take("alice", RATE, 3, 1, twin.now()))[0] is True
    assert (await store.take("alice", RATE, 3, 1, twin.now()))[0] is False
    await twin.elapse(3600)
    assert await store.peek("alice", RATE, 3, twin.now()) == (approx(3), approx(twin.now()))


@pytest.mark.anyio
async def test_peek_spends_nothing_and_tells_when_the_bucket_is_full(twin: Twin) -> None:
    store = _store(twin)
    assert await store.peek("alice", RATE, 3, twin.now()) == (3, twin.now())
    await store.take("alice", RATE, 3, 1, twin.now())
    first = await store.peek("alice", RATE, 3, twin.now())
    second = await store.peek("alice", RATE, 3, twin.now())
    assert first == (approx(2), approx(twin.now() + 10, 0.5))
    assert second[0] == approx(first[0])


@pytest.mark.anyio
async def test_a_refused_take_spends_nothing(twin: Twin) -> None:
    store = _store(twin)
    assert (await store.take("alice", RATE, 3, 2, twin.now()))[:2] == (True, approx(1))
    allowed, tokens, wait = await store.take("alice", RATE, 3, 2, twin.now())
    assert not allowed and tokens == approx(1) and wait == approx(10, 0.5)
    assert (await store.peek("alice", RATE, 3, twin.now()))[0] == approx(1)


@pytest.mark.anyio
async def test_a_smaller_burst_caps_a_fuller_bucket(twin: Twin) -> None:
    store = _store(twin)
    await store.take("alice", RATE, 10, 1, twin.now())
    assert (await store.take("alice", RATE, 3, 1, twin.now()))[:2] == (True, approx(2))


@pytest.mark.anyio
@pytest.mark.parametrize("hostile", HOSTILE_KEYS)
async def test_hostile_keys_get_their_own_buckets(twin: Twin, hostile: str) -> None:
    store = _store(twin)
    await store.take("alice", RATE, 3, 1, twin.now())
    for _ in range(4):
        await store.take(hostile, RATE, 3, 1, twin.now())
    assert (await store.peek(hostile, RATE, 3, twin.now()))[0] == approx(0)
    assert (await store.peek("alice", RATE, 3, twin.now()))[0] == approx(2)


# Redis only: one budget for every instance.

@pytest.mark.anyio
async def test_two_instances_share_one_budget_whatever_their_clocks(redis_env: RedisEnv) -> None:
    one, two = RedisRateLimitStore(redis_env.client()), RedisRateLimitStore(redis_env.client())
    nows = {id(one): 5.0, id(two): 987_654.0}  # unrelated monotonic origins
    decisions = [await store.take("alice", RATE, 6, 1, nows[id(store)]) for store in (one, two) * 3]
    assert all(allowed for allowed, _, _ in decisions)
    assert (await one.take("alice", RATE, 6, 1, 5.0))[0] is False
    assert (await two.take("alice", RATE, 6, 1, 987_654.0))[0] is False
    tokens, full_at = await two.peek("alice", RATE, 6, 987_654.0)
    assert full_at == pytest.approx(987_654.0 + (6 - tokens) / RATE)
    assert full_at == approx(987_714.0, 0.5)


@pytest.mark.anyio
async def test_concurrent_takes_spend_the_burst_exactly(redis_env: RedisEnv) -> None:
    stores = [RedisRateLimitStore(redis_env.client()) for _ in range(2)]
    decisions = await asyncio.gather(*(stores[i % 2].take("alice", RATE, 10, 1, 0.0) for i in range(50)))
    assert sum(allowed for allowed, _, _ in decisions) == 10


@pytest.mark.anyio
async def test_a_bucket_expires_when_it_would_be_full_again(redis_env: RedisEnv) -> None:
    store = RedisRateLimitStore(redis_env.client(), prefix="rl-test:")
    await store.take("alice", RATE, 3, 2, 0.0)
    assert 19_000 < await redis_env.admin.pttl("rl-test:ratelimit:alice") <= 20_000
    assert float(await redis_env.admin.hget("rl-test:ratelimit:alice", "tokens") or 0) == approx(1)
