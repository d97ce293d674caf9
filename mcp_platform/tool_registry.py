"""The registry: the tools one server serves, by name, in a stable order, filtered by the deployment's exposure
rules, the caller's scopes and feature flags. `registry.py` declares and builds a tool; this module holds the set."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from mcp_platform.auth_types import Principal
from mcp_platform.errors import ConfigError
from mcp_platform.exposure import Exposure
from mcp_platform.registry import Tool, ToolSpec, spec_of

__all__ = ["Registry"]


class Registry:
    """Tools by name, listed in a stable order and filtered by the deployment's exposure rules (`expose`), the
    caller's scopes and feature flags. A hidden tool stays registered (a reload may expose it again) but `get`,
    `all`, `len` and `in` see only exposed tools; `hidden()` lists the others with the reason.

    `on_change` callbacks run (in order, awaited by whoever changed the set) whenever what clients see changes:
    a tool added, removed or redefined. A flag that gates a tool is announced by the flags capability instead, on
    each instance once that instance has the new value (the listing cache is keyed by the flags' state).
    """

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._discovered: set[str] = set()
        self._toolsets: dict[str, str] = {}
        self._exposure = Exposure()
        self._hidden: dict[str, str] = {}
        """Tool name -> why this deployment does not expose it."""
        self._listing: dict[tuple[frozenset[str], tuple[bool, ...]], list[Tool]] = {}
        self._gating: tuple[str, ...] | None = None
        self.flag_reader: Callable[[str], bool] = lambda _name: True
        self.on_change: list[Callable[[], Awaitable[None]]] = []

    def add(self, spec_or_fn: ToolSpec | Callable[..., Any], *, discovered: bool = False,
            toolset: str | None = None) -> Tool:
        """Register a tool in `toolset` (the capability's name; by default its module's last name, which for a
        discovered tool is its file's stem, `tools/shop.py` -> `shop`)."""
        spec = spec_or_fn if isinstance(spec_or_fn, ToolSpec) else spec_of(spec_or_fn)
        if spec is None:
            raise ConfigError(f"{spec_or_fn!r} is not decorated with @tool")
        if spec.name in self._tools and self._tools[spec.name].fn is not spec.fn:
            raise ConfigError(f"two tools are named {spec.name!r}")
        built = Tool(spec)
        self._tools[spec.name] = built
        self._toolsets[spec.name] = toolset or spec.fn.__module__.rpartition(".")[2]
        self._decide(spec.name)
        if discovered:
            self._discovered.add(spec.name)
        self._listing.clear()
        self._gating = None
        return built

    def add_all(self, objects: Iterable[object]) -> list[Tool]:
        return [self.add(spec) for obj in objects if (spec := spec_of(obj)) is not None]

    def remove(self, name: str) -> None:
        self._tools.pop(name, None)
        self._toolsets.pop(name, None)
        self._hidden.pop(name, None)
        self._discovered.discard(name)
        self._listing.clear()
        self._gating = None

    def sync_discovered(self, specs: Iterable[ToolSpec]) -> tuple[bool, dict[str, str]]:
        """Make the discovered tools exactly `specs` (after a reload re-scanned the tool folders); built-in tools
        are untouched. Returns whether the visible set changed, and tools that could not be added."""
        failures: dict[str, str] = {}
        before = {name: self._tools[name].definition for name in self._discovered if name not in self._hidden}
        incoming = {spec.name: spec for spec in specs}
        for name in list(self._discovered):
            if name not in incoming:
                self.remove(name)
        for name, spec in incoming.items():
            current = self._tools.get(name)
            if current is not None and name not in self._discovered:
                failures[name] = f"a built-in tool is already named {name!r}"
                continue
            if current is not None and current.fn is spec.fn:
                continue
            self._tools.pop(name, None)
            try:
                self.add(spec, discovered=True)
            except ConfigError as exc:
                failures[name] = str(exc)
        after = {name: self._tools[name].definition for name in self._discovered if name not in self._hidden}
        self._listing.clear()
        self._gating = None
        return before != after, failures

    def expose(self, exposure: Exposure) -> bool:
        """Apply `exposure` to every registered tool (and to those added later). Returns whether the exposed set
        changed; the caller then awaits `changed()` so clients hear of it."""
        before = set(self._tools) - set(self._hidden)
        self._exposure = exposure
        self._hidden.clear()
        for name in self._tools:
            self._decide(name)
        self._listing.clear()
        self._gating = None
        return set(self._tools) - set(self._hidden) != before

    def _decide(self, name: str) -> None:
        reason = self._exposure.hidden_because(name, self._toolsets[name], read_only=self._tools[name].spec.read_only)
        if reason is None:
            self._hidden.pop(name, None)
        else:
            self._hidden[name] = reason

    def hidden(self) -> list[tuple[Tool, str]]:
        """The registered tools this deployment does not expose, with why, sorted by name."""
        return [(self._tools[name], self._hidden[name]) for name in sorted(self._hidden)]

    def toolset(self, name: str) -> str | None:
        """The toolset of a registered tool (exposed or hidden)."""
        return self._toolsets.get(name)

    def unmatched_entries(self) -> list[str]:
        """`tools.enabled` / `tools.disabled` entries that match no registered tool and no toolset."""
        return self._exposure.unmatched(self._toolsets.items())

    async def changed(self) -> None:
        """Tell listeners the tool list changed (callers: after a sync)."""
        self._listing.clear()
        self._gating = None
        for callback in self.on_change:
            await callback()

    def gating_flags(self) -> tuple[str, ...]:
        """The flags that gate some exposed tool, sorted; recomputed only when the tool set changes."""
        if self._gating is None:
            self._gating = tuple(sorted({t.spec.flag for t in self.all() if t.spec.flag is not None}))
        return self._gating

    def get(self, name: str) -> Tool | None:
        """The tool if it exists, is exposed and its flag (if any) is on."""
        found = self._tools.get(name)
        if name in self._hidden:
            return None
        if found is not None and found.spec.flag is not None and not self.flag_reader(found.spec.flag):
            return None
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._tools and name not in self._hidden

    def __len__(self) -> int:
        return len(self._tools) - len(self._hidden)

    def all(self) -> list[Tool]:
        """The exposed tools, sorted by name."""
        return [self._tools[name] for name in sorted(self._tools) if name not in self._hidden]

    def visible_to(self, principal: Principal) -> list[Tool]:
        """Tools `principal` may call, sorted by name; cached per scope set and flag state (it is on every
        tools/list)."""
        flags = self.gating_flags()
        state = tuple(self.flag_reader(flag) for flag in flags)
        key = (principal.scopes, state)
        cached = self._listing.get(key)
        if cached is None:
            enabled = {flag for flag, on in zip(flags, state, strict=True) if on}
            cached = [t for t in self.all() if principal.allows(t.spec.scope)
                      and (t.spec.flag is None or t.spec.flag in enabled)]
            self._listing[key] = cached
        return cached
