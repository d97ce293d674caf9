"""Shared helpers for the platform-capability tests: settings, a state database, and calling a tool as dispatch does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_platform.auth_types import Principal, expand_scopes
from mcp_platform.context import Backends, ToolContext
from mcp_platform.errors import ToolError
from mcp_platform.registry import Registry
from mcp_platform.results import ToolResult, error_result
from mcp_platform.settings import Settings

HOSTILE_STRINGS: tuple[Any, ...] = ("", "x" * 100_000, 42, None, ["a"], {"a": 1}, True, "../../etc/passwd", "\x00")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def principal(name: str = "alice", *scopes: str) -> Principal:
    return Principal(name=name, scopes=expand_scopes(list(scopes or ["read"])))


def state_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    overrides.setdefault("static", {"root": tmp_path})
    overrides.setdefault("state", {"url": state_url(tmp_path)})
    return Settings(**overrides)


def context(backends: Backends, who: Principal | None = None, tool_name: str = "test") -> ToolContext:
    return ToolContext(principal=who or principal(), tool_name=tool_name, request_id=1, protocol_version="2025-11-25",
                       backends=backends)


async def call(fn: Callable[..., Any], arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
    """Call `fn` as a registered tool, turning `ToolError` into an error result as dispatch does."""
    tool = Registry().add(fn)
    try:
        return await tool.call(arguments, ctx, 60.0)
    except ToolError as exc:
        return error_result(str(exc))


def text(result: ToolResult) -> str:
    return "\n".join(block.get("text", "") for block in result.content)
