"""The core of a running server: one small typed object the app factory builds and passes down explicitly.

    core = await open_core(settings, stack, discovered=loader.scan())
    core.settings, core.clock, core.state_db, core.registry, core.resources, core.prompts, core.hooks,
    core.notifier, core.events, core.bus, core.sessions, core.flags, core.redis
    core.backends.get(OrmBackend)          # only capability backends are looked up, by type

Capabilities receive it in their start function and tools see part of it through `ToolContext` (settings, flags,
notifier, backends). Nothing in here names a capability: the flags capability plugs its store into `core.flags`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcp_platform import tracing
from mcp_platform.config_reload import ConfigManager
from mcp_platform.context import Backends, Clock, FlagReader
from mcp_platform.discovery import Discovered
from mcp_platform.errors import StoreUnavailable
from mcp_platform.hooks import Hooks
from mcp_platform.prompts import Prompts
from mcp_platform.resources import Resources
from mcp_platform.settings import Settings
from mcp_platform.stores.base import EventStore, Notifier, SessionData, SessionStore
from mcp_platform.stores.memory import MemoryEventStore, MemoryNotifier, MemorySessionStore
from mcp_platform.stores.sql import StateDB
from mcp_platform.tool_registry import Registry

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Core", "Flags", "HealthCheck", "announce", "open_core", "run_in_background", "run_until_shutdown"]

logger = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[str | None]]
"""Checked by `/readyz`: `None` when healthy, else a short reason (never a secret)."""


class Flags:
    """The feature flags `ToolContext.flag` and flag-gated tools read. A capability that stores flags plugs its
    reader in at start (`provide`); until then, or without one, no flag is declared."""

    def __init__(self) -> None:
        self._reader: FlagReader | None = None

    def provide(self, reader: FlagReader) -> None:
        self._reader = reader

    def is_enabled(self, name: str) -> bool:
        """The flag's value; `KeyError` for a flag that is not declared."""
        if self._reader is None:
            raise KeyError(name)
        return self._reader.is_enabled(name)

    def gate(self, name: str) -> bool:
        """Whether a tool gated by flag `name` is served: always without a flag store, since nobody could turn
        the flag on; with one, only while the flag is declared and on."""
        if self._reader is None:
            return True
        try:
            return self._reader.is_enabled(name)
        except KeyError:
            return False


@dataclass(frozen=True, eq=False)
class Core:
    """What every part of the running server shares. Built once per app start by `open_core`."""

    config: ConfigManager
    """The settings in effect (`core.settings`), their reload and its `on_reload` callbacks."""
    clock: Clock
    state_db: StateDB
    """Durable state: tokens, flags, audit log."""
    registry: Registry
    resources: Resources
    prompts: Prompts
    hooks: Hooks
    notifier: Notifier
    """Change events for clients (list changes, resource updates)."""
    events: EventStore
    bus: Notifier
    """Internal events between instances (flag reloads, cancellations, client replies); never sent to clients."""
    sessions: SessionStore
    discovered: Discovered
    """The tool modules found at start (capabilities read declarations from them, e.g. ORM models)."""
    redis: Redis | None = None
    """The shared Redis client when `state.redis_url` is set: capabilities build their shared stores on it."""
    flags: Flags = field(default_factory=Flags)
    backends: Backends = field(default_factory=Backends)
    """Capability backends by type, for tools (`ctx.backend(OrmBackend)`)."""

    @property
    def settings(self) -> Settings:
        """The settings in effect now (a reload swaps them)."""
        return self.config.current


def _session_ended(session: SessionData, late_by: float) -> None:
    tracing.session_ended(session.started_at, session.protocol_version, "tcp", late_by=late_by)


async def open_core(settings: Settings, stack: AsyncExitStack, *, overrides: Mapping[str, Any] | None = None,
                    clock: Clock | None = None, sessions: SessionStore | None = None,
                    discovered: Discovered | None = None) -> Core:
    """Open the state database and the shared stores (Redis when `state.redis_url` is set, else this process) and
    build the core; `stack` closes them. `sessions` replaces the session store (tests)."""
    clock = clock or Clock()
    state_db = StateDB(settings.state.url)
    await state_db.start()
    stack.push_async_callback(state_db.close)
    redis = None
    if settings.state.redis_url is None:
        notifier: Notifier = MemoryNotifier()
        events: EventStore = MemoryEventStore(clock=clock.now)
        bus: Notifier = MemoryNotifier()
        in_process = MemorySessionStore(
            ttl_seconds=settings.sessions.ttl_seconds, max_sessions=settings.sessions.max_sessions,
            max_per_principal=settings.sessions.max_per_principal, clock=clock.now, on_end=_session_ended)
        stack.callback(in_process.close)  # their sessions end with this process
        shared_sessions: SessionStore = in_process
    else:
        from mcp_platform.stores.redis import (
            DEFAULT_PREFIX,
            RedisEventStore,
            RedisNotifier,
            RedisSessionStore,
            connect,
        )

        redis = connect(settings.state.redis_url)
        stack.push_async_callback(redis.aclose)
        notifier, bus = RedisNotifier(redis), RedisNotifier(redis, channel=f"{DEFAULT_PREFIX}internal")
        for started in (notifier, bus):
            await started.start()
            stack.push_async_callback(started.close)
        events = RedisEventStore(redis)
        shared_sessions = RedisSessionStore(redis, ttl_seconds=settings.sessions.ttl_seconds,
                                            max_sessions=settings.sessions.max_sessions,
                                            max_per_principal=settings.sessions.max_per_principal,
                                            on_end=_session_ended)
    core = Core(config=ConfigManager(settings, overrides=overrides), clock=clock, state_db=state_db,
                registry=Registry(), resources=Resources(), prompts=Prompts(), hooks=Hooks(), notifier=notifier,
                events=events, bus=bus, sessions=sessions if sessions is not None else shared_sessions,
                discovered=discovered or Discovered(), redis=redis)
    core.registry.flag_reader = core.flags.gate

    async def tools_changed() -> None:
        await announce(core.notifier, {"kind": "tools"})

    core.registry.on_change.append(tools_changed)
    return core


async def announce(notifier: Notifier, event: dict[str, Any]) -> None:
    """Publish a change hint after the change itself was stored: if Redis is down the hint is lost (and logged),
    but the change stands; clients refetch on their next list anyway."""
    try:
        await notifier.publish(event)
    except StoreUnavailable as exc:
        logger.warning("could not announce %s: %s", event.get("kind"), exc)


def run_until_shutdown(loop_fn: Callable[[asyncio.Event], Coroutine[Any, Any, None]], stack: AsyncExitStack) -> None:
    """Run `loop_fn(stop)` in the background; at shutdown set `stop` and wait for it to return, so work such as a
    database query is never cut off halfway."""
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(loop_fn(stop))

    async def halt() -> None:
        stop.set()
        await task

    stack.push_async_callback(halt)


def run_in_background(work: Coroutine[Any, Any, None], stack: AsyncExitStack) -> None:
    """Run `work` until shutdown cancels it: only for loops that hold no query open (they wait on queues)."""
    task = asyncio.get_running_loop().create_task(work)
    stack.callback(task.cancel)
