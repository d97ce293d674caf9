from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import func, select

from mcp_platform.capabilities.audit import AUDIT_LOG, AuditBacklog, AuditLog, digest_arguments, recent_tool_calls
from mcp_platform.context import Backends
from mcp_platform.errors import StoreUnavailable
from mcp_platform.hooks import ToolCallRecord
from mcp_platform.stores.sql import StateDB
from mcp_platform.tool_registry import Registry
from tests.capabilities.support import HOSTILE_STRINGS, call, context, principal, text
from tests.support import eventually, make_settings, state_url

SECRET = "correct horse battery staple"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[StateDB]:
    state = StateDB(state_url(tmp_path))
    await state.start()
    yield state
    await state.close()


@pytest.fixture
async def audit(db: StateDB) -> AsyncIterator[AuditLog]:
    log = AuditLog(db, retention=1000)
    await log.start()
    yield log
    await log.close()


def _record(tool: str = "set_feature_flag", who: str = "alice", **arguments: Any) -> ToolCallRecord:
    return ToolCallRecord(principal=who, tool=tool, arguments=arguments or {"name": "beta", "enabled": True},
                          outcome="ok", duration_s=0.0125, started_at=1_700_000_000.5, request_id=7)


async def _count(db: StateDB) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(AUDIT_LOG))).scalar_one())


def test_digest_is_canonical_and_short() -> None:
    first = digest_arguments({"b": 1, "a": [1, "x"]})
    assert first == digest_arguments({"a": [1, "x"], "b": 1})
    assert first != digest_arguments({"a": [1, "x"], "b": 2})
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 16
    assert digest_arguments({"weird": object(), "s": "\ud800"}).startswith("sha256:")


@pytest.mark.anyio
async def test_recent_sees_every_finished_call_with_principal_and_no_raw_value(audit: AuditLog) -> None:
    await audit.on_tool_call(_record(who="alice", password=SECRET))
    await audit.on_tool_call(_record(tool="query_records", who="bob", where={"email": SECRET}))
    entries = await audit.recent(10)
    assert [(e.principal, e.tool) for e in entries] == [("bob", "query_records"), ("alice", "set_feature_flag")]
    entry = entries[1]
    assert entry.args_digest == digest_arguments({"password": SECRET})
    assert (entry.outcome, entry.duration_ms, entry.request_id, entry.at) == ("ok", 12.5, "7", 1_700_000_000.5)
    assert entry.time.startswith("2023-11-14T22:13:20.5")
    assert SECRET not in json.dumps([e.model_dump() for e in entries])


@pytest.mark.anyio
async def test_filter_by_tool_and_limit(audit: AuditLog) -> None:
    for i in range(5):
        await audit.on_tool_call(_record(tool="a" if i % 2 else "b", n=i))
    assert [e.tool for e in await audit.recent(10, "a")] == ["a", "a"]
    assert len(await audit.recent(3)) == 3
    assert await audit.recent(10, "never_called") == []


@pytest.mark.anyio
async def test_retention_drops_the_oldest(db: StateDB) -> None:
    log = AuditLog(db, retention=20)
    await log.start()
    try:
        for i in range(95):
            await log.on_tool_call(_record(n=i))
        entries = await log.recent(500)
        assert await _count(db) <= 22
        assert entries[0].id == 95
        assert entries[-1].id >= 95 - 22
    finally:
        await log.close()


@pytest.mark.anyio
async def test_close_writes_what_is_queued(tmp_path: Path) -> None:
    db = StateDB(state_url(tmp_path))
    await db.start()
    log = AuditLog(db, retention=100)  # never started: nothing writes until close
    for i in range(3):
        await log.on_tool_call(_record(n=i))
    assert await _count(db) == 0
    await log.close()
    assert await _count(db) == 3
    await log.on_tool_call(_record(n=99))  # after close: written at once
    assert await _count(db) == 4
    await db.close()


@pytest.mark.anyio
async def test_finished_calls_never_wait_even_when_the_queue_is_full(db: StateDB) -> None:
    log = AuditLog(db, retention=100, max_pending=4)  # no writer running: nothing drains the queue
    with anyio.fail_after(5):
        for i in range(10):
            await log.on_tool_call(_record(n=i))
    assert await _count(db) == 0 and log.depth == 10
    await log.close()
    assert await _count(db) == 10


