"""Graceful drain of an HTTP server: once `begin` is called (the CLI does at SIGTERM), the edge refuses new sessions,
calls and streams with `Draining` (503 and `Retry-After`), `/readyz` answers 503, and `settle` waits for the calls
already running to finish. stdio has no drain (its client owns the process and closes its pipe)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Drain"]


class Drain:
    """Whether the server is draining, and how many requests it is still answering. Plain counters: every
    request of one server runs on its event loop, and `begin` is safe to call from a signal handler."""

    def __init__(self) -> None:
        self.started = False
        self._running = 0
        self._idle: asyncio.Event | None = None

    @property
    def running(self) -> int:
        return self._running

    def begin(self) -> None:
        self.started = True

    @contextmanager
    def request(self) -> Iterator[None]:
        """Around a request being answered (long-lived streams are not: they are closed, not waited for)."""
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            if self._running == 0 and self._idle is not None:
                self._idle.set()

    async def settle(self, seconds: float) -> bool:
        """Wait until no request is being answered, at most `seconds`; whether they all finished."""
        if self._running == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        finally:
            self._idle = None
        return True
