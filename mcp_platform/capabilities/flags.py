"""Feature flags: declared in the settings, switched at run time, persisted in the state database.

A flag's value is the one stored by `set_feature_flag`, or its declared default when none was stored. Values
are cached in memory so `get()` costs no query; the cache is refreshed on every `set()` and by `refresh()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import Boolean, Column, Float, String, Table, delete, insert, select

from mcp_platform.capabilities import Capability, Started
from mcp_platform.context import ToolContext
from mcp_platform.core import Core, announce, run_until_shutdown
from mcp_platform.errors import ToolError
from mcp_platform.registry import tool
from mcp_platform.settings import FeatureFlag, Settings
from mcp_platform.stores.base import Notifier
from mcp_platform.stores.sql import STATE_METADATA, StateDB, reachable

__all__ = ["CAPABILITY", "FlagList", "FlagState", "FlagStore", "UnknownFlagError", "feature_flags",
           "set_feature_flag"]

FEATURE_FLAGS = Table(
    "feature_flags",
    STATE_METADATA,
    Column("name", String(128), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(256), nullable=False),
)

logger = logging.getLogger(__name__)

_NAMES_SHOWN = 50


class FlagState(BaseModel):
    name: str
    enabled: bool
    default: bool | None
    """The declared default; null for a stored flag that is no longer declared."""
    description: str
    source: Literal["default", "store", "undeclared"]
    """`default`: never set, so the declared default applies. `store`: set at run time. `undeclared`: a stored
    value whose flag the config no longer declares (it has no effect)."""
    updated_at: float | None = None
    """When it was last set (seconds since the epoch), if ever."""
    updated_by: str | None = None
    """Who last set it, if anyone."""


class FlagList(BaseModel):
    flags: list[FlagState]


class UnknownFlagError(KeyError):
    """A flag name that the settings do not declare; the message lists those that they do."""

    def __init__(self, name: str, known: list[str]) -> None:
        shown = ", ".join(known[:_NAMES_SHOWN]) + (f" (and {len(known) - _NAMES_SHOWN} more)"
                                                   if len(known) > _NAMES_SHOWN else "")
        self.message = (f"unknown feature flag {name[:128]!r}; declared flags are: {shown}" if known
                        else f"unknown feature flag {name[:128]!r}; no feature flags are declared in the settings")
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class _Stored:
    enabled: bool
    updated_at: float
    updated_by: str


class FlagStore:
    """Flag values over the state database. `await load()` before use."""

    def __init__(self, db: StateDB, declared: Mapping[str, FeatureFlag], *,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._declared = dict(declared)
        self._clock = clock
        self._stored: dict[str, _Stored] = {}
        self.on_change: list[Callable[[str, bool], Awaitable[None]]] = []
        """Awaited after a value is stored: (flag name, new value). The app hides or shows flag-gated tools."""

    async def load(self) -> None:
        """Read every stored value into memory (at start, or to see changes other instances made)."""
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(select(FEATURE_FLAGS))).all()
        self._stored = {row.name: _Stored(bool(row.enabled), row.updated_at, row.updated_by) for row in rows}

    refresh = load

    def update_declarations(self, flags: Mapping[str, FeatureFlag]) -> None:
        """Adopt the flags a reloaded config declares; stored values are kept, even for flags no longer declared."""
        self._declared = dict(flags)

    def known(self) -> list[str]:
        return sorted(self._declared)

    def _check(self, name: str) -> FeatureFlag:
        declared = self._declared.get(name)
        if declared is None:
            raise UnknownFlagError(name, self.known())
        return declared

    def is_enabled(self, name: str) -> bool:
        """The flag's value, from memory. Raises `UnknownFlagError` for a flag that is not declared."""
        declared = self._check(name)
        stored = self._stored.get(name)
        return stored.enabled if stored is not None else declared.default

    async def get(self, name: str) -> bool:
        return self.is_enabled(name)

    def state(self, name: str) -> FlagState:
        declared = self._declared.get(name)
        stored = self._stored.get(name)
        if declared is None and stored is None:
            raise UnknownFlagError(name, self.known())
        if declared is None:
            assert stored is not None
            return FlagState(name=name, enabled=stored.enabled, default=None, description="", source="undeclared",
                             updated_at=stored.updated_at, updated_by=stored.updated_by)
        if stored is None:
            return FlagState(name=name, enabled=declared.default, default=declared.default,
                             description=declared.description, source="default")
        return FlagState(name=name, enabled=stored.enabled, default=declared.default, description=declared.description,
                         source="store", updated_at=stored.updated_at, updated_by=stored.updated_by)

    async def values(self) -> list[FlagState]:
        """Every declared flag, and every stored one no longer declared, sorted by name."""
        return [self.state(name) for name in sorted({*self._declared, *self._stored})]

    async def set(self, name: str, enabled: bool, by: str) -> FlagState:
        """Store a declared flag's value, recording who set it and when."""
        self._check(name)
        stored = _Stored(enabled=enabled, updated_at=self._clock(), updated_by=by[:256])
        # Delete-then-insert in one transaction: an upsert that every SQL dialect understands.
        async with reachable("state database"), self._db.engine.begin() as conn:
            await conn.execute(delete(FEATURE_FLAGS).where(FEATURE_FLAGS.c.name == name))
            await conn.execute(insert(FEATURE_FLAGS).values(name=name, enabled=stored.enabled,
                                                            updated_at=stored.updated_at, updated_by=stored.updated_by))
        changed = self.is_enabled(name) != enabled
        self._stored[name] = stored
        if changed:
            for callback in self.on_change:
                await callback(name, enabled)
        return self.state(name)

    def is_on(self, name: str) -> bool:
        """Like `is_enabled`, but an undeclared flag is simply off (for gating, where raising helps nobody)."""
        try:
            return self.is_enabled(name)
        except UnknownFlagError:
            return False


