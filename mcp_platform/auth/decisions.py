"""Decisions about tokens, remembered per token hash: bounded in age and in number, one lookup per token at once.

A verifier that asks another service (forward auth) keeps what it was told here for a few seconds, so a client
making many calls costs the service one question per few seconds, and a hundred calls arriving together with a
new token cost one question, not a hundred. Only decisions are kept; a failure to decide (the service is down)
is never remembered, so the next request asks again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["DecisionCache"]

T = TypeVar("T")


class DecisionCache(Generic[T]):
    """`decided(key, decide)`: the decision remembered for `key` if it is younger than `seconds`, else the result of
    `decide()`, remembered. Callers asking about one key while it is being decided share that one `decide()`; one
    of them giving up (its client went away) does not cancel it for the others. At most `size` decisions are kept:
    the oldest go first."""

    def __init__(self, *, seconds: float, size: int, clock: Callable[[], float]) -> None:
        self._seconds = seconds
        self._size = size
        self._clock = clock
        self._kept: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._pending: dict[str, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    async def decided(self, key: str, decide: Callable[[], Awaitable[T]]) -> T:
        kept = self._kept.get(key)
        if kept is not None:
            if self._clock() < kept[0]:
                return kept[1]
            del self._kept[key]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._decide(key, decide))
            task.add_done_callback(_retrieve)
            self._pending[key] = task
        return await asyncio.shield(task)

    async def aclose(self) -> None:
        """Cancel the decisions under way and wait for them, before whatever they use is closed."""
        pending = list(self._pending.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _decide(self, key: str, decide: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await decide()
        finally:
            self._pending.pop(key, None)
        if self._seconds > 0:
            self._kept.pop(key, None)
            self._kept[key] = (self._clock() + self._seconds, value)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return value


def _retrieve(task: asyncio.Task[object]) -> None:
    # Every waiter may have given up before the answer came: mark its failure seen, so asyncio does not report an
    # exception "never retrieved" (the next request asks again anyway).
    if not task.cancelled():
        task.exception()
