"""OpenTelemetry at the protocol edge: every request gets its server span, `initialize` and the requests refused
before they became a call included (`error.type` the JSON-RPC code), and each handshake-era session that ends
records `mcp.server.session.duration`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mcp_platform import tracing
from mcp_platform.app import create_app
from mcp_platform.stores.base import SessionData
from mcp_platform.stores.memory import MemorySessionStore
from mcp_platform.stores.redis_client import connect
from mcp_platform.stores.redis_sessions import RedisSessionStore
from tests.services import require_redis
from tests.support import (
    JSON_HEADERS,
    TestClock,
    asgi_client,
    make_settings,
    modern_headers,
    modern_request,
    open_session,
)
from tests.transport.test_stdio_connection import INIT, connected

SESSION_METRIC = "mcp.server.session.duration"


class Traced:
    def __init__(self) -> None:
        self.spans, self.reader = InMemorySpanExporter(), InMemoryMetricReader()
        self.provider, self.meters = TracerProvider(), MeterProvider(metric_readers=[self.reader])
        self.provider.add_span_processor(SimpleSpanProcessor(self.spans))

    def only(self) -> ReadableSpan:
        finished = self.spans.get_finished_spans()
        assert len(finished) == 1, [s.name for s in finished]
        self.spans.clear()
        return finished[0]

    def points(self, name: str = SESSION_METRIC) -> list[HistogramDataPoint]:
        data = self.reader.get_metrics_data()
        found = [m for rm in (data.resource_metrics if data else []) for sm in rm.scope_metrics for m in sm.metrics
                 if m.name == name]
        return [p for m in found for p in m.data.data_points]  # type: ignore[misc]


@pytest.fixture
def traced() -> Iterator[Traced]:
    state = Traced()
    tracing.set_provider(state.provider, meter_provider=state.meters)
    try:
        yield state
    finally:
        tracing.set_provider(None)
        state.provider.shutdown()
        state.meters.shutdown()


def _refused_as(span: ReadableSpan, reply: Any, name: str) -> None:
    code = reply.json()["error"]["code"]
    assert span.name == name and (span.attributes or {})["error.type"] == str(code), (span.name, span.attributes)


@pytest.mark.anyio
async def test_initialize_has_its_span_with_the_session_it_opened(tmp_path: Path, traced: Traced) -> None:
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        session = await open_session(client, "2025-06-18")
    span = traced.only()
    assert span.name == "initialize" and dict(span.attributes or {}) == {
        "mcp.method.name": "initialize", "jsonrpc.request.id": "0", "network.transport": "tcp",
        "mcp.protocol.version": "2025-06-18", "mcp.session.id": session}


@pytest.mark.anyio
async def test_requests_refused_before_the_call_have_spans_with_the_code(tmp_path: Path, traced: Traced) -> None:
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        unknown = await client.post("/mcp", headers={**JSON_HEADERS, "mcp-session-id": "no-such-session"},
                                    json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
        assert unknown.status_code == 404
        _refused_as(traced.only(), unknown, "tools/list")

        bad_envelope = modern_request("tools/list")
        bad_envelope["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = "not an object"
        reply = await client.post("/mcp", json=bad_envelope, headers=modern_headers("tools/list"))
        span = traced.only()
        _refused_as(span, reply, "tools/list")
        assert (span.attributes or {})["mcp.protocol.version"] == "2026-07-28"

        mismatch = modern_request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        reply = await client.post("/mcp", json=mismatch, headers=modern_headers("tools/call", "not-echo"))
        _refused_as(traced.only(), reply, "tools/call echo")

        claimed = modern_request("tools/list")
        claimed["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "x" * 300
        reply = await client.post("/mcp", json=claimed, headers=modern_headers("tools/list") | {
            "mcp-protocol-version": "y" * 300})
        span = traced.only()
        _refused_as(span, reply, "tools/list")
        assert "mcp.protocol.version" not in (span.attributes or {})  # a version we do not know is not recorded


@pytest.mark.anyio
async def test_a_request_over_the_callers_budget_has_its_span(tmp_path: Path, traced: Traced) -> None:
    settings = make_settings(tmp_path, rate_limit={"per_minute": 1, "burst": 1})
    async with asgi_client(create_app(settings)) as client:
        for msg_id in (1, 2):
            reply = await client.post("/mcp", json=modern_request("tools/list", msg_id=msg_id),
                                      headers=modern_headers("tools/list"))
    assert reply.status_code == 429
    first, second = traced.spans.get_finished_spans()
    assert "error.type" not in (first.attributes or {})
    _refused_as(second, reply, "tools/list")


@pytest.mark.anyio
async def test_a_deleted_session_and_one_open_at_shutdown_record_their_duration(
        tmp_path: Path, traced: Traced) -> None:
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        deleted = await open_session(client)
        assert (await client.delete("/mcp", headers={"mcp-session-id": deleted})).status_code == 200
        [point] = traced.points()
        assert point.count == 1 and dict(point.attributes or {}) == {
            "mcp.protocol.version": "2025-11-25", "network.transport": "tcp"}
        await open_session(client)
    [point] = traced.points()  # the lifespan's end ended the second one
    assert point.count == 2 and 0 <= point.sum < 60
    assert not [p for p in traced.points("mcp.server.operation.duration")
                if (p.attributes or {}).get("error.type")]


def test_an_expired_session_ends_a_ttl_after_it_was_last_seen() -> None:
    clock, ended = TestClock(), []
    store = MemorySessionStore(ttl_seconds=10, max_sessions=5, clock=clock,
                               on_end=lambda data, late_by: ended.append((data.principal, late_by)))
    data = SessionData(protocol_version="2025-11-25", principal="alice", started_at=1.0)

    async def expire() -> None:
        session_id = await store.create(data)
        clock.advance(25)
        assert await store.get(session_id) is None

    anyio.run(expire)
    assert ended == [("alice", 15.0)]  # expired at 10 s, noticed at 25 s
    store.close()
    assert ended == [("alice", 15.0)]  # nothing left to end


@pytest.mark.anyio
async def test_a_session_deleted_from_redis_reports_its_data() -> None:
    client = connect(require_redis())
    ended: list[SessionData] = []
    try:
        await client.flushdb()
        store = RedisSessionStore(client, ttl_seconds=60, max_sessions=10, on_end=lambda d, _: ended.append(d))
        session_id = await store.create(SessionData(protocol_version="2025-03-26", principal="bob", started_at=5.0))
        assert await store.delete(session_id) is True
        assert await store.delete(session_id) is False  # a second DELETE ends nothing
    finally:
        await client.aclose()
    assert [(d.principal, d.started_at) for d in ended] == [("bob", 5.0)]


@pytest.mark.anyio
async def test_a_stdio_session_ends_with_its_connection(tmp_path: Path, traced: Traced) -> None:
    async with connected(tmp_path) as peer:
        peer.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})  # before initialize: refused
        assert (await peer.next())["error"]["code"] == -32600
        peer.send(INIT)
        assert "result" in await peer.next()
    refused, initialize = traced.spans.get_finished_spans()
    assert refused.name == "tools/list" and (refused.attributes or {})["error.type"] == "-32600"
    assert initialize.name == "initialize" and (initialize.attributes or {})["network.transport"] == "pipe"
    [point] = traced.points()
    assert point.count == 1 and dict(point.attributes or {})["network.transport"] == "pipe"


@pytest.mark.anyio
async def test_deleting_a_redis_session_whose_data_no_longer_validates_ends_it_quietly() -> None:
    client = connect(require_redis())
    ended: list[SessionData] = []
    try:
        await client.flushdb()
        store = RedisSessionStore(client, ttl_seconds=60, max_sessions=10, on_end=lambda d, _: ended.append(d))
        session_id = await store.create(SessionData(protocol_version="2025-03-26", principal="eve"))
        await client.set(f"mcpp:session:{session_id}", b'{"protocol_version": 7, "hostile": "\\u0000"}', xx=True)
        assert await store.delete(session_id) is True
        assert await client.exists(f"mcpp:session:{session_id}") == 0
    finally:
        await client.aclose()
    assert ended == []  # nothing to time it by; the DELETE still succeeded
