"""Audit log: who called which tool, with a digest of the arguments, the outcome and how long it took.

Arguments are never stored, only `sha256:` + the first 16 hex digits of their canonical JSON: enough to tell two
calls apart or match a known call, not to read a value back. Entries are queued by the tool-call hook and written
by a background task in batches, so a call never waits for the database unless the queue is full; `recent()`
writes the queue first, so it sees every finished call. Only the newest `retention` entries are kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from pydantic import BaseModel, Field
from sqlalchemy import Column, Float, Index, Integer, String, Table, delete, insert, select

from mcp_platform.capabilities import Capability, Started
from mcp_platform.context import ToolContext
from mcp_platform.core import Core
from mcp_platform.hooks import Hooks, ToolCallRecord
from mcp_platform.registry import tool
from mcp_platform.settings import Settings
from mcp_platform.stores.sql import STATE_METADATA, StateDB

__all__ = ["CAPABILITY", "AuditEntries", "AuditEntry", "AuditLog", "digest_arguments", "recent_tool_calls"]

logger = logging.getLogger(__name__)

AUDIT_LOG = Table(
    "audit_log",
    STATE_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("principal", String(256), nullable=False),
    Column("tool", String(128), nullable=False),
    Column("args_digest", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("request_id", String(128), nullable=True),
    Index("ix_audit_log_tool_id", "tool", "id"),
)

MAX_RECENT = 500


def digest_arguments(arguments: dict[str, Any]) -> str:
    """`sha256:` + 16 hex digits of the canonical JSON of `arguments` (sorted keys, no spaces)."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class AuditEntry(BaseModel):
    id: int
    at: float
    """When the call started, in seconds since the epoch."""
    time: str
    """The same instant in ISO 8601, UTC."""
    principal: str
    tool: str
    args_digest: str
    """Digest of the arguments; the values themselves are never kept."""
    outcome: str
    """ok, error, timeout, cancelled, denied or exception."""
    duration_ms: float
    request_id: str | None


class AuditEntries(BaseModel):
    entries: list[AuditEntry]
    """Newest first."""
    retention: int
    """How many entries the log keeps; older ones are gone."""
    truncated: bool = False
    """More entries matched than fit in one result: only the newest are shown. Ask for fewer, or filter by tool."""


class AuditLog:
    """The audit table, written in the background. `await start()` to run the writer, `await close()` to stop it
    after writing what is queued."""

    def __init__(self, db: StateDB, retention: int, *, max_pending: int = 1000) -> None:
        self._db = db
        self.retention = retention
        self._max_pending = max_pending
        self._pending: list[dict[str, Any]] = []
        self._lock = anyio.Lock()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._since_prune = 0

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._run(), name="audit-log-writer")

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
            self._writer = None
        await self.flush()

    async def on_tool_call(self, record: ToolCallRecord) -> None:
        self._pending.append({
            "at": record.started_at,
            "principal": record.principal[:256],
            "tool": record.tool[:128],
            "args_digest": digest_arguments(record.arguments),
            "outcome": str(record.outcome)[:16],
            "duration_ms": round(record.duration_s * 1000.0, 3),
            "request_id": None if record.request_id is None else str(record.request_id)[:128],
        })
        # A full queue (the database is slow or down) makes callers wait, rather than dropping entries.
        if self._closed or len(self._pending) >= self._max_pending:
            await self.flush()
        else:
            self._wake.set()

    async def _run(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    @property
    def _prune_every(self) -> int:
        # Often enough that the table never exceeds the retention by more than about 10%.
        return max(1, min(100, self.retention // 10))

    async def flush(self) -> None:
        """Write every queued entry (and drop the oldest beyond the retention, every so many writes)."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            try:
                async with self._db.engine.begin() as conn:
                    await conn.execute(insert(AUDIT_LOG), batch)
                    self._since_prune += len(batch)
                    if self._since_prune >= self._prune_every:
                        self._since_prune = 0
                        newest_dropped = (select(AUDIT_LOG.c.id).order_by(AUDIT_LOG.c.id.desc())
                                          .offset(self.retention).limit(1).scalar_subquery())
                        await conn.execute(delete(AUDIT_LOG).where(AUDIT_LOG.c.id <= newest_dropped))
            except Exception:
                logger.exception("could not write %d audit log entries; they are lost", len(batch))

    async def recent(self, limit: int = 20, tool: str | None = None) -> list[AuditEntry]:
        """The newest `limit` entries (of `tool`, if given), newest first."""
        await self.flush()
        query = select(AUDIT_LOG).order_by(AUDIT_LOG.c.id.desc()).limit(max(1, min(limit, MAX_RECENT)))
        if tool is not None:
            query = query.where(AUDIT_LOG.c.tool == tool)
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            AuditEntry(id=row.id, at=row.at, time=datetime.fromtimestamp(row.at, UTC).isoformat(),
                       principal=row.principal, tool=row.tool, args_digest=row.args_digest, outcome=row.outcome,
                       duration_ms=row.duration_ms, request_id=row.request_id)
            for row in rows
        ]


@tool(read_only=True, scope="admin", title="Recent tool calls")
async def recent_tool_calls(
    ctx: ToolContext,
    limit: Annotated[int, Field(ge=1, le=MAX_RECENT)] = 20,
    tool: Annotated[str | None, Field(min_length=1, max_length=128)] = None,
) -> AuditEntries:
    """Show the newest entries of the audit log: when each tool call started, who made it, which tool, a digest
    of its arguments (never the values), its outcome and duration. The call to this tool itself is not yet in it.

    Args:
        limit: How many entries, newest first (1-500).
        tool: Only calls of this tool.
    """
    audit = ctx.backend(AuditLog)
    entries = await audit.recent(limit, tool)
    max_bytes = ctx.settings.tools.max_result_bytes
    # The result travels twice (as text and as structured content), so each copy gets under half the cap.
    budget, used, kept = max_bytes // 2 - 1024, 0, 0
    for entry in entries:
        used += len(entry.model_dump_json()) + 1
        if used > budget:
            break
        kept += 1
    return AuditEntries(entries=entries[:kept], retention=audit.retention, truncated=kept < len(entries))


async def _start(core: Core, stack: AsyncExitStack) -> Started:
    audit = AuditLog(core.state_db, core.settings.audit.retention)
    await audit.start()
    stack.push_async_callback(audit.close)

    async def adopt(new: Settings) -> None:
        audit.retention = new.audit.retention

    return Started(backends=[audit], observers=Hooks(tool_call=[audit.on_tool_call]), on_reload=adopt)


CAPABILITY = Capability(name="audit", tools=[recent_tool_calls], start=_start)
