"""In-process implementations of the store interfaces: one instance, bounded memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_platform.stores.base import parse_event_id

__all__ = ["MemoryEventStore", "MemoryNotifier", "new_stream_id"]

logger = logging.getLogger(__name__)


def new_stream_id() -> str:
    return secrets.token_hex(6)


@dataclass
class _Stream:
    events: list[tuple[int, bytes]] = field(default_factory=list)
    next_seq: int = 1
    finished: bool = False
    finished_at: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        # A fresh Event per change: followers wait on the one they saw, so none misses a wake-up.
        self.changed.set()
        self.changed = asyncio.Event()


class MemoryEventStore:
    """Keeps each stream's last `max_events` events; finished streams are dropped after `keep_seconds`, and the
    oldest streams beyond `max_streams`."""

    def __init__(self, *, max_events: int = 1000, max_streams: int = 10_000, keep_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max_events = max_events
        self._max_streams = max_streams
        self._keep = keep_seconds
        self._clock = clock
        self._streams: OrderedDict[tuple[str, str], _Stream] = OrderedDict()

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._streams.items() if s.finished and now - s.finished_at > self._keep]:
            del self._streams[key]
        while len(self._streams) > self._max_streams:
            self._streams.popitem(last=False)

    async def append(self, session_id: str, stream_id: str, data: bytes) -> str:
        key = (session_id, stream_id)
        stream = self._streams.get(key)
        if stream is None:
            self._sweep()
            stream = self._streams[key] = _Stream()
        seq = stream.next_seq
        stream.next_seq += 1
        stream.events.append((seq, data))
        if len(stream.events) > self._max_events:
            del stream.events[0]
        stream.wake()
        return f"{stream_id}:{seq}"

    async def finish(self, session_id: str, stream_id: str) -> None:
        stream = self._streams.get((session_id, stream_id))
        if stream is not None:
            stream.finished, stream.finished_at = True, self._clock()
            stream.wake()

    async def follow(self, session_id: str, last_event_id: str) -> AsyncIterator[tuple[str, bytes]]:
        parsed = parse_event_id(last_event_id)
        stream = self._streams.get((session_id, parsed[0])) if parsed else None
        if parsed is None or stream is None:
            raise LookupError(f"unknown event id {last_event_id[:80]!r}")
        stream_id, after = parsed
        while True:
            for seq, data in list(stream.events):
                if seq > after:
                    after = seq
                    yield f"{stream_id}:{seq}", data
            if stream.finished:
                return
            await stream.changed.wait()

    async def exists(self, session_id: str, event_id: str) -> bool:
        parsed = parse_event_id(event_id)
        return parsed is not None and (session_id, parsed[0]) in self._streams

    async def forget_session(self, session_id: str) -> None:
        for key in [k for k in self._streams if k[0] == session_id]:
            del self._streams[key]


class MemoryNotifier:
    """Fan-out to in-process subscribers. A subscriber that falls `queue_size` events behind loses the oldest: the
    events are change hints, and the next one says the same thing."""

    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    async def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
