"""Which tools a deployment exposes: `tools.enabled`, `tools.disabled` and `tools.read_only`, decided per tool.

An entry names a tool (`query_records`), matches tool names with an fnmatch glob (`*_record`, `get_?ecord`,
`[cd]*`), or names a toolset: `toolset:orm` (a glob too, `toolset:*`). A tool's toolset is the capability that
brings it (`config`, `flags`, `metrics`, `ratelimit`, `audit`, `static`, `orm`) or, for a discovered tool, its
module's name (`tools/shop.py` -> `shop`). A tool is exposed when an `enabled` entry matches it and no `disabled`
entry does (disabled wins), and, under `read_only`, only if it is read-only (read-only overrides both lists). A
hidden tool is absent from `tools/list` and unknown to `tools/call`, for every token, before scopes are applied.

The decision runs when the tool set or the settings change (start, config reload), never per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from mcp_platform.settings import TOOLSET_PREFIX, ToolSettings

__all__ = ["TOOLSET_PREFIX", "Exposure"]


def _matches(entry: str, name: str, toolset: str) -> bool:
    if entry.startswith(TOOLSET_PREFIX):
        return fnmatchcase(toolset, entry[len(TOOLSET_PREFIX):])
    return fnmatchcase(name, entry)


def _first_match(entries: Sequence[str], name: str, toolset: str) -> str | None:
    return next((entry for entry in entries if _matches(entry, name, toolset)), None)


@dataclass(frozen=True)
class Exposure:
    """The exposure rules of one settings object (`Exposure.of(settings.tools)`); the default exposes all."""

    enabled: tuple[str, ...] = ("*",)
    disabled: tuple[str, ...] = ()
    read_only: bool = False

    @classmethod
    def of(cls, tools: ToolSettings) -> Exposure:
        return cls(enabled=tuple(tools.enabled), disabled=tuple(tools.disabled), read_only=tools.read_only)

    def hidden_because(self, name: str, toolset: str, *, read_only: bool) -> str | None:
        """Why the tool is hidden (every reason, `; `-joined), or `None` when it is exposed."""
        reasons = []
        if (entry := _first_match(self.disabled, name, toolset)) is not None:
            reasons.append(f"disabled by {entry!r}")
        elif _first_match(self.enabled, name, toolset) is None:
            reasons.append("matched by no tools.enabled entry")
        if self.read_only and not read_only:
            reasons.append("writes, and the server is read-only")
        return "; ".join(reasons) or None

    def unmatched(self, tools: Iterable[tuple[str, str]]) -> list[str]:
        """Entries of either list that match no tool and no toolset among `tools` ((name, toolset) pairs): worth a
        warning (a typo?), not an error, since tool modules come and go."""
        known = list(tools)
        return [entry for entry in dict.fromkeys([*self.enabled, *self.disabled])
                if not any(_matches(entry, name, toolset) for name, toolset in known)]
