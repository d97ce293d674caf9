"""Audit log: who called which tool, with a digest of the arguments, the outcome and how long it took.

Arguments are never stored, only `sha256:` + the first 16 hex digits of their canonical JSON: enough to tell two
calls apart or match a known call, not to read a value back. Entries are queued by the tool-call hook and written
by a background task in batches. A read-only call never waits for the database unless the queue is full; a call
of a tool that writes waits until its entry is committed (in the same batch as whatever else is queued), so the
reply never goes out before the record of the change it reports: a crash right after a write keeps the entry.
`recent()` writes the queue first, so it sees every finished call. Only the newest `retention` entries are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import deque
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import registry as prometheus_registry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from sqlalchemy import Column, Float, Index, Integer, String, Table, bindparam, delete, func, insert, select
from sqlalchemy.engine import Dialect

from mcp_platform.capabilities import Capability, MetricsText, Started
from mcp_platform.context import ToolContext
from mcp_platform.core import Core
from mcp_platform.errors import StoreUnavailable
from mcp_platform.hooks import Hooks, ToolCallRecord
from mcp_platform.registry import tool
from mcp_platform.settings import Settings
from mcp_platform.stores.sql import STATE_METADATA, StateDB

__all__ = ["CAPABILITY", "AuditBacklog", "AuditEntries", "AuditEntry", "AuditLog", "digest_arguments",
           "recent_tool_calls"]

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
_ENTRY_COLUMNS = ("at", "principal", "tool", "args_digest", "outcome", "duration_ms", "request_id")


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


class AuditBacklog(StoreUnavailable):
    """The audit log is so far behind that a new call could not be recorded in time: HTTP 503 with Retry-After,
    before the tool runs."""

    retry_after = 1


class AuditLog:
    """The audit table, written in the background. `await start()` to run the writer, `await close()` to stop it
    after writing what is queued.

    Back-pressure is fair and bounded, and sits before the call: `admit()` (a before-tool-call observer) lets a
    call through at once while fewer than `max_pending` entries wait to be written; beyond that, calls queue in
    arrival order for at most `admit_timeout` seconds and are then refused with `AuditBacklog`. A finished
    read-only call never waits: `on_tool_call` only appends; a finished writing call waits for the next batch's
    commit (one transaction for all entries queued meanwhile), for at most `admit_timeout` seconds. So no call
    runs that cannot be recorded, and none waits without bound; the writer takes everything queued in one
    transaction per batch, and prunes by id arithmetic (an indexed range delete) once per `retention // 10`
    entries, so it keeps up with thousands of calls a second.
    """

    def __init__(self, db: StateDB, retention: int, *, max_pending: int = 10_000, admit_timeout: float = 5.0,
                 batch_size: int = 5_000, linger: float = 0.1) -> None:
        self._db = db
        self.retention = retention
        self._max_pending = max_pending
        self._admit_timeout = admit_timeout
        self._batch_size = batch_size
        self._linger = linger
        self._pending: list[dict[str, Any]] = []
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._lock = anyio.Lock()
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._since_prune = 0
        self._queued = 0
        """Entries ever queued; an entry's sequence number is the count after it was queued."""
        self._taken = 0
        """Entries ever taken out of the queue by a batch that finished (committed, or logged as lost)."""
        self._durable: deque[tuple[int, asyncio.Future[None]]] = deque()
        """Writing calls waiting for their entry's batch, in sequence order."""
        self._insert: tuple[Dialect, str, tuple[str, ...] | None] | None = None
        self.refused = 0
        """Calls refused because the log was too far behind (exported as a metric)."""

    @property
    def depth(self) -> int:
        """Entries waiting to be written."""
        return len(self._pending)

    @property
    def waiting(self) -> int:
        """Calls waiting for room in the queue before they may run."""
        return len(self._waiters)

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._run(), name="audit-log-writer")

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._urgent.set()
        if self._writer is not None:
            await self._writer
            self._writer = None
        await self.flush()
        self._release(everyone=True)

    async def admit(self, principal: str, tool: str) -> None:
        """Wait, in arrival order and for a bounded time, until the call can be recorded."""
        if not self._waiters and len(self._pending) < self._max_pending:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        self._urgent.set()
        try:
            async with asyncio.timeout(self._admit_timeout):
                await waiter
        except BaseException as exc:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            if not isinstance(exc, TimeoutError):
                raise
            self.refused += 1
            raise AuditBacklog("audit log", f"it is {len(self._pending)} entries behind, so the call was not run; "
                                            "retry shortly") from None

    def _release(self, *, everyone: bool = False) -> None:
        """Once there is room again, let every waiting call run, oldest first. Each waiter is a request in flight,
        so the queue overshoots `max_pending` by at most the number of concurrent calls."""
        if not everyone and len(self._pending) >= self._max_pending:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def on_tool_call(self, record: ToolCallRecord) -> None:
        """Queue the entry; for a tool that writes, also wait until the batch holding it has been written."""
        self._pending.append({
            "at": record.started_at,
            "principal": record.principal[:256],
            "tool": record.tool[:128],
            "args_digest": digest_arguments(record.arguments),
            "outcome": str(record.outcome)[:16],
            "duration_ms": round(record.duration_s * 1000.0, 3),
            "request_id": None if record.request_id is None else str(record.request_id)[:128],
        })
        self._queued += 1
        if self._closed:
            await self.flush()
            return
        self._wake.set()
        if record.read_only or self._writer is None:  # not started: nothing writes until close
            return
        done = asyncio.get_running_loop().create_future()
        self._durable.append((self._queued, done))
        self._urgent.set()  # a reply waits on this entry: no lingering for more
        try:
            # Bounded like admission: a stalled state database delays the reply, it does not hang it. Cancelled or
            # timed out, the entry stays queued and is still written.
            async with asyncio.timeout(self._admit_timeout):
                await done
        except TimeoutError:
            logger.warning("the audit entry of a %s call is not committed after %.1f s; replying without it",
                           record.tool[:128], self._admit_timeout)

    async def _run(self) -> None:
        while not self._closed:
            await self._wake.wait()
            if not (self._waiters or self._durable or self._closed) and len(self._pending) < self._batch_size:
                # Let entries gather so one transaction carries many: a batch costs about as much as forty
                # entries. Nobody waits for it: `recent()` and `close()` flush first, and calls waiting for room
                # (`admit`) or for their entry to be durable (a tool that writes) skip the linger.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._linger):
                        await self._urgent.wait()
            self._wake.clear()
            self._urgent.clear()
            await self.flush()

    @property
    def _prune_every(self) -> int:
        # Often enough that the table never exceeds the retention by more than about 10%, and never more than
        # once per thousand entries, since each prune is a statement of its own.
        return max(1, min(1000, self.retention // 10))

    async def flush(self) -> None:
        """Write every queued entry, a batch per transaction (and drop the entries beyond the retention)."""
        async with self._lock:
            while self._pending:
                batch = self._pending[:self._batch_size]
                del self._pending[:self._batch_size]
                await self._write(batch)
                self._taken += len(batch)
                while self._durable and self._durable[0][0] <= self._taken:
                    waiter = self._durable.popleft()[1]
                    if not waiter.done():
                        waiter.set_result(None)
                self._release()

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            async with self._db.engine.begin() as conn:
                sql, columns = self._insert_statement(conn.dialect)
                rows = [tuple(entry[c] for c in columns) for entry in batch] if columns is not None else batch
                await conn.exec_driver_sql(sql, rows)
                self._since_prune += len(batch)
                if self._since_prune >= self._prune_every:
                    self._since_prune = 0
                    # Ids only grow, so everything at or below (newest id - retention) is beyond the retention:
                    # a range delete on the primary key, instead of counting rows.
                    newest = select(func.max(AUDIT_LOG.c.id)).scalar_subquery()
                    await conn.execute(delete(AUDIT_LOG).where(AUDIT_LOG.c.id <= newest - self.retention))
        except Exception:
            logger.exception("could not write %d audit log entries; they are lost", len(batch))

    def _insert_statement(self, dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
        """The INSERT compiled once for the database's dialect, and the column order of its positional parameters
        (None: named). Executed as driver SQL, so a batch costs the driver's executemany and not SQLAlchemy's
        per-row parameter processing, which was most of the writer's time."""
        if self._insert is None or self._insert[0] is not dialect:
            statement = insert(AUDIT_LOG).inline().values({c: bindparam(c) for c in _ENTRY_COLUMNS})
            compiled = statement.compile(dialect=dialect)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            self._insert = (dialect, str(compiled), order)
        return self._insert[1], self._insert[2]

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


def _metrics_text(audit: AuditLog) -> MetricsText:
    """The audit queue's depth, waiting calls and refusals, for `/metrics`."""

    class Collector(prometheus_registry.Collector):
        def collect(self) -> Iterator[Metric]:
            yield GaugeMetricFamily("mcp_platform_audit_queue_depth", "Audit log entries waiting to be written.",
                                    value=audit.depth)
            yield GaugeMetricFamily("mcp_platform_audit_waiting_calls",
                                    "Tool calls waiting for room in the audit queue before they run.",
                                    value=audit.waiting)
            yield CounterMetricFamily("mcp_platform_audit_refused_calls",
                                      "Tool calls refused with 503 because the audit log was too far behind.",
                                      value=audit.refused)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return lambda: (generate_latest(registry), str(CONTENT_TYPE_LATEST))


async def _start(core: Core, stack: AsyncExitStack) -> Started:
    audit = AuditLog(core.state_db, core.settings.audit.retention, max_pending=core.settings.audit.max_pending,
                     admit_timeout=core.settings.audit.admit_timeout_seconds)
    await audit.start()
    stack.push_async_callback(audit.close)

    async def adopt(new: Settings) -> None:
        audit.retention = new.audit.retention

    observers = Hooks(before_tool_call=[audit.admit], tool_call=[audit.on_tool_call])
    return Started(backends=[audit], observers=observers, on_reload=adopt, metrics=_metrics_text(audit))


CAPABILITY = Capability(name="audit", tools=[recent_tool_calls], start=_start)
