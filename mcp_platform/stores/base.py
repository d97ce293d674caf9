"""The store interfaces that let several instances share state. In-memory versions live in `memory.py`; shared
ones (Redis) implement the same protocols. `SessionStore` lives with the sessions in `protocol/sessions.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

__all__ = ["EventStore", "Notifier", "parse_event_id"]


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

    def subscribe(self) -> AsyncIterator[dict[str, Any]]: ...
