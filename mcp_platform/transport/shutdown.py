"""`mcp-platform serve`'s uvicorn server, which drains before it stops.

uvicorn alone, on SIGTERM, stops accepting connections at once and then waits for the open ones: a load balancer
would see refused connections instead of a 503 from `/readyz`, and a client mid-session an error. So here the
signal only begins the drain (`protocol.drain.Drain`): the server keeps listening, `/readyz` and every new session,
call or stream get 503 with `Retry-After` (a load balancer, or a proxy that retries on 503, moves them to another
instance), and the calls already running have `http.drain_seconds` to finish. Then uvicorn's own shutdown runs:
it stops listening, sse-starlette ends the long-lived streams (GET, `subscriptions/listen`) cleanly, calls still
running are cancelled after `FINAL_GRACE` seconds (their audit records say `cancelled`), and the lifespan closes
the background loops, the audit writer and the stores. A second signal skips what is left of the drain.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from mcp_platform.protocol.drain import Drain

__all__ = ["FINAL_GRACE", "DrainingServer"]

logger = logging.getLogger(__name__)

FINAL_GRACE = 2
"""uvicorn's `timeout_graceful_shutdown` once the drain is over: long enough for the SSE streams to end (sse-starlette
notices the shutdown within half a second), after which what still runs is cancelled."""


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Drain, drain_seconds: float,
                 after_shutdown: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_seconds = drain_seconds
        self.after_shutdown = after_shutdown
        self._loop: asyncio.AbstractEventLoop | None = None
        self._settling: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        # Here, not after `run()`: uvicorn re-raises a captured SIGTERM as it leaves `serve`, which ends the process.
        if self.after_shutdown is not None:
            await asyncio.to_thread(self.after_shutdown)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Called by the signal handler, between two bytecodes of the loop's thread: only flags and a callback.
        if self.drain.started or self._loop is None:
            super().handle_exit(sig, frame)  # a second signal, or one before start-up: stop now
            return
        self.drain.begin()
        self._loop.call_soon_threadsafe(self._start_settling, sig, frame)

    def _start_settling(self, sig: int, frame: FrameType | None) -> None:
        assert self._loop is not None
        self._settling = self._loop.create_task(self._settle(sig, frame))

    async def _settle(self, sig: int, frame: FrameType | None) -> None:
        logger.info("draining: refusing new work, waiting up to %g s for %d running request(s)",
                    self.drain_seconds, self.drain.running)
        if not await self.drain.settle(self.drain_seconds):
            logger.warning("%d request(s) still running after %g s: they are cancelled", self.drain.running,
                           self.drain_seconds)
        super().handle_exit(sig, frame)
