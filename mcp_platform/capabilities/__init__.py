"""Capabilities: each module holds a backend and the tools that expose it, and declares a `CAPABILITY`.

The app's lifespan starts every capability in order: `start(settings, backends, stack)` creates the backend,
adds it to `backends` (tools find it with `ctx.backend(Type)`), and registers cleanup on `stack`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcp_platform.context import Backends

if TYPE_CHECKING:
    from mcp_platform.settings import Settings

__all__ = ["Capability", "StartFn"]

StartFn = Callable[["Settings", Backends, AsyncExitStack], Awaitable[None]]


async def _nothing(settings: Settings, backends: Backends, stack: AsyncExitStack) -> None:
    return None


@dataclass(frozen=True)
class Capability:
    name: str
    tools: Sequence[Callable[..., Any]] = ()
    start: StartFn = _nothing
    extra: dict[str, Any] = field(default_factory=dict)
