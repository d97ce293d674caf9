"""Handshake-era sessions: what `initialize` negotiated, kept behind a store so any instance can serve any session.

`SessionData` holds only JSON-able values; a shared store (Redis) can replace `MemorySessionStore` without the
endpoint noticing.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

__all__ = ["MemorySessionStore", "SessionData", "SessionStore", "SessionsFull", "new_session_id"]


def new_session_id() -> str:
    """256 random bits as URL-safe base64: visible ASCII, as the transport spec requires."""
    return secrets.token_urlsafe(32)


class SessionData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol_version: str
    principal: str
    """Name of the token that created the session; another token gets 404 for it."""
    client_info: dict[str, Any] = {}
    client_capabilities: dict[str, Any] = {}
    log_level: str | None = None
    initialized: bool = False
    subscriptions: list[str] = []


class SessionsFull(Exception):
    """The store is at its maximum size; `initialize` gets 503."""


class SessionStore(Protocol):
    async def create(self, data: SessionData) -> str: ...

    async def get(self, session_id: str) -> SessionData | None:
        """The session, refreshing its idle timer; `None` when unknown or expired."""
        ...

    async def update(self, session_id: str, data: SessionData) -> None: ...

    async def delete(self, session_id: str) -> bool: ...

    async def count(self) -> int: ...


class MemorySessionStore:
    """In-process sessions with an idle TTL and a size cap; least recently used first to expire."""

    def __init__(self, *, ttl_seconds: float, max_sessions: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._max = max_sessions
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, SessionData]] = OrderedDict()

    def _expire(self, now: float) -> None:
        # Entries are in last-seen order, so expired ones are all at the front.
        while self._items:
            first_id, (seen, _) = next(iter(self._items.items()))
            if now - seen < self._ttl:
                break
            del self._items[first_id]

    async def create(self, data: SessionData) -> str:
        now = self._clock()
        self._expire(now)
        if len(self._items) >= self._max:
            raise SessionsFull(f"the server holds its maximum of {self._max} sessions")
        session_id = new_session_id()
        self._items[session_id] = (now, data)
        return session_id

    async def get(self, session_id: str) -> SessionData | None:
        entry = self._items.get(session_id)
        if entry is None:
            return None
        now = self._clock()
        if now - entry[0] >= self._ttl:
            del self._items[session_id]
            return None
        self._items[session_id] = (now, entry[1])
        self._items.move_to_end(session_id)
        return entry[1]

    async def update(self, session_id: str, data: SessionData) -> None:
        if session_id in self._items:
            self._items[session_id] = (self._clock(), data)
            self._items.move_to_end(session_id)

    async def delete(self, session_id: str) -> bool:
        return self._items.pop(session_id, None) is not None

    async def count(self) -> int:
        self._expire(self._clock())
        return len(self._items)

    def size(self) -> int:
        """Open sessions (expired ones not yet swept may be included); cheap enough for a metrics gauge."""
        return len(self._items)
