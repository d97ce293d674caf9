from __future__ import annotations

import asyncio
import re

import pytest

from mcp_platform.stores.base import SessionData, SessionsFull, SessionStore
from mcp_platform.stores.memory import MemorySessionStore
from mcp_platform.stores.redis import RedisSessionStore
from tests.stores.support import RedisEnv, Twin

HOSTILE_IDS = ["", "*", "?", "[a-z]*", "a:b", "../../etc/passwd", "\x00", "é" * 50, "x" * 10_000, "sessions",
               "mcpp:sessions"]


def _data(principal: str = "alice", **changes: object) -> SessionData:
    return SessionData(protocol_version="2025-11-25", principal=principal, client_info={"name": "t"}, **changes)


def _store(twin: Twin, *, ttl_seconds: float = 60.0, max_sessions: int = 10,
           max_per_principal: int | None = None) -> SessionStore:
    if twin.kind == "memory":
        return MemorySessionStore(ttl_seconds=ttl_seconds, max_sessions=max_sessions,
                                  max_per_principal=max_per_principal, clock=twin.clock)
    return RedisSessionStore(twin.redis.client(), ttl_seconds=ttl_seconds, max_sessions=max_sessions,
                             max_per_principal=max_per_principal)


# Behaviours shared with the memory store.

@pytest.mark.anyio
async def test_a_session_reads_back_until_deleted(twin: Twin) -> None:
    store = _store(twin)
    first, second = await store.create(_data()), await store.create(_data("bob"))
    assert first != second
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", sid) for sid in (first, second))
    assert await store.get(first) == _data()
    assert await store.get(second) == _data("bob")
    assert await store.delete(first) is True
    assert await store.get(first) is None
    assert await store.delete(first) is False
    assert await store.count() == 1


@pytest.mark.anyio
async def test_update_replaces_the_data_of_known_sessions_only(twin: Twin) -> None:
    store = _store(twin)
    sid = await store.create(_data())
    changed = _data(initialized=True, log_level="debug", subscriptions=["file:///a"])
    await store.update(sid, changed)
    assert await store.get(sid) == changed
    await store.update("no-such-session", changed)
    assert await store.get("no-such-session") is None
    assert await store.count() == 1


@pytest.mark.anyio
async def test_a_full_store_of_single_sessions_refuses_until_a_session_leaves(twin: Twin) -> None:
    store = _store(twin, max_sessions=2)
    first = await store.create(_data("ann"))
    await store.create(_data("bob"))
    with pytest.raises(SessionsFull, match="maximum of 2 sessions"):
        await store.create(_data("cid"))
    await store.delete(first)
    await store.create(_data("cid"))
    assert await store.count() == 2


@pytest.mark.anyio
async def test_a_principal_at_its_quota_gives_up_its_least_recently_used_session(twin: Twin) -> None:
    store = _store(twin, max_sessions=10, max_per_principal=3)
    first, second, third = [await store.create(_data()) for _ in range(3)]
    bob = await store.create(_data("bob"))
    await twin.elapse(1)
    assert await store.get(first) is not None  # now second is alice's least recently used
    fourth = await store.create(_data())
    assert await store.get(second) is None
    assert [await store.get(sid) is not None for sid in (first, third, fourth, bob)] == [True] * 4
    await store.update(third, _data(initialized=True))  # an update counts as use too
    await store.create(_data())
    assert await store.get(first) is None and await store.get(third) is not None
    assert await store.count() == 4


@pytest.mark.anyio
async def test_at_the_cap_the_principal_holding_the_most_gives_way(twin: Twin) -> None:
    store = _store(twin, max_sessions=4, max_per_principal=3)
    ann = [await store.create(_data("ann")) for _ in range(3)]
    bob = await store.create(_data("bob"))
    cid = await store.create(_data("cid"))
    assert [await store.get(sid) is not None for sid in (*ann, bob, cid)] == [False, True, True, True, True]
    dan = await store.create(_data("dan"))
    assert [await store.get(sid) is not None for sid in (*ann, bob, cid, dan)] == [False, False, True] + [True] * 3
    with pytest.raises(SessionsFull):
        await store.create(_data("eve"))
    assert await store.count() == 4


@pytest.mark.anyio
async def test_idle_sessions_expire_and_free_their_places(twin: Twin) -> None:
    store = _store(twin, ttl_seconds=60, max_sessions=2, max_per_principal=1)
    first = await store.create(_data())
    await store.create(_data("bob"))
    await twin.elapse(59)
    assert await store.count() == 2
    await twin.elapse(1)
    assert await store.count() == 0
    assert await store.get(first) is None
    await store.create(_data())
    await store.create(_data("bob"))
    with pytest.raises(SessionsFull):
        await store.create(_data("cid"))
    await twin.elapse(60)
    assert [await store.create(_data(name)) != "" for name in ("ann", "cid")] == [True, True]


@pytest.mark.anyio
async def test_get_and_update_refresh_the_idle_timer(twin: Twin) -> None:
    store = _store(twin, ttl_seconds=60)
    read, updated, idle = [await store.create(_data(name)) for name in ("read", "updated", "idle")]
    await twin.elapse(40)
    assert await store.get(read) is not None
    await store.update(updated, _data("updated", initialized=True))
    await twin.elapse(40)
    assert await store.get(idle) is None
    assert await store.get(read) == _data("read")
    assert await store.get(updated) == _data("updated", initialized=True)
    assert await store.count() == 2


