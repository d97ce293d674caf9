"""Shared helpers for the platform-capability tests: a principal, a tool context, and calling a tool as dispatch does
(settings and the clock are `tests.support`'s)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from types import ModuleType
from typing import Any

from mcp_platform.auth_types import Principal, expand_scopes
from mcp_platform.capabilities import Capability, start_capabilities
from mcp_platform.config_reload import ConfigManager
from mcp_platform.context import Backends, ToolContext
from mcp_platform.context import Clock as ServerClock
from mcp_platform.core import Core
from mcp_platform.discovery import Discovered
from mcp_platform.errors import ToolError
from mcp_platform.hooks import Hooks
from mcp_platform.prompts import Prompts
from mcp_platform.resources import Resources
from mcp_platform.results import ToolResult, error_result
from mcp_platform.settings import Settings
from mcp_platform.stores.memory import MemoryEventStore, MemoryNotifier, MemorySessionStore
from mcp_platform.stores.sql import StateDB
from mcp_platform.tool_registry import Registry

HOSTILE_STRINGS: tuple[Any, ...] = ("", "x" * 100_000, 42, None, ["a"], {"a": 1}, True, "../../etc/passwd", "\x00")


def principal(name: str = "alice", *scopes: str) -> Principal:
    return Principal(name=name, scopes=expand_scopes(list(scopes or ["read"])))


def host(backends: Backends | None = None, settings: Settings | None = None, *, state_db: StateDB | None = None,
         config: ConfigManager | None = None, modules: Sequence[ModuleType] = ()) -> Core:
    """A core like the app's, with in-process stores, holding `backends`. Its state database is `state_db` (the
    caller opens and closes it), else an in-memory one that is never opened."""
    settings = settings or (config.current if config is not None else Settings())
    sessions = MemorySessionStore(ttl_seconds=settings.sessions.ttl_seconds,
                                  max_sessions=settings.sessions.max_sessions)
    return Core(config=config or ConfigManager(settings), clock=ServerClock(),
                state_db=state_db or StateDB("sqlite+aiosqlite://"), registry=Registry(), resources=Resources(),
                prompts=Prompts(), hooks=Hooks(), notifier=MemoryNotifier(), events=MemoryEventStore(),
                bus=MemoryNotifier(), sessions=sessions, discovered=Discovered(modules=list(modules)),
                backends=backends if backends is not None else Backends())


async def start_capability(capability: Capability, stack: AsyncExitStack, settings: Settings | None = None,
                           **core: Any) -> Core:
    """A `host` core with `capability` started on it, as the app starts it (until `stack` closes)."""
    started = host(settings=settings, **core)
    await start_capabilities([capability], started, stack)
    return started


def context(backends: Backends | None = None, who: Principal | None = None, tool_name: str = "test", *,
            settings: Settings | None = None) -> ToolContext:
    return ToolContext(principal=who or principal(), tool_name=tool_name, request_id=1, protocol_version="2025-11-25",
                       core=host(backends, settings))


async def call(fn: Callable[..., Any], arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
    """Call `fn` as a registered tool, turning `ToolError` into an error result as dispatch does."""
    tool = Registry().add(fn)
    try:
        return await tool.call(arguments, ctx, 60.0)
    except ToolError as exc:
        return error_result(str(exc))


def text(result: ToolResult) -> str:
    return "\n".join(block.get("text", "") for block in result.content)
