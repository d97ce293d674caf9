"""Shared helpers for the platform-capability tests: a principal, a tool context, and calling a tool as dispatch does
(settings and the clock are `tests.support`'s)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp_platform.auth_types import Principal, expand_scopes
from mcp_platform.context import Backends, ToolContext
from mcp_platform.errors import ToolError
from mcp_platform.registry import Registry
from mcp_platform.results import ToolResult, error_result

HOSTILE_STRINGS: tuple[Any, ...] = ("", "x" * 100_000, 42, None, ["a"], {"a": 1}, True, "../../etc/passwd", "\x00")


def principal(name: str = "alice", *scopes: str) -> Principal:
    return Principal(name=name, scopes=expand_scopes(list(scopes or ["read"])))


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
