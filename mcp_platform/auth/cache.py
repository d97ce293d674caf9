"""A verifier's memory of recent answers: bounded in size and age, with one lookup in flight per credential.

Verifiers that ask a service about a credential (Redis, an auth service) keep its answer for a few seconds, so a
busy client costs one lookup per `max_age` rather than one per request, and a revocation at the service takes
effect within `max_age`. Admissions and refusals are kept apart, each table bounded by `size`: a flood of random
tokens (each a miss, then a kept refusal) churns only the refusals, and the tokens in use stay cached.

Concurrent misses for one key share a single lookup; a waiter that gives up (its client went away) does not
cancel it for the others. A lookup that raises (the service is down) is not kept: the next request asks again.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["MISSING", "AnswerCache", "Missing"]

T = TypeVar("T")


class Missing:
    """The type of `MISSING`: no answer is kept (distinct from a kept `None`, which means "not ours")."""

    __slots__ = ()


MISSING = Missing()


class AnswerCache(Generic[T]):
    """`get(key)` answers from memory while the kept answer is younger than `max_age` seconds, else through
    `fetch(key)`, or through the lookup `get` is given (`fetch` None: every `get` passes one). `admits(answer)` says
    which table an answer goes to. Timing is `clock` (monotonic)."""

    def __init__(self, fetch: Callable[[str], Awaitable[T]] | None, admits: Callable[[T], bool], *, size: int,
                 max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._admits = admits
        self._size = size
        self._max_age = max_age
        self._clock = clock
        # Insertion order is age order (an answer is re-inserted when renewed), so the oldest entry is first.
        self._admitted: dict[str, tuple[float, T]] = {}
        self._refused: dict[str, tuple[float, T]] = {}
        self._pending: dict[str, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._admitted) + len(self._refused)

    def fresh(self, key: str) -> T | Missing:
        """The kept answer for `key` if it is still young enough, else `MISSING`: the hit path, without a
        coroutine (a verifier calls this on every request)."""
        now = self._clock()
        for table in (self._admitted, self._refused):
            kept = table.get(key)
            if kept is not None:
                if now - kept[0] < self._max_age:
                    return kept[1]
                del table[key]
        return MISSING

    async def get(self, key: str, lookup: Callable[[], Awaitable[T]] | None = None) -> T:
        """`lookup`, when given, replaces `fetch(key)`: for a verifier whose question carries more than the key
        (forward auth sends the request's method and URI). Callers arriving while one is running share it."""
        answer = self.fresh(key)
        if not isinstance(answer, Missing):
            return answer
        now = self._clock()
        task = self._pending.get(key)
        if task is None:
            if lookup is None:
                if self._fetch is None:
                    raise TypeError("this cache has no fetch: pass get() a lookup")
                lookup = functools.partial(self._fetch, key)
            task = asyncio.get_running_loop().create_task(self._lookup(key, now, lookup))
            task.add_done_callback(_retrieve)
            self._pending[key] = task
        return await asyncio.shield(task)

    async def _lookup(self, key: str, started: float, lookup: Callable[[], Awaitable[T]]) -> T:
        try:
            answer = await lookup()
        finally:
            self._pending.pop(key, None)
        # Aged from when the lookup began: a key deleted while it ran is forgotten within max_age of the delete.
        self._keep(self._admitted if self._admits(answer) else self._refused, key, started, answer)
        return answer

    def _keep(self, table: dict[str, tuple[float, T]], key: str, at: float, answer: T) -> None:
        if self._max_age <= 0:
            return
        table.pop(key, None)
        table[key] = (at, answer)
        now = self._clock()
        while table:
            oldest = next(iter(table))
            if len(table) <= self._size and now - table[oldest][0] < self._max_age:
                break
            del table[oldest]

    def forget(self, key: str) -> None:
        """Drop what is kept for `key` (the next `get` asks again)."""
        self._admitted.pop(key, None)
        self._refused.pop(key, None)

    async def close(self) -> None:
        """Cancel the lookups still running (at shutdown, before their connection closes)."""
        pending = list(self._pending.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _retrieve(task: asyncio.Task[T]) -> None:
    # Every waiter may have gone (clients disconnected): read the outcome so asyncio does not report it as lost.
    if not task.cancelled():
        task.exception()
