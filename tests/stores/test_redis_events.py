from __future__ import annotations

import asyncio

import anyio
import pytest

from mcp_platform.stores.base import EventStore, parse_event_id
from mcp_platform.stores.memory import MemoryEventStore
from mcp_platform.stores.redis import RedisEventStore
from tests.stores.support import RedisEnv, Twin

BAD_EVENT_IDS = ["", "nonsense", "s:", ":1", "s:-1", "s:1a", "s:1:", "s" * 300 + ":1", "*:1", "s:1\n"]


def _store(twin: Twin, *, keep_seconds: float = 300.0) -> EventStore:
    if twin.kind == "memory":
        return MemoryEventStore(keep_seconds=keep_seconds, clock=twin.clock)
    return RedisEventStore(twin.redis.client(), keep_seconds=keep_seconds, block_ms=100)


async def _all(store: EventStore, session_id: str, last_event_id: str) -> list[tuple[str, bytes]]:
    with anyio.fail_after(5):
        return [event async for event in store.follow(session_id, last_event_id)]


# Behaviours shared with the memory store.

@pytest.mark.anyio
async def test_event_ids_count_up_per_stream(twin: Twin) -> None:
    store = _store(twin)
    ids = [await store.append("sess", "s1", b"m%d" % i) for i in range(3)]
    assert ids == ["s1:1", "s1:2", "s1:3"]
    assert await store.append("sess", "s2", b"other") == "s2:1"
    assert parse_event_id(ids[-1]) == ("s1", 3)


@pytest.mark.anyio
async def test_follow_replays_what_came_after_the_id_and_stops_at_the_finish(twin: Twin) -> None:
    store = _store(twin)
    for data in (b"a", b"b", b"c"):
        await store.append("sess", "s", data)
    await store.finish("sess", "s")
    await store.finish("sess", "s")
    assert await _all(store, "sess", "s:1") == [("s:2", b"b"), ("s:3", b"c")]
    assert await _all(store, "sess", "s:0") == [("s:1", b"a"), ("s:2", b"b"), ("s:3", b"c")]
    assert await _all(store, "sess", "s:3") == []
    assert await _all(store, "sess", "s:99") == []


@pytest.mark.anyio
async def test_follow_waits_for_new_events_until_the_stream_finishes(twin: Twin) -> None:
    store = _store(twin)
    first = await store.append("sess", "s", b"")
    received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def follow() -> None:
        async for event in store.follow("sess", first):
            await received.put(event)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await store.append("sess", "s", b"x")
            assert await received.get() == ("s:2", b"x")
            await store.append("sess", "s", b"y")
            await store.finish("sess", "s")
    assert received.get_nowait() == ("s:3", b"y")
    assert received.empty()


@pytest.mark.anyio
async def test_the_priming_marker_is_kept_and_replayed_with_empty_data(twin: Twin) -> None:
    store = _store(twin)
    assert await store.append("sess", "s", b"") == "s:1"
    await store.append("sess", "s", b'{"jsonrpc":"2.0","id":1,"result":{}}')
    await store.finish("sess", "s")
    assert await _all(store, "sess", "s:0") == [("s:1", b""), ("s:2", b'{"jsonrpc":"2.0","id":1,"result":{}}')]


@pytest.mark.anyio
async def test_event_data_comes_back_byte_for_byte(twin: Twin) -> None:
    store = _store(twin)
    payloads = [b"\x00\xff\r\n\r\ndata: x\n\n", "é🙂".encode(), b"x" * 200_000]
    for data in payloads:
        await store.append("sess", "s", data)
    await store.finish("sess", "s")
    assert [data for _, data in await _all(store, "sess", "s:0")] == payloads


@pytest.mark.anyio
@pytest.mark.parametrize("bad", BAD_EVENT_IDS)
async def test_malformed_event_ids_are_unknown(twin: Twin, bad: str) -> None:
    store = _store(twin)
    await store.append("sess", "s", b"a")
    assert await store.exists("sess", bad) is False
    with pytest.raises(LookupError, match="unknown event id"):
        await anext(aiter(store.follow("sess", bad)))


@pytest.mark.anyio
async def test_a_stream_is_known_only_to_its_own_session(twin: Twin) -> None:
    store = _store(twin)
    event_id = await store.append("sess", "s", b"a")
    assert await store.exists("sess", event_id) is True
    assert await store.exists("sess", "s:999") is True  # names the stream; replay starts after it
    assert await store.exists("other", event_id) is False
    assert await store.exists("sess", "t:1") is False
    for session_id, last_event_id in (("other", event_id), ("sess", "t:1")):
        with pytest.raises(LookupError):
            await anext(aiter(store.follow(session_id, last_event_id)))


@pytest.mark.anyio
async def test_forget_session_drops_that_sessions_streams_only(twin: Twin) -> None:
    store = _store(twin)
    for session_id in ("a*", "ab", "a", "[a]"):
        await store.append(session_id, "s1", b"x")
        await store.append(session_id, "s2", b"y")
    await store.forget_session("a*")
    await store.forget_session("nobody")
    assert not await store.exists("a*", "s1:1") and not await store.exists("a*", "s2:1")
    assert all([await store.exists(session_id, "s1:1") for session_id in ("ab", "a", "[a]")])


