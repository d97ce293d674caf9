"""In-process implementations of every store interface in `base.py`: one instance, bounded memory."""

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

from mcp_platform.stores.base import SessionData, SessionsFull, new_session_id, parse_event_id

__all__ = ["MemoryEventStore", "MemoryNotifier", "MemoryRateLimitStore", "MemorySessionStore", "new_stream_id"]

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

    publish_here = publish  # one process: its listeners are all there are

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


class MemorySessionStore:
    """In-process sessions with an idle TTL, a size cap and a per-principal quota; least recently used first to
    expire or be evicted. Eviction order: a principal at its quota gives up its own least recently used session;
    at the cap, the principal holding the most does; when every principal holds one, `create` refuses."""

    def __init__(self, *, ttl_seconds: float, max_sessions: int, max_per_principal: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_end: Callable[[SessionData, float], None] | None = None) -> None:
        """`on_end(data, late_by)` hears of each session that ends (deleted, expired, evicted, or still open at
        `close`); `late_by`: how long ago it expired, when that was noticed later."""
        self._on_end = on_end
        self._ttl = ttl_seconds
        self._max = max_sessions
        self._quota = max_sessions if max_per_principal is None else max_per_principal
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, SessionData]] = OrderedDict()
        # Per principal, its session ids in last-seen order (the same order as `_items`, restricted to it).
        self._owned: dict[str, OrderedDict[str, None]] = {}

    def _drop(self, session_id: str, *, ends: bool = True, now: float | None = None) -> bool:
        """Forget a session: its end, unless it is only re-filed; `now` when it expired (it ended a TTL after it
        was last seen)."""
        entry = self._items.pop(session_id, None)
        if entry is None:
            return False
        owned = self._owned.get(entry[1].principal)
        if owned is not None:
            owned.pop(session_id, None)
            if not owned:
                del self._owned[entry[1].principal]
        if ends and self._on_end is not None:
            self._on_end(entry[1], 0.0 if now is None else max(0.0, now - entry[0] - self._ttl))
        return True

    def _touch(self, session_id: str, now: float, data: SessionData) -> None:
        self._items[session_id] = (now, data)
        self._items.move_to_end(session_id)
        owned = self._owned.setdefault(data.principal, OrderedDict())
        owned[session_id] = None
        owned.move_to_end(session_id)

    def _expire(self, now: float) -> None:
        # Entries are in last-seen order, so expired ones are all at the front.
        while self._items:
            first_id, (seen, _) = next(iter(self._items.items()))
            if now - seen < self._ttl:
                break
            self._drop(first_id, now=now)

    def _evict_oldest_of(self, principal: str) -> None:
        self._drop(next(iter(self._owned[principal])))

    async def create(self, data: SessionData) -> str:
        now = self._clock()
        self._expire(now)
        while len(self._owned.get(data.principal, ())) >= self._quota:
            self._evict_oldest_of(data.principal)
        if len(self._items) >= self._max:
            # Only at the cap, so scanning the principals is rare; it is bounded by the cap.
            biggest = max(self._owned, key=lambda name: len(self._owned[name]))
            if len(self._owned[biggest]) < 2:
                raise SessionsFull(f"the server holds its maximum of {self._max} sessions")
            self._evict_oldest_of(biggest)
        session_id = new_session_id()
        self._touch(session_id, now, data)
        return session_id

    async def get(self, session_id: str) -> SessionData | None:
        entry = self._items.get(session_id)
        if entry is None:
            return None
        now = self._clock()
        if now - entry[0] >= self._ttl:
            self._drop(session_id, now=now)
            return None
        self._touch(session_id, now, entry[1])
        return entry[1]

    async def update(self, session_id: str, data: SessionData) -> None:
        entry = self._items.get(session_id)
        if entry is not None:
            if entry[1].principal != data.principal:
                self._drop(session_id, ends=False)  # re-filed under its new owner
            self._touch(session_id, self._clock(), data)

    async def delete(self, session_id: str) -> bool:
        return self._drop(session_id)

    async def count(self) -> int:
        self._expire(self._clock())
        return len(self._items)

    def size(self) -> int:
        """Open sessions (expired ones not yet swept may be included); cheap enough for a metrics gauge."""
        return len(self._items)

    def close(self) -> None:
        """At shutdown: the sessions still open end with the process that holds them."""
        now = self._clock()
        while self._items:
            session_id, (seen, _) = next(iter(self._items.items()))
            self._drop(session_id, now=now if now - seen >= self._ttl else None)


class MemoryRateLimitStore:
    """Buckets in a dict, for one process. At most `max_keys` buckets: full ones are dropped first (a full bucket
    is the same as none), then the least recently used, so a flood of distinct keys cannot exhaust memory."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self._max_keys = max_keys
        # key -> (tokens, at, rate_per_s, burst); insertion order is recency order.
        self._buckets: dict[str, tuple[float, float, float, float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, rate_per_s: float, burst: float, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return burst
        tokens, at = bucket[0], bucket[1]
        return min(burst, tokens + max(0.0, now - at) * rate_per_s)

    async def take(self, key: str, rate_per_s: float, burst: float, cost: float,
                   now: float) -> tuple[bool, float, float]:
        tokens = self._level(key, rate_per_s, burst, now)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets.pop(key, None)
        self._buckets[key] = (tokens, now, rate_per_s, burst)
        if len(self._buckets) > self._max_keys:
            self._evict(now)
        retry_after = 0.0 if allowed else (cost - tokens) / rate_per_s
        return allowed, tokens, retry_after

    async def peek(self, key: str, rate_per_s: float, burst: float, now: float) -> tuple[float, float]:
        tokens = self._level(key, rate_per_s, burst, now)
        return tokens, now + (burst - tokens) / rate_per_s

    def _evict(self, now: float) -> None:
        # Down to 90% of the cap, so the O(n) sweep runs once per max_keys/10 new keys, not on every one.
        target = max(1, self._max_keys * 9 // 10)
        for key, (tokens, at, rate, burst) in list(self._buckets.items()):
            if tokens + (now - at) * rate >= burst:
                del self._buckets[key]
        while len(self._buckets) > target:
            del self._buckets[next(iter(self._buckets))]
