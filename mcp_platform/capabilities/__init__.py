"""Capabilities: each module holds a backend and the tools that expose it, and declares a `CAPABILITY`.

A capability declares what it brings, and the app wires each part in without naming it:

    CAPABILITY = Capability(name="inventory", tools=[low_stock], resources=[stock_sheet], start=start)

    async def start(core: Core, stack: AsyncExitStack) -> Started:
        store = InventoryStore(core.state_db)          # or on `core.redis` when instances share state
        stack.push_async_callback(store.close)
        return Started(backends=[store],                # tools: ctx.backend(InventoryStore)
                       health={"inventory": store.health},               # reported by /readyz
                       observers=Hooks(tool_call=[store.on_tool_call]),  # request and tool-call observers
                       on_reload=store.adopt)                            # told the settings after a reload

Adding one is this module and one line in `default_capabilities()` (app.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from mcp_platform.config_reload import ReloadCallback
from mcp_platform.core import Core, HealthCheck
from mcp_platform.errors import ConfigError
from mcp_platform.hooks import Hooks
from mcp_platform.resources import ResourceProvider

__all__ = ["Capability", "Running", "Started", "StartFn", "start_capabilities"]

MetricsText = Callable[[], tuple[bytes, str]]
"""Prometheus exposition text and its content type, for `/metrics`."""


@dataclass(frozen=True)
class Started:
    """What a started capability brings; each part is wired in by `start_capabilities`."""

    backends: Sequence[object] = ()
    """Looked up by their type: tools reach them with `ctx.backend(Type)`."""
    resource_providers: Sequence[ResourceProvider] = ()
    """Families of resources listed and read on demand (e.g. every static file)."""
    health: Mapping[str, HealthCheck] = field(default_factory=dict)
    """Checks `/readyz` runs, by the name it reports them under."""
    observers: Hooks = field(default_factory=Hooks)
    """Request and tool-call observers, added to the server's hooks (and removed at shutdown)."""
    on_reload: ReloadCallback | None = None
    """Told the new settings after a config reload was applied."""
    metrics: MetricsText | None = None
    """What this capability adds to `/metrics`."""


StartFn = Callable[[Core, AsyncExitStack], Awaitable[Started]]
"""Start the backend with what the core offers; register its cleanup on the stack."""


async def _nothing(core: Core, stack: AsyncExitStack) -> Started:
    return Started()


@dataclass(frozen=True)
class Capability:
    name: str
    tools: Sequence[Callable[..., Any]] = ()
    """`@tool` functions, registered before any capability starts."""
    resources: Sequence[Callable[..., Any]] = ()
    """`@resource` functions (fixed resources or templates)."""
    start: StartFn = _nothing


@dataclass
class Running:
    """What the started capabilities added for the app's own routes."""

    health: dict[str, HealthCheck] = field(default_factory=dict)
    metrics: list[MetricsText] = field(default_factory=list)


async def start_capabilities(capabilities: Sequence[Capability], core: Core, stack: AsyncExitStack) -> Running:
    """Start each capability in order and wire in what it brings."""
    running = Running()
    for capability in capabilities:
        started = await capability.start(core, stack)
        for backend in started.backends:
            core.backends.add(backend)
        for provider in started.resource_providers:
            core.resources.add_provider(provider)
        for name, check in started.health.items():
            if name in running.health:
                raise ConfigError(f"capability {capability.name} reports health check {name!r}, which another "
                                  "capability already reports")
            running.health[name] = check
        stack.callback(core.hooks.include(started.observers))
        if started.on_reload is not None:
            core.config.on_reload.append(started.on_reload)
        if started.metrics is not None:
            running.metrics.append(started.metrics)
    return running
