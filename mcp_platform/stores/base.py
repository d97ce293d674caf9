"""Every store interface, and the data the stores keep. Instances share state through these: the in-memory versions
live in `memory.py`, the shared ones in `redis_*.py`, and nothing above this package names an implementation it
did not choose at start.

- `SessionStore`: handshake-era sessions (`SessionData`), so any instance can serve any session.
- `EventStore`: SSE events of response streams, for resumption with `Last-Event-ID`.
- `Notifier`: server-wide change events, fanned out to every listener.
- `RateLimitStore`: token buckets by key; the policy stays in `capabilities/ratelimit.py`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

__all__ = ["EventStore", "Notifier", "RateLimitStore", "SessionData", "SessionStore", "SessionsFull",
           "new_session_id", "parse_event_id"]


def new_session_id() -> str:
    """256 random bits as URL-safe base64: visible ASCII, as the transport spec requires."""
    return secrets.token_urlsafe(32)


class SessionData(BaseModel):
    """What `initialize` negotiated. JSON-able values only, so a shared store can hold it for every instance."""

    # Unknown fields are dropped, not refused: during a rolling deploy a newer instance stores fields an older one
    # does not know yet (`started_at` was one), and its clients must not lose their sessions over it.
    model_config = ConfigDict(extra="ignore")

    protocol_version: str
    principal: str
    """Name of the token that created the session; another token gets 404 for it."""
    client_info: dict[str, Any] = {}
    client_capabilities: dict[str, Any] = {}
    log_level: str | None = None
    initialized: bool = False
    subscriptions: list[str] = []
    started_at: float | None = None
    """When `initialize` opened it, in seconds since the epoch (every instance agrees), for its duration."""


class SessionsFull(Exception):
    """The store is at its maximum size and every principal in it holds a single session; `initialize` gets 503."""


class SessionStore(Protocol):
    async def create(self, data: SessionData) -> str:
        """A new session's id. A principal at its quota (`sessions.max_per_principal`) first loses its least
        recently used session; at the cap (`sessions.max_sessions`) the principal holding the most does, so one
        caller cannot lock the others out. Raises `SessionsFull` only when every principal holds one."""
        ...

    async def get(self, session_id: str) -> SessionData | None:
        """The session, refreshing its idle timer; `None` when unknown or expired."""
        ...

    async def update(self, session_id: str, data: SessionData) -> None: ...

    async def delete(self, session_id: str) -> bool: ...

    async def count(self) -> int: ...


def parse_event_id(event_id: str) -> tuple[str, int] | None:
    """`<stream id>:<sequence>` -> (stream id, sequence); None for anything else."""
    stream_id, sep, seq = event_id.rpartition(":")
    if not sep or not stream_id or not seq.isdigit() or len(event_id) > 200:
        return None
    return stream_id, int(seq)


class EventStore(Protocol):
    """SSE events of handshake-era response streams, kept so a client that lost its connection can resume with
    `Last-Event-ID`. Event ids are `<stream id>:<sequence>`, unique across a session's streams; replay follows
    one stream only."""

    async def append(self, session_id: str, stream_id: str, data: bytes) -> str:
        """Store one event (a serialised JSON-RPC message) and return its id."""
        ...

    async def finish(self, session_id: str, stream_id: str) -> None:
        """The stream's last event (the reply) has been stored: followers stop after it."""
        ...

    def follow(self, session_id: str, last_event_id: str) -> AsyncIterator[tuple[str, bytes]]:
        """Events of `last_event_id`'s stream after it, then new ones as they come, until the stream finishes.
        Raises `LookupError` when the id is unknown to this session."""
        ...

    async def exists(self, session_id: str, event_id: str) -> bool:
        """Whether `event_id` names a stream this store still holds for the session."""
        ...

    async def forget_session(self, session_id: str) -> None: ...


class Notifier(Protocol):
    """Server-wide change events (`{"kind": "tools" | "prompts" | "resources"}` or `{"kind": "resource", "uri":
    ...}`), fanned out to every open listener, on every instance for shared implementations."""

    async def publish(self, event: dict[str, Any]) -> None: ...

    async def publish_here(self, event: dict[str, Any]) -> None:
        """To this instance's listeners only: for a change each instance announces once it sees it itself (a
        flag flip: each instance reloads the flag, then tells its own clients)."""
        ...

    def subscribe(self) -> AsyncIterator[dict[str, Any]]: ...


class RateLimitStore(Protocol):
    """Token buckets by key. `now` is the caller's clock, so buckets never mix clocks."""

    async def take(self, key: str, rate_per_s: float, burst: float, cost: float,
                   now: float) -> tuple[bool, float, float]:
        """Spend `cost` tokens if there are enough: (allowed, tokens left, seconds until `cost` is available)."""
        ...

    async def peek(self, key: str, rate_per_s: float, burst: float, now: float) -> tuple[float, float]:
        """Spend nothing: (tokens available, time at which the bucket is full again)."""
        ...
