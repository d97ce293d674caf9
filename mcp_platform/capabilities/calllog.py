"""The tool-call log: one INFO record per finished tool call, with tool, principal, outcome, duration and request
id as record fields (the JSON log format writes them as keys) -- never the arguments, which may hold anything.

On by default with `log.format = "json"` and off with text (`log.tool_calls` decides either way; a reload applies).
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from mcp_platform.capabilities import Capability, Started
from mcp_platform.core import Core
from mcp_platform.hooks import Hooks, ToolCallRecord
from mcp_platform.settings import Settings

__all__ = ["CAPABILITY", "CallLog"]

logger = logging.getLogger("mcp_platform.calls")


def _enabled(settings: Settings) -> bool:
    wanted = settings.log.tool_calls
    return settings.log.format == "json" if wanted is None else wanted


class CallLog:
    def __init__(self, settings: Settings) -> None:
        self.enabled = _enabled(settings)

    async def on_tool_call(self, record: ToolCallRecord) -> None:
        if not self.enabled or not logger.isEnabledFor(logging.INFO):
            return
        duration_ms = round(record.duration_s * 1000, 3)
        # `record.arguments` stays out: only names, the outcome and the time are written.
        logger.info("tool call %s by %s: %s in %.1f ms", record.tool, record.principal, record.outcome, duration_ms,
                    extra={"tool": record.tool, "principal": record.principal, "outcome": record.outcome,
                           "duration_ms": duration_ms, "request_id": record.request_id})

    async def adopt(self, settings: Settings) -> None:
        self.enabled = _enabled(settings)


async def _start(core: Core, stack: AsyncExitStack) -> Started:
    calls = CallLog(core.settings)
    return Started(observers=Hooks(tool_call=[calls.on_tool_call]), on_reload=calls.adopt)


CAPABILITY = Capability(name="calllog", start=_start)