@pytest.mark.anyio
async def test_a_full_queue_admits_waiting_calls_in_arrival_order(db: StateDB) -> None:
    log = AuditLog(db, retention=100, max_pending=2, admit_timeout=30)
    await log.on_tool_call(_record(n=0))
    await log.on_tool_call(_record(n=1))
    admitted: list[int] = []

    async def caller(n: int) -> None:
        await log.admit("alice", "t")
        admitted.append(n)

    async def queued(count: int) -> None:
        await eventually(lambda: log.waiting >= count, interval=0, what=f"{count} callers queued")

    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(caller, n)
            await queued(n + 1)  # each caller is queued before the next one starts
        assert admitted == [] and log.waiting == 5
        await log.start()  # the writer drains the queue and lets the callers in, oldest first
    assert admitted == [0, 1, 2, 3, 4] and log.waiting == 0
    await log.close()


@pytest.mark.anyio
async def test_a_call_that_cannot_be_recorded_in_time_is_refused_before_it_runs(db: StateDB) -> None:
    log = AuditLog(db, retention=100, max_pending=1, admit_timeout=0.05)
    await log.on_tool_call(_record())
    with anyio.fail_after(5), pytest.raises(AuditBacklog) as refused:
        await log.admit("alice", "t")
    assert isinstance(refused.value, StoreUnavailable) and refused.value.retry_after == 1
    assert "audit log" in str(refused.value) and log.refused == 1 and log.waiting == 0
    await log.start()
    with anyio.fail_after(5):
        await log.admit("alice", "t")  # once written, calls run again at once
    await log.close()


@pytest.mark.anyio
async def test_the_writer_keeps_up_with_a_burst_and_keeps_the_retention(db: StateDB) -> None:
    log = AuditLog(db, retention=1000, max_pending=10_000)
    await log.start()
    for i in range(5000):
        await log.admit("alice", "t")
        await log.on_tool_call(_record(n=i))
    entries = await log.recent(1)
    assert entries[0].id == 5000
    assert 1000 <= await _count(db) <= 1100
    await log.close()


@pytest.mark.anyio
async def test_recent_tool_calls_tool(audit: AuditLog) -> None:
    await audit.on_tool_call(_record(who="alice", token=SECRET))
    backends = Backends()
    backends.add(audit)
    result = await call(recent_tool_calls, {"limit": 5}, context(backends, principal("root", "admin")))
    assert not result.is_error
    assert result.structured["retention"] == 1000
    assert [e["principal"] for e in result.structured["entries"]] == ["alice"]
    assert SECRET not in text(result)


@pytest.mark.anyio
async def test_recent_tool_calls_stays_under_the_result_cap(tmp_path: Path, audit: AuditLog) -> None:
    for i in range(500):
        await audit.on_tool_call(_record(who=f"principal-{i}", n=i))
    backends = Backends()
    backends.add(audit)
    settings = make_settings(tmp_path, tools={"max_result_bytes": 20_000})
    result = await call(recent_tool_calls, {"limit": 500}, context(backends, principal("root", "admin"),
                                                                   settings=settings))
    assert not result.is_error and result.structured["truncated"] is True
    assert len(text(result)) < 10_000
    entries = result.structured["entries"]
    assert 10 < len(entries) < 500 and entries[0]["principal"] == "principal-499"
    small = await call(recent_tool_calls, {"limit": 5}, context(backends, principal("root", "admin"),
                                                                settings=settings))
    assert small.structured["truncated"] is False and len(small.structured["entries"]) == 5


@pytest.mark.anyio
@pytest.mark.parametrize("arguments", [
    {"limit": 0}, {"limit": 501}, {"limit": 10**12}, {"limit": -1}, {"limit": "many"}, {"limit": 2.5},
    {"limit": None}, *({"tool": bad} for bad in HOSTILE_STRINGS if bad is not None and bad != "../../etc/passwd"
                         and bad != "\x00"), {"extra": True},
])
async def test_recent_tool_calls_rejects_hostile_arguments(audit: AuditLog, arguments: dict[str, Any]) -> None:
    backends = Backends()
    backends.add(audit)
    result = await call(recent_tool_calls, arguments, context(backends, principal("root", "admin")))
    assert result.is_error and len(text(result)) < 2000


@pytest.mark.anyio
async def test_odd_but_valid_tool_filters_find_nothing(audit: AuditLog) -> None:
    backends = Backends()
    backends.add(audit)
    for name in ("../../etc/passwd", "\x00", "' OR 1=1 --"):
        result = await call(recent_tool_calls, {"tool": name}, context(backends, principal("root", "admin")))
        assert not result.is_error and result.structured["entries"] == []