@pytest.mark.anyio
async def test_finishing_an_unknown_stream_creates_nothing(twin: Twin) -> None:
    store = _store(twin)
    await store.finish("sess", "ghost")
    assert await store.exists("sess", "ghost:1") is False


@pytest.mark.anyio
async def test_finished_streams_are_dropped_after_keep_seconds(twin: Twin) -> None:
    store = _store(twin, keep_seconds=300)
    await store.append("sess", "done", b"a")
    await store.finish("sess", "done")
    await twin.elapse(299)
    assert await store.exists("sess", "done:1")
    await twin.elapse(2)
    await store.append("sess", "next", b"b")  # the memory store sweeps when a stream starts
    assert not await store.exists("sess", "done:1")
    with pytest.raises(LookupError):
        await anext(aiter(store.follow("sess", "done:1")))


# Redis only.

@pytest.mark.anyio
async def test_a_stream_replays_and_follows_live_across_instances(redis_env: RedisEnv) -> None:
    writer = RedisEventStore(redis_env.client(), block_ms=100)
    reader = RedisEventStore(redis_env.client(), block_ms=100)
    first = await writer.append("sess", "s", b"")
    await writer.append("sess", "s", b"stored")
    assert await reader.exists("sess", first)
    received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def follow() -> None:
        async for event in reader.follow("sess", first):
            await received.put(event)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            assert await received.get() == ("s:2", b"stored")
            await writer.append("sess", "s", b"live")
            assert await received.get() == ("s:3", b"live")
            await writer.append("sess", "s", b"reply")
            await writer.finish("sess", "s")
    assert received.get_nowait() == ("s:4", b"reply") and received.empty()


@pytest.mark.anyio
async def test_streams_expire_keep_seconds_after_the_last_append_and_after_the_finish(redis_env: RedisEnv) -> None:
    store = RedisEventStore(redis_env.client(), keep_seconds=300)
    admin = redis_env.admin
    await store.append("sess", "s", b"a")
    assert 295_000 < await admin.pttl("mcpp:events:sess:s") <= 300_000
    assert await admin.smembers("mcpp:streams:sess") == {b"s"}
    await redis_env.age(200)
    await store.append("sess", "s", b"b")
    assert await admin.pttl("mcpp:events:sess:s") > 295_000
    await redis_env.age(200)
    await store.finish("sess", "s")
    assert await admin.pttl("mcpp:events:sess:s") > 295_000
    assert await admin.pttl("mcpp:streams:sess") > 295_000


@pytest.mark.anyio
async def test_long_streams_are_trimmed_to_about_max_events(redis_env: RedisEnv) -> None:
    store = RedisEventStore(redis_env.client(), max_events=10)
    for i in range(1, 301):
        await store.append("sess", "s", b"%d" % i)
    await store.finish("sess", "s")
    kept = await _all(store, "sess", "s:0")
    assert 10 <= len(kept) < 300
    assert kept[-1] == ("s:300", b"300")
    assert [parse_event_id(event_id) for event_id, _ in kept] == [("s", n) for n in range(301 - len(kept), 301)]
    assert await store.append("sess", "s", b"after") == "s:301"


@pytest.mark.anyio
async def test_a_follower_stops_when_its_session_is_forgotten(redis_env: RedisEnv) -> None:
    store = RedisEventStore(redis_env.client(), block_ms=50)
    first = await store.append("sess", "s", b"a")
    received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def follow() -> None:
        async for event in store.follow("sess", first):
            await received.put(event)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await store.append("sess", "s", b"b")
            assert await received.get() == ("s:2", b"b")
            await store.forget_session("sess")
    assert received.empty()


@pytest.mark.anyio
async def test_a_follower_cancelled_mid_wait_leaves_the_client_usable(redis_env: RedisEnv) -> None:
    # What happens when an SSE client goes away: the blocked read is cancelled, and its late reply must not be
    # taken for the answer to the next command on the same connection.
    client = redis_env.client()
    store = RedisEventStore(client, block_ms=2000)
    first = await store.append("sess", "s", b"a")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            started = anyio.Event()

            async def follow() -> None:
                events = store.follow("sess", first)
                started.set()
                async for _ in events:
                    pass

            tg.start_soon(follow)
            await started.wait()
            while not any(c.get("cmd") == "xread" and "b" in c.get("flags", "")
                          for c in await redis_env.admin.client_list()):
                pass  # each look is a round trip, so the follower gets to its blocking read
            tg.cancel_scope.cancel()
        for i in range(2, 12):
            assert await store.append("sess", "s", b"%d" % i) == f"s:{i}"
        assert await client.ping() is True
        await store.finish("sess", "s")
        assert len(await _all(store, "sess", first)) == 10