@pytest.mark.anyio
@pytest.mark.parametrize("hostile", HOSTILE_IDS)
async def test_hostile_ids_name_no_session(twin: Twin, hostile: str) -> None:
    store = _store(twin)
    sid = await store.create(_data())
    assert await store.get(hostile) is None
    await store.update(hostile, _data("mallory"))
    assert await store.get(hostile) is None
    assert await store.delete(hostile) is False
    assert await store.count() == 1
    assert await store.get(sid) == _data()


# Redis only: what several instances see.

@pytest.mark.anyio
async def test_a_session_is_visible_refreshed_and_deletable_from_another_instance(redis_env: RedisEnv) -> None:
    one = RedisSessionStore(redis_env.client(), ttl_seconds=60, max_sessions=10)
    two = RedisSessionStore(redis_env.client(), ttl_seconds=60, max_sessions=10)
    sid = await one.create(_data())
    key = f"mcpp:session:{sid}"
    assert await two.get(sid) == _data()
    await redis_env.age(50)
    assert await redis_env.admin.pttl(key) <= 10_000
    await two.get(sid)
    assert await redis_env.admin.pttl(key) > 50_000
    await redis_env.age(50)
    await two.update(sid, _data(initialized=True))
    assert await redis_env.admin.pttl(key) > 50_000
    assert await one.get(sid) == _data(initialized=True)
    assert await two.delete(sid) is True
    assert await one.get(sid) is None
    assert await one.count() == 0


@pytest.mark.anyio
async def test_the_cap_holds_under_concurrent_creates_from_two_instances(redis_env: RedisEnv) -> None:
    stores = [RedisSessionStore(redis_env.client(), ttl_seconds=60, max_sessions=10) for _ in range(2)]
    results = await asyncio.gather(*(stores[i % 2].create(_data(f"p{i}")) for i in range(50)),
                                   return_exceptions=True)
    created = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, SessionsFull)]
    assert len(created) == 10 and len(refused) == 40
    assert await stores[0].count() == 10
    assert await redis_env.admin.zcard("mcpp:sessions") == 10


@pytest.mark.anyio
async def test_sessions_are_stored_as_json_with_an_idle_expiry(redis_env: RedisEnv) -> None:
    store = RedisSessionStore(redis_env.client(), ttl_seconds=1800, max_sessions=10)
    sid = await store.create(_data())
    raw = await redis_env.admin.get(f"mcpp:session:{sid}")
    assert raw is not None and SessionData.model_validate_json(raw) == _data()
    assert 1_790_000 < await redis_env.admin.pttl(f"mcpp:session:{sid}") <= 1_800_000
    assert await redis_env.admin.zscore("mcpp:sessions", sid) is not None


@pytest.mark.anyio
async def test_data_an_incompatible_version_wrote_reads_as_no_session(redis_env: RedisEnv) -> None:
    store = RedisSessionStore(redis_env.client(), ttl_seconds=60, max_sessions=10)
    sid = await store.create(_data())
    await redis_env.admin.set(f"mcpp:session:{sid}", b'{"protocol_version": 3, "unknown": true}', px=60_000)
    assert await store.get(sid) is None
    assert await redis_env.admin.exists(f"mcpp:session:{sid}") == 0
    assert await store.count() == 0


@pytest.mark.anyio
async def test_prefixes_keep_deployments_apart(redis_env: RedisEnv) -> None:
    client = redis_env.client()
    blue = RedisSessionStore(client, ttl_seconds=60, max_sessions=1, prefix="blue:")
    green = RedisSessionStore(client, ttl_seconds=60, max_sessions=1, prefix="green:")
    sid = await blue.create(_data())
    await green.create(_data())
    assert await green.get(sid) is None
    assert await blue.count() == 1 and await green.count() == 1


@pytest.mark.anyio
async def test_a_session_stored_before_the_quota_existed_is_kept_and_counted(redis_env: RedisEnv) -> None:
    store = RedisSessionStore(redis_env.client(), ttl_seconds=60, max_sessions=10, max_per_principal=2)
    await redis_env.admin.set("mcpp:session:old", _data().model_dump_json(), px=60_000)
    seconds, micros = await redis_env.admin.time()
    await redis_env.admin.zadd("mcpp:sessions", {"old": seconds * 1000 + micros // 1000})
    assert await store.count() == 1
    assert await store.get("old") == _data()
    first = await store.create(_data())
    assert await store.count() == 2
    await store.create(_data())  # alice's third: the old one, least recently used, gives way
    assert await store.get("old") is None and await store.get(first) is not None
    assert await store.count() == 2


@pytest.mark.anyio
async def test_a_session_a_newer_instance_stored_with_fields_unknown_here_still_reads(redis_env: RedisEnv) -> None:
    store = RedisSessionStore(redis_env.client(), ttl_seconds=60, max_sessions=10)
    sid = await store.create(_data())
    key = f"mcpp:session:{sid}"
    stored = await redis_env.admin.get(key)
    assert stored is not None
    text = stored.decode() if isinstance(stored, bytes) else str(stored)
    newer = text.replace("{", '{"field_of_a_later_release":{"x":1},', 1)
    await redis_env.admin.set(key, newer, keepttl=True)
    found = await store.get(sid)  # a rolling deploy: the client keeps its session
    assert found is not None and found.principal == "alice"