def test_tool_definition_matches_the_catalogue() -> None:
    built = Registry().add(recent_tool_calls)
    assert built.spec.scope == "admin" and built.definition["annotations"]["readOnlyHint"] is True
    limit = built.input_schema["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 500, 20)
    assert set(built.input_schema["properties"]) == {"limit", "tool"}


@pytest.mark.anyio
async def test_a_stalled_audit_log_refuses_new_calls_with_503_before_they_run(tmp_path: Path) -> None:
    """The state database is locked by another process (as a long migration or backup would): calls go on until
    the queue is full, then new ones get 503 with Retry-After without running, and everything recovers."""
    import sqlite3

    from mcp_platform.app import create_app
    from tests.support import asgi_client, modern_headers, modern_request

    settings = make_settings(tmp_path, audit={"max_pending": 1, "admit_timeout_seconds": 0.2},
                             rate_limit={"enabled": False})
    call_add = modern_request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
    async with asgi_client(create_app(settings)) as client:
        async def add() -> Any:
            return await client.post("/mcp", json=call_add, headers=modern_headers("tools/call", "add"))

        assert (await add()).status_code == 200
        lock = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
        with anyio.fail_after(10):
            # The first entry is committed before the database is locked (an empty queue is not enough: the writer
            # dequeues a batch before its transaction commits, and BEGIN EXCLUSIVE below blocks the event loop).
            while lock.execute("SELECT count(*) FROM audit_log").fetchone()[0] < 1:
                await anyio.sleep(0.01)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            statuses: list[int] = []
            with anyio.fail_after(10):
                while 503 not in statuses and len(statuses) < 5:
                    response = await add()
                    statuses.append(response.status_code)
            assert statuses[-1] == 503 and set(statuses[:-1]) == {200}, statuses
            assert response.headers["retry-after"] == "1" and "audit log" in response.text
            metrics = (await client.get("/metrics")).text
            assert "mcp_platform_audit_refused_calls_total 1.0" in metrics
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        async def admitted() -> Any:
            response = await add()
            return response if response.status_code == 200 else None

        retry = await eventually(admitted, timeout=10, what="a call admitted again")
        recent = modern_request("tools/call", {"name": "recent_tool_calls", "arguments": {"limit": 50}})
        listed = await client.post("/mcp", json=recent, headers=modern_headers("tools/call", "recent_tool_calls"))
        entries = listed.json()["result"]["structuredContent"]["entries"]
        # Every call that ran is recorded; the refused one never ran, so it is not there.
        assert [e["tool"] for e in entries].count("add") == 1 + (len(statuses) - 1) + 1
        assert retry.status_code == 200


@pytest.mark.anyio
async def test_a_writing_calls_entry_is_committed_when_the_hook_returns_and_a_stall_bounds_the_wait(
        db: StateDB) -> None:
    log = AuditLog(db, retention=100, admit_timeout=0.2)
    await log.start()
    try:
        await log.on_tool_call(_record())  # a writing call (read_only=False): committed by the time this returns
        assert await _count(db) == 1
        async with log._lock:  # the writer is stuck, as on a stalled database
            with anyio.fail_after(10):
                await log.on_tool_call(_record())  # gives up waiting after admit_timeout, the entry still queued
            assert await _count(db) == 1 and log.depth == 1
        await log.flush()
        assert await _count(db) == 2
    finally:
        await log.close()


@pytest.mark.anyio
async def test_entries_are_written_and_pruned_on_postgresql_too() -> None:
    # The writer executes its INSERT as driver SQL compiled for the dialect: positional on SQLite and asyncpg.
    from tests.services import drop_postgres_database, fresh_postgres_database, require_postgres

    base = require_postgres()
    url, name = await fresh_postgres_database(base)
    try:
        state = StateDB(url)
        await state.start()
        try:
            log = AuditLog(state, retention=10)
            await log.start()
            for n in range(25):
                await log.on_tool_call(_record(tool=f"tool_{n}", who="alice", n=n))
            entries = await log.recent(50)
            await log.close()
            assert [e.tool for e in entries][:3] == ["tool_24", "tool_23", "tool_22"]
            assert (entries[0].principal, entries[0].request_id, entries[0].duration_ms) == ("alice", "7", 12.5)
            assert entries[0].args_digest == digest_arguments({"n": 24})
            assert 10 <= await _count(state) <= 11  # pruned to the retention (once per retention // 10 entries)
        finally:
            await state.close()
    finally:
        await drop_postgres_database(base, name)
