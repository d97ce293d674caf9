"""The verifiers' answer cache: aged by the injected clock, bounded per table, one lookup per key in flight."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from mcp_platform.auth.cache import AnswerCache
from tests.support import TestClock, eventually

pytestmark = pytest.mark.anyio


class Service:
    """What a verifier would ask: answers `key` (admitted when it starts with "ok"), counting the lookups; while
    `gate` is clear every lookup waits on it."""

    def __init__(self) -> None:
        self.lookups: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.down = False

    async def fetch(self, key: str) -> str | None:
        self.lookups.append(key)
        await self.gate.wait()
        if self.down:
            raise ConnectionError("down")
        return key if key.startswith("ok") else None


def cache(service: Service, clock: TestClock, *, size: int = 100, max_age: float = 5.0) -> AnswerCache[str | None]:
    return AnswerCache(service.fetch, lambda answer: answer is not None, size=size, max_age=max_age, clock=clock)


async def test_answers_are_kept_until_they_age_out() -> None:
    service, clock = Service(), TestClock()
    answers = cache(service, clock)
    assert await answers.get("ok-1") == "ok-1"
    assert await answers.get("nobody") is None
    clock.advance(4.9)
    assert await answers.get("ok-1") == "ok-1" and await answers.get("nobody") is None
    assert service.lookups == ["ok-1", "nobody"]
    clock.advance(0.1)
    await answers.get("ok-1")
    await answers.get("nobody")
    assert service.lookups == ["ok-1", "nobody", "ok-1", "nobody"]


async def test_a_zero_age_keeps_nothing() -> None:
    service, clock = Service(), TestClock()
    answers = cache(service, clock, max_age=0)
    for _ in range(3):
        await answers.get("ok-1")
    assert len(service.lookups) == 3 and len(answers) == 0


async def test_a_flood_of_unknown_keys_does_not_push_out_the_admitted_ones() -> None:
    service, clock = Service(), TestClock()
    answers = cache(service, clock, size=10)
    for n in range(10):
        await answers.get(f"ok-{n}")
    for n in range(1000):
        await answers.get(f"random-{n}")
    assert len(answers) == 20  # each table holds at most `size`
    before = len(service.lookups)
    for n in range(10):
        assert await answers.get(f"ok-{n}") == f"ok-{n}"
    assert len(service.lookups) == before
    await answers.get("random-0")  # long evicted: asked again
    assert len(service.lookups) == before + 1


async def test_the_oldest_answer_goes_first_when_full() -> None:
    service, clock = Service(), TestClock()
    answers = cache(service, clock, size=2)
    for key in ("ok-a", "ok-b", "ok-c"):
        await answers.get(key)
        clock.advance(1)
    await answers.get("ok-b")
    await answers.get("ok-c")
    assert service.lookups == ["ok-a", "ok-b", "ok-c"]
    await answers.get("ok-a")
    assert service.lookups[-1] == "ok-a"


async def test_concurrent_misses_share_one_lookup_and_a_waiter_leaving_does_not_cancel_it() -> None:
    service, clock = Service(), TestClock()
    answers = cache(service, clock)
    service.gate.clear()
    results: list[str | None] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as waiters:
            async def wait_for_answer() -> None:
                results.append(await answers.get("ok-shared"))

            for _ in range(50):
                waiters.start_soon(wait_for_answer)
            async with anyio.create_task_group() as leaver:
                leaver.start_soon(wait_for_answer)
                await eventually(lambda: service.lookups or None, what="the lookup to start")
                leaver.cancel_scope.cancel()
            service.gate.set()
    assert service.lookups == ["ok-shared"]
    assert results == ["ok-shared"] * 50


async def test_a_failed_lookup_is_not_kept_and_reaches_every_waiter() -> None:
    service, clock = Service(), TestClock()
    answers = cache(service, clock)
    service.down = True
    service.gate.clear()
    failures: list[BaseException] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as waiters:
            async def wait_for_answer() -> None:
                try:
                    await answers.get("ok-1")
                except ConnectionError as exc:
                    failures.append(exc)

            for _ in range(3):
                waiters.start_soon(wait_for_answer)
            await eventually(lambda: service.lookups or None, what="the lookup to start")
            service.gate.set()
    assert len(failures) == 3 and service.lookups == ["ok-1"]
    service.down = False
    assert await answers.get("ok-1") == "ok-1"
    assert service.lookups == ["ok-1", "ok-1"]


async def test_close_cancels_lookups_in_flight() -> None:
    service, clock = Service(), TestClock()
    answers = cache(service, clock)
    service.gate.clear()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as waiters:
            async def wait_for_answer() -> None:
                with pytest.raises(asyncio.CancelledError):
                    await answers.get("ok-1")

            waiters.start_soon(wait_for_answer)
            await eventually(lambda: service.lookups or None, what="the lookup to start")
            await answers.close()


async def test_a_lookup_given_to_get_replaces_fetch_and_is_shared_by_concurrent_callers() -> None:
    service, clock = Service(), TestClock()
    answers: AnswerCache[str | None] = AnswerCache(None, lambda answer: answer is not None, size=10, max_age=5.0,
                                                   clock=clock)
    service.gate.clear()
    results: list[str | None] = []

    async def ask(context: str) -> None:
        results.append(await answers.get("ok-1", lambda: service.fetch(f"ok-1 asked by {context}")))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for context in ("first", "second", "third"):
                group.start_soon(ask, context)
            await eventually(lambda: service.lookups, what="the lookup")
            service.gate.set()
    assert results == ["ok-1 asked by first"] * 3 and service.lookups == ["ok-1 asked by first"]
    with pytest.raises(TypeError, match="no fetch"):
        await answers.get("ok-2")
