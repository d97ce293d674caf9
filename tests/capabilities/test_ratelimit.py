from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_platform.capabilities.ratelimit import RateLimiter, check_rate_limit, rate_limit_config
from mcp_platform.context import Backends
from mcp_platform.errors import RateLimited
from mcp_platform.settings import RateLimitSettings
from mcp_platform.stores.memory import MemoryRateLimitStore
from mcp_platform.tool_registry import Registry
from tests.capabilities.support import HOSTILE_STRINGS, call, context, principal, text
from tests.support import TestClock, make_settings

LIMITS = RateLimitSettings(per_minute=60.0, burst=5, per_tool={"query_records": 6.0})


def _limiter(clock: TestClock, limits: RateLimitSettings = LIMITS, **kwargs: Any) -> RateLimiter:
    return RateLimiter(limits, MemoryRateLimitStore(), failed_auth_per_minute=3, clock=clock, **kwargs)


@pytest.mark.anyio
async def test_burst_then_refusal_with_retry_after_then_recovery() -> None:
    clock = TestClock()
    limiter = _limiter(clock)
    decisions = [await limiter.hit("alice") for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    refused = await limiter.hit("alice")
    assert not refused.allowed and refused.limit == 5 and refused.remaining == 0
    assert refused.retry_after_s == pytest.approx(1.0)  # 60/min: one token a second
    assert refused.reset_after_s == pytest.approx(5.0)
    assert (await limiter.hit("bob")).allowed  # buckets are per principal
    clock.advance(0.5)
    assert not (await limiter.hit("alice")).allowed
    clock.advance(0.5)
    assert (await limiter.hit("alice")).allowed
    clock.advance(3600)
    assert (await limiter.peek("alice")).remaining == 5


@pytest.mark.anyio
async def test_peek_spends_nothing() -> None:
    clock = TestClock()
    limiter = _limiter(clock)
    await limiter.hit("alice")
    first, second = await limiter.peek("alice"), await limiter.peek("alice")
    assert first == second and first.remaining == 4 and first.allowed
    assert first.reset_after_s == pytest.approx(1.0)
    fresh = await limiter.peek("nobody")
    assert fresh.remaining == 5 and fresh.reset_after_s == 0.0


@pytest.mark.anyio
async def test_per_tool_limits_apply_only_to_their_tool() -> None:
    clock = TestClock()
    limiter = _limiter(clock)
    results = [(await limiter.hit_tool("alice", "query_records")).allowed for _ in range(6)]
    assert results == [True] * 5 + [False]  # burst capped by the global burst of 5
    refused = await limiter.hit_tool("alice", "query_records")
    assert refused.retry_after_s == pytest.approx(10.0)  # 6/min
    assert (await limiter.hit_tool("alice", "other_tool")).allowed
    assert (await limiter.hit_tool("bob", "query_records")).allowed


@pytest.mark.anyio
async def test_failed_auth_per_ip_and_hook_entry_points_raise_and_count() -> None:
    clock = TestClock()
    rejected: list[int] = []
    limiter = _limiter(clock, on_reject=lambda: rejected.append(1))
    for _ in range(3):
        await limiter.check_auth_allowed("10.0.0.1")
        await limiter.note_auth_failure("10.0.0.1")
    with pytest.raises(RateLimited) as caught:
        await limiter.check_auth_allowed("10.0.0.1")
    assert caught.value.retry_after == pytest.approx(20.0)  # 3/min
    await limiter.check_auth_allowed("10.0.0.2")
    for _ in range(5):
        await limiter.check_request("alice")
    with pytest.raises(RateLimited):
        await limiter.check_request("alice")
    for _ in range(5):
        await limiter.check_tool_call("alice", "query_records")
    with pytest.raises(RateLimited):
        await limiter.check_tool_call("alice", "query_records")
    assert len(rejected) == 3
    clock.advance(20)
    await limiter.check_auth_allowed("10.0.0.1")


@pytest.mark.anyio
async def test_disabled_limits_allow_everything_but_failed_auth() -> None:
    limiter = _limiter(TestClock(), RateLimitSettings(enabled=False, per_minute=60.0, burst=1))
    assert all([(await limiter.hit("alice")).allowed for _ in range(50)])
    for _ in range(3):
        await limiter.hit_failed_auth("1.2.3.4")
    assert not (await limiter.hit_failed_auth("1.2.3.4")).allowed


@pytest.mark.anyio
async def test_update_adopts_reloaded_limits(tmp_path: Path) -> None:
    clock = TestClock()
    limiter = _limiter(clock)
    reloaded = make_settings(tmp_path, rate_limit={"per_minute": 120, "burst": 2}, auth={"failed_auth_per_minute": 9})
    limiter.update(reloaded)
    assert [(await limiter.hit("alice")).allowed for _ in range(3)] == [True, True, False]
    described = limiter.describe()
    assert described["per_principal"] == {"per_minute": 120.0, "burst": 2}
    assert described["per_ip_failed_auth"] == {"per_minute": 9, "burst": 9}
    assert described["per_tool"] == []


@pytest.mark.anyio
async def test_memory_store_is_bounded() -> None:
    store = MemoryRateLimitStore(max_keys=100)
    for i in range(10_000):
        allowed, _, _ = await store.take(f"ip:{i}", 1.0, 10.0, 1.0, now=float(i) / 1000)
        assert allowed
    assert len(store) <= 100
    # Full buckets go first: an exhausted key outlives a flood of one-off keys whose buckets have refilled.
    for _ in range(10):
        await store.take("busy", 1e-9, 10.0, 1.0, now=100.0)
    for i in range(500):
        await store.take(f"once:{i}", 1.0, 10.0, 1.0, now=101.0 + i)
    assert len(store) <= 100
    allowed, remaining, retry_after = await store.take("busy", 1e-9, 10.0, 1.0, now=700.0)
    assert not allowed and remaining < 1 and retry_after > 1e6


@pytest.mark.anyio
async def test_check_rate_limit_twice_shows_the_same_budget() -> None:
    clock = TestClock()
    limiter = _limiter(clock)
    await limiter.hit("alice")
    backends = Backends()
    backends.add(limiter)
    ctx = context(backends, principal("alice", "read"))
    first = await call(check_rate_limit, {}, ctx)
    second = await call(check_rate_limit, {}, ctx)
    assert not first.is_error and first.structured == second.structured
    assert first.structured["key"] == "alice" and first.structured["remaining"] == 4
    assert first.structured["per_tool"]["query_records"]["remaining"] == 5


@pytest.mark.anyio
async def test_check_rate_limit_for_another_key_needs_admin() -> None:
    clock = TestClock()
    limiter = _limiter(clock)
    for _ in range(5):
        await limiter.hit("bob")
    await limiter.hit_failed_auth("10.1.1.1")
    backends = Backends()
    backends.add(limiter)
    denied = await call(check_rate_limit, {"key": "bob"}, context(backends, principal("alice", "write")))
    assert denied.is_error and "admin" in text(denied)
    own = await call(check_rate_limit, {"key": "alice"}, context(backends, principal("alice", "read")))
    assert not own.is_error
    admin = context(backends, principal("root", "admin"))
    bob = await call(check_rate_limit, {"key": "bob"}, admin)
    assert bob.structured["remaining"] == 0 and bob.structured["retry_after_s"] == pytest.approx(1.0)
    ip = await call(check_rate_limit, {"key": "ip:10.1.1.1"}, admin)
    assert ip.structured["remaining"] == 2 and ip.structured["limit"] == 3


@pytest.mark.anyio
@pytest.mark.parametrize("bad", [b for b in HOSTILE_STRINGS if b is not None])
async def test_check_rate_limit_rejects_hostile_keys(bad: Any) -> None:
    backends = Backends()
    backends.add(_limiter(TestClock()))
    result = await call(check_rate_limit, {"key": bad}, context(backends, principal("alice", "read")))
    assert result.is_error and len(text(result)) < 2000


@pytest.mark.anyio
async def test_rate_limit_config_tool() -> None:
    backends = Backends()
    backends.add(_limiter(TestClock()))
    result = await call(rate_limit_config, {}, context(backends))
    assert result.structured == {
        "enabled": True,
        "per_principal": {"per_minute": 60.0, "burst": 5},
        "per_ip_failed_auth": {"per_minute": 3.0, "burst": 3},
        "per_tool": [{"per_minute": 6.0, "burst": 5, "tool": "query_records"}],
    }
    assert (await call(rate_limit_config, {"x": 1}, context(backends))).is_error


def test_tool_definitions_match_the_catalogue() -> None:
    registry = Registry()
    for fn in (rate_limit_config, check_rate_limit):
        built = registry.add(fn)
        assert built.spec.scope == "read" and built.definition["annotations"]["readOnlyHint"] is True
        assert built.output_schema is not None
    assert list(registry.add(check_rate_limit).input_schema["properties"]) == ["key"]