@tool(read_only=True, title="Feature flags")
async def feature_flags(ctx: ToolContext) -> FlagList:
    """List every feature flag with its current value, declared default and description, and where the value
    comes from (`default`, `store` when set at run time, or `undeclared` for a leftover the config dropped)."""
    return FlagList(flags=await ctx.backend(FlagStore).values())


@tool(read_only=False, destructive=False, idempotent=True, title="Set a feature flag")
async def set_feature_flag(
    ctx: ToolContext,
    name: Annotated[str, Field(min_length=1, max_length=128)],
    enabled: bool,
) -> FlagState:
    """Turn a declared feature flag on or off. The value is persisted and survives restarts; the result is the
    flag after the change. Use `feature_flags` to see which flags exist.

    Args:
        name: The flag's name, as listed by `feature_flags`.
        enabled: The new value.
    """
    store = ctx.backend(FlagStore)
    try:
        return await store.set(name, enabled, by=ctx.principal.name)
    except UnknownFlagError as exc:
        raise ToolError(str(exc)) from None


async def _start(core: Core, stack: AsyncExitStack) -> Started:
    store = FlagStore(core.state_db, core.settings.flags)
    await store.load()
    core.flags.provide(store)

    async def tools_changed_here() -> None:
        # Each instance tells its own clients, once its own copy of the flag changed: a list_changed forwarded from
        # the instance that flipped it would reach this one's clients before this one lists the new tools, and a
        # client that lists at once would keep the old list.
        await core.notifier.publish_here({"kind": "tools"})  # in process: it cannot fail on an outage

    async def flipped(name: str, enabled: bool) -> None:
        # Flag-gated tools appear and disappear with their flag, on every instance: the one that flipped it tells
        # the others to reload their copy.
        await announce(core.bus, {"kind": "flag", "name": name})
        if name in core.registry.gating_flags():
            await tools_changed_here()

    store.on_change.append(flipped)
    run_until_shutdown(functools.partial(_reload_on_flag_events, store, core.bus, core.registry.gating_flags,
                                         tools_changed_here), stack)

    async def adopt(new: Settings) -> None:
        store.update_declarations(new.flags)

    return Started(backends=[store], on_reload=adopt)


async def _reload_on_flag_events(store: FlagStore, bus: Notifier, gating: Callable[[], tuple[str, ...]],
                                 tools_changed: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Reload the flags whenever an instance changed one (this one too: its copy is already current, so nothing
    changes), and call `tools_changed` when a flag that gates a tool changed here by it. Stops only between
    events, so a reload is never cut off halfway through its query."""
    events = bus.subscribe()
    stopping = asyncio.ensure_future(stop.wait())
    upcoming: asyncio.Future[dict[str, Any]] | None = None
    try:
        while True:
            upcoming = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({upcoming, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                return
            if upcoming.result().get("kind") == "flag":
                before = {name: store.is_on(name) for name in gating()}
                try:
                    await store.load()
                except Exception:  # the state database may be down; the next flag event retries
                    logger.warning("could not reload feature flags after a change elsewhere", exc_info=True)
                    continue
                if any(store.is_on(name) != on for name, on in before.items()):
                    await tools_changed()
    finally:
        stopping.cancel()
        if upcoming is not None and not upcoming.done():
            upcoming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upcoming  # the generator must have stopped before it can be closed
        await events.aclose()  # type: ignore[attr-defined]


CAPABILITY = Capability(name="flags", tools=[feature_flags, set_feature_flag], start=_start)
