"""OpenTelemetry child spans: the ORM's statements, static-file reads and Redis commands of a traced tools/call are
children of its server span, carry no argument value unless the operator opts in, and nothing is instrumented
when tracing is off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mcp_platform import tracing
from mcp_platform.app import create_app
from mcp_platform.stores.redis_client import connect
from tests.services import drop_postgres_database, fresh_postgres_database, require_postgres, require_redis
from tests.support import FIXTURE_TOOLS, asgi_client, make_settings, modern_headers, modern_request

TRACED_TOOLS = Path(__file__).parent / "fixtures" / "traced_tools"
SECRET_NAME = "private-7c1e9a.txt"  # the file a client asked for: an argument, never on a span by default


def _settings(tmp_path: Path, **overrides: Any) -> Any:
    (tmp_path / "static").mkdir(exist_ok=True)
    (tmp_path / "static" / SECRET_NAME).write_text("twelve bytes")
    return make_settings(tmp_path, tools={"dirs": [FIXTURE_TOOLS, TRACED_TOOLS]}, **overrides)


async def _call_traced_work(settings: Any) -> None:
    request = modern_request("tools/call", {"name": "traced_work", "arguments": {"path": SECRET_NAME}})
    async with asgi_client(create_app(settings)) as client:
        reply = await client.post("/mcp", json=request, headers=modern_headers("tools/call", "traced_work"))
    assert reply.status_code == 200, reply.text
    assert reply.json()["result"]["structuredContent"] == {"answer": 42, "size": 12}, reply.text


def _children(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The tools/call server span and every span of its trace below it."""
    finished = exporter.get_finished_spans()
    [server] = [s for s in finished if s.name == "tools/call traced_work"]
    assert server.kind is SpanKind.SERVER
    trace_id = server.context.trace_id
    return server, [s for s in finished if s.context.trace_id == trace_id and s is not server]


def _by_name(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def _assert_children_of(server: ReadableSpan, children: list[ReadableSpan]) -> None:
    assert children
    for child in children:
        assert child.parent is not None and child.parent.span_id == server.context.span_id, child.name


@pytest.mark.anyio
async def test_orm_query_and_static_read_are_children_of_the_tools_call_span(
        tmp_path: Path, spans: InMemorySpanExporter) -> None:
    await _call_traced_work(_settings(tmp_path))
    server, children = _children(spans)
    [query] = [s for s in children if "41 + 1" in str((s.attributes or {}).get("db.statement", ""))]
    [read] = _by_name(children, "static.read")
    _assert_children_of(server, [query, read])
    assert query.kind is SpanKind.CLIENT and (query.attributes or {})["db.system"] == "sqlite"
    assert dict(read.attributes or {}) == {"file.size": 12}  # the path is the client's: not recorded
    assert SECRET_NAME not in repr([dict(s.attributes or {}) for s in spans.get_finished_spans()])


@pytest.mark.anyio
async def test_a_static_read_names_its_path_when_the_operator_opts_in(tmp_path: Path) -> None:
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_provider(provider, record_arguments=True)
    try:
        await _call_traced_work(_settings(tmp_path))
    finally:
        tracing.set_provider(None)
        provider.shutdown()
    _, children = _children(exporter)
    [read] = _by_name(children, "static.read")
    assert dict(read.attributes or {}) == {"file.size": 12, "file.path": SECRET_NAME}


@pytest.mark.anyio
async def test_a_failed_static_read_is_an_error_span_without_the_message(
        tmp_path: Path, spans: InMemorySpanExporter) -> None:
    request = modern_request("tools/call", {"name": "traced_work", "arguments": {"path": "missing-" + SECRET_NAME}})
    async with asgi_client(create_app(_settings(tmp_path))) as client:
        reply = await client.post("/mcp", json=request, headers=modern_headers("tools/call", "traced_work"))
    assert reply.json()["result"]["isError"] is True
    server, children = _children(spans)
    [read] = _by_name(children, "static.read")
    _assert_children_of(server, [read])
    assert (read.attributes or {})["error.type"] == "ToolError" and not read.events  # no exception event
    assert SECRET_NAME not in repr([dict(s.attributes or {}) for s in spans.get_finished_spans()])


@pytest.mark.anyio
async def test_redis_commands_of_a_call_are_children_and_carry_no_values(
        tmp_path: Path, spans: InMemorySpanExporter) -> None:
    url = require_redis()
    admin = connect(url)
    try:
        await admin.flushdb()
        # A per-tool limit: preflight spends from the Redis bucket inside the call's span.
        await _call_traced_work(_settings(tmp_path, state={"url": f"sqlite+aiosqlite:///{tmp_path}/state.db",
                                                           "redis_url": url},
                                          rate_limit={"per_tool": {"traced_work": 60}}))
    finally:
        await admin.aclose()
    server, children = _children(spans)
    commands = [s for s in children if (s.attributes or {}).get("db.system") == "redis"]
    _assert_children_of(server, commands)
    assert all(set(str((s.attributes or {}).get("db.statement", ""))) <= set("EVALSH ?") for s in commands
               if s.name.startswith("EVAL")), [s.attributes for s in commands]
    # Work outside any request (the caller's budget before the span, the event and notifier loops) is untraced.
    assert not [s for s in spans.get_finished_spans() if s.parent is None and s.kind is SpanKind.CLIENT]


@pytest.mark.anyio
async def test_postgresql_queries_are_children_of_the_call(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    base = require_postgres()
    url, name = await fresh_postgres_database(base)
    try:
        await _call_traced_work(_settings(tmp_path, database={"url": url}))
    finally:
        await drop_postgres_database(base, name)
    server, children = _children(spans)
    [query] = [s for s in children if "41 + 1" in str((s.attributes or {}).get("db.statement", ""))]
    _assert_children_of(server, [query])
    assert (query.attributes or {})["db.system"] == "postgresql"


@pytest.mark.anyio
async def test_nothing_is_instrumented_when_tracing_is_off(tmp_path: Path) -> None:
    url = require_redis()
    client = connect(url)
    try:
        assert "execute_command" not in vars(client)  # the class's own method: no wrapper on the hot path
    finally:
        await client.aclose()
    await _call_traced_work(_settings(tmp_path))  # and a call works with no provider at all
