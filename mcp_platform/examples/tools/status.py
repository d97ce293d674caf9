"""Example tools built on the platform: feature flags, progress, logging and cancellation in a few lines.

Copy this file to start your own: any `@tool` function in a module under `tools/` is served at start.
"""

from __future__ import annotations

import anyio
from pydantic import BaseModel

from mcp_platform import ToolContext, ToolError, tool


class SiteStatus(BaseModel):
    open_for_orders: bool
    checkout_flow: str
    banner: str
    internal_notes: str | None = None


@tool(read_only=True, title="Site status")
async def site_status(ctx: ToolContext) -> SiteStatus:
    """What customers see right now, driven by the feature flags (maintenance_mode, new_checkout)."""
    maintenance = ctx.flag("maintenance_mode")
    return SiteStatus(
        open_for_orders=not maintenance,
        checkout_flow="new" if ctx.flag("new_checkout") else "classic",
        banner="We are down for maintenance; back soon." if maintenance else "",
        internal_notes="Deploy window: Tuesdays 02:00 UTC." if ctx.flag("show_internal_notes") else None,
    )


class Audit(BaseModel):
    checked: int
    problems: list[str]


@tool(read_only=True, title="Audit static assets", timeout=120)
async def audit_assets(ctx: ToolContext, delay_ms: int = 50) -> Audit:
    """Check that the site's key assets exist and are not empty, reporting progress and logging each step.

    Cancelling the call (or closing its stream) stops it between steps: the `await` raises, and the
    `finally` block below still runs.

    Args:
        delay_ms: Pause per step in milliseconds (0-1000), to make the progress visible.
    """
    if not 0 <= delay_ms <= 1000:
        raise ToolError("delay_ms must be between 0 and 1000")
    if ctx.flag("maintenance_mode"):
        await ctx.log("warning", "maintenance mode is on: results may be stale")
    root = anyio.Path(ctx.settings.static.root)
    checklist = ["index.html", "css/site.css", "js/app.js", "img/logo.png", "docs/getting-started.md"]
    problems: list[str] = []
    try:
        for done, asset in enumerate(checklist, start=1):
            path = root / asset
            if not await path.is_file():
                problems.append(f"{asset} is missing")
            elif (await path.stat()).st_size == 0:
                problems.append(f"{asset} is empty")
            await ctx.report_progress(done, len(checklist), f"checked {asset}")
            await ctx.log("info", f"checked {asset}")
            await anyio.sleep(delay_ms / 1000)
    finally:
        await ctx.log("debug", "audit finished or cancelled; cleanup ran")
    return Audit(checked=len(checklist), problems=problems)
