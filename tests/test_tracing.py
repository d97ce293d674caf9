"""OpenTelemetry: one server span per MCP request after the MCP semantic conventions, trace context continued from
`params._meta` or the HTTP headers, no argument in a span unless the operator opts in, and a real OTLP/HTTP export
from `mcp-platform serve` to a receiver on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mcp_platform import tracing
from mcp_platform.app import create_app
from tests.support import (
    FIXTURE_TOOLS,
    JSON_HEADERS,
    TOKEN,
    asgi_client,
    free_port,
    make_settings,
    modern_headers,
    modern_request,
    open_session,
    wait_served,
)

QUALIFIED = Path(__file__).parent / "fixtures" / "qualified_tools"
ARGUMENT = "argument-value-7d6c5b4a3f2e"  # what a client sent a tool: never in a span by default
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
META_TRACE = "0af7651916cd43dd8448eb211c80319c"
META_PARENT = "b7ad6b7169203331"


def _only(exporter: InMemorySpanExporter) -> ReadableSpan:
    finished = exporter.get_finished_spans()
    assert len(finished) == 1, [s.name for s in finished]
    exporter.clear()
    return finished[0]


def _call(text: str, msg_id: int | str = 1, tool: str = "echo", **meta: Any) -> dict[str, Any]:
    request = modern_request("tools/call", {"name": tool, "arguments": {"text": text}}, msg_id=msg_id)
    request["params"]["_meta"] |= meta
    return request


@pytest.mark.anyio
async def test_a_modern_tools_call_has_one_server_span_with_the_conventions_attributes(
        tmp_path: Path, spans: InMemorySpanExporter) -> None:
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        reply = await client.post("/mcp", json=_call(ARGUMENT, "r-1"), headers=modern_headers("tools/call", "echo"))
        assert reply.status_code == 200 and ARGUMENT in reply.text
        span = _only(spans)
        assert span.name == "tools/call echo" and span.kind is SpanKind.SERVER
        assert dict(span.attributes or {}) == {
            "mcp.method.name": "tools/call", "gen_ai.tool.name": "echo", "gen_ai.operation.name": "execute_tool",
            "jsonrpc.request.id": "r-1", "mcp.protocol.version": "2026-07-28", "network.transport": "tcp"}
        assert span.parent is None  # no traceparent: a trace of its own

        listed = await client.post("/mcp", json=modern_request("tools/list", msg_id=2),
                                   headers=modern_headers("tools/list"))
        assert listed.status_code == 200
        span = _only(spans)
        assert span.name == "tools/list" and span.attributes is not None
        assert span.attributes["mcp.method.name"] == "tools/list" and "gen_ai.tool.name" not in span.attributes


@pytest.mark.anyio
async def test_a_failed_tool_and_a_refusal_carry_error_type(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        request = modern_request("tools/call", {"name": "fail", "arguments": {"message": "no"}})
        reply = await client.post("/mcp", json=request, headers=modern_headers("tools/call", "fail"))
        assert reply.json()["result"]["isError"] is True
        span = _only(spans)
        assert span.attributes is not None and span.attributes["error.type"] == "tool_error"

        unknown = modern_request("tools/call", {"name": "nope", "arguments": {}})
        reply = await client.post("/mcp", json=unknown, headers=modern_headers("tools/call", "nope"))
        code = reply.json()["error"]["code"]
        span = _only(spans)
        assert span.attributes is not None and span.attributes["error.type"] == str(code)

        ok = await client.post("/mcp", json=_call("fine"), headers=modern_headers("tools/call", "echo"))
        assert ok.status_code == 200
        assert "error.type" not in (_only(spans).attributes or {})


@pytest.mark.anyio
async def test_trace_context_continues_from_meta_first_then_the_header(
        tmp_path: Path, spans: InMemorySpanExporter) -> None:
    header = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        await client.post("/mcp", json=_call("a"), headers=modern_headers("tools/call", "echo") | header)
        span = _only(spans)
        assert f"{span.context.trace_id:032x}" == TRACE
        assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT and span.parent.is_remote

        meta = _call("b", traceparent=f"00-{META_TRACE}-{META_PARENT}-01", tracestate="vendor=x")
        await client.post("/mcp", json=meta, headers=modern_headers("tools/call", "echo") | header)
        span = _only(spans)
        assert f"{span.context.trace_id:032x}" == META_TRACE  # `_meta` wins over the header
        assert span.parent is not None and f"{span.parent.span_id:016x}" == META_PARENT
        assert span.context.trace_state.get("vendor") == "x"


@pytest.mark.anyio
async def test_handshake_era_spans_carry_the_session_and_prompt(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    app = create_app(make_settings(tmp_path, tools={"dirs": [FIXTURE_TOOLS, QUALIFIED]}))
    async with asgi_client(app) as client:
        session = await open_session(client)
        spans.clear()  # initialize opens the session; it is no Call
        headers = {**JSON_HEADERS, "mcp-session-id": session}
        got = await client.post("/mcp", headers=headers, json={
            "jsonrpc": "2.0", "id": 7, "method": "prompts/get",
            "params": {"name": "briefing", "arguments": {"topic": ARGUMENT}}})
        assert got.status_code == 200, got.text
        span = _only(spans)
        assert span.name == "prompts/get briefing"
        attributes = dict(span.attributes or {})
        assert attributes["gen_ai.prompt.name"] == "briefing" and attributes["mcp.session.id"] == session
        assert attributes["mcp.protocol.version"] == "2025-11-25" and attributes["jsonrpc.request.id"] == "7"

        call = await client.post("/mcp", headers=headers, json={
            "jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}})
        assert call.status_code == 200, call.text
        span = _only(spans)
        assert span.name == "tools/call echo" and (span.attributes or {})["mcp.session.id"] == session


@pytest.mark.anyio
async def test_arguments_and_results_appear_only_when_the_operator_opts_in(
        tmp_path: Path, spans: InMemorySpanExporter) -> None:
    async with asgi_client(create_app(make_settings(tmp_path))) as client:
        await client.post("/mcp", json=_call(ARGUMENT), headers=modern_headers("tools/call", "echo"))
        assert ARGUMENT not in repr(dict(_only(spans).attributes or {}))

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        tracing.set_provider(provider, record_arguments=True)
        await client.post("/mcp", json=_call(ARGUMENT), headers=modern_headers("tools/call", "echo"))
        attributes = dict(_only(spans).attributes or {})
        assert ARGUMENT in str(attributes["gen_ai.tool.call.arguments"])
        assert ARGUMENT in str(attributes["gen_ai.tool.call.result"])


@pytest.mark.anyio
async def test_each_request_records_mcp_server_operation_duration(tmp_path: Path) -> None:
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider, meters = TracerProvider(), MeterProvider(metric_readers=[reader])
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_provider(provider, meter_provider=meters)
    try:
        async with asgi_client(create_app(make_settings(tmp_path))) as client:
            for msg_id in (1, 2):
                await client.post("/mcp", json=_call("a", msg_id), headers=modern_headers("tools/call", "echo"))
            request = modern_request("tools/call", {"name": "fail", "arguments": {"message": "no"}}, msg_id=3)
            await client.post("/mcp", json=request, headers=modern_headers("tools/call", "fail"))
        data = reader.get_metrics_data()
    finally:
        tracing.set_provider(None)
        provider.shutdown()
        meters.shutdown()
    assert data is not None
    [metric] = [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                if m.name == "mcp.server.operation.duration"]
    assert metric.unit == "s"
    points = {(p.attributes or {}).get("gen_ai.tool.name"): p for p in metric.data.data_points}
    assert points["echo"].count == 2 and points["fail"].count == 1  # type: ignore[union-attr]
    assert dict(points["fail"].attributes or {})["error.type"] == "tool_error"
    assert dict(points["echo"].attributes or {}) == {
        "mcp.method.name": "tools/call", "gen_ai.tool.name": "echo", "network.transport": "tcp",
        "mcp.protocol.version": "2026-07-28"}
    assert 0 < points["echo"].sum < 10  # type: ignore[union-attr]


def test_nothing_is_traced_without_a_provider() -> None:
    assert tracing.start(1, "tools/call", {"name": "echo"}, headers=None, protocol_version="2026-07-28") is None


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []
    metrics: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["content-length"]))
        # Metrics go to /v1/metrics beside the traces.
        (self.bodies if self.path == "/v1/traces" else self.metrics).append(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.wire
def test_serve_exports_its_spans_over_otlp_http(tmp_path: Path) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.bodies, _Receiver.metrics = [], []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port, stderr_path = free_port(), tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_PLATFORM_", "OTEL_"))}
    env |= {"MCP_PLATFORM_TOKEN": TOKEN, "MCP_PLATFORM_TRACING__SERVICE_NAME": "traced-test",
            "MCP_PLATFORM_TRACING__OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}/v1/traces"}
    try:
        with stderr_path.open("w") as stderr:
            process = subprocess.Popen([sys.executable, "-m", "mcp_platform", "serve", "--port", str(port),
                                        "--tools-dir", str(FIXTURE_TOOLS)],
                                       cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_served(process, base, log=stderr_path)
            headers = modern_headers("tools/call", "echo") | {"traceparent": f"00-{TRACE}-{PARENT}-01"}
            reply = httpx2.post(f"{base}/mcp", json=_call(ARGUMENT, 5), headers=headers, timeout=10)
            assert reply.status_code == 200, reply.text
        finally:
            process.send_signal(signal.SIGTERM)  # the batch is exported at shutdown
            process.wait(timeout=30)
    finally:
        receiver.shutdown()
        receiver.server_close()
    span = _exported_span(_Receiver.bodies)
    assert span.trace_id.hex() == TRACE and span.parent_span_id.hex() == PARENT
    attributes = {a.key: a.value.string_value for a in span.attributes}
    assert attributes["gen_ai.tool.name"] == "echo" and attributes["network.transport"] == "tcp"
    assert ARGUMENT not in repr(span)
    names = {metric.name for body in _Receiver.metrics
             for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics
             for sm in rm.scope_metrics for metric in sm.metrics}
    assert "mcp.server.operation.duration" in names


def _exported_span(bodies: list[bytes]) -> Any:
    """The one tools/call span the receiver got, checked to come from the configured service."""
    exported = []
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            exported += [(service, span) for scope in resource_spans.scope_spans for span in scope.spans
                         if span.name.startswith("tools/call")]
    assert len(exported) == 1, exported
    service, span = exported[0]
    assert service == "traced-test" and span.name == "tools/call echo"
    return span


@pytest.mark.anyio
async def test_stdio_exports_its_spans_as_pipe_transport_when_stdin_closes(tmp_path: Path) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.bodies = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    config = tmp_path / "mcp-platform.toml"
    config.write_text(f"[state]\nurl = 'sqlite+aiosqlite:///{tmp_path}/state.db'\n"
                      f"[static]\nroot = '{tmp_path / 'static'}'\n")
    server = StdioServerParameters(
        command=sys.executable, cwd=tmp_path,
        args=["-m", "mcp_platform", "stdio", "--config", str(config), "--tools-dir", str(FIXTURE_TOOLS),
              "--log-level", "warning"],
        env={"PYTHONUNBUFFERED": "1", "MCP_PLATFORM_TRACING__SERVICE_NAME": "traced-test",
             "MCP_PLATFORM_TRACING__OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}/v1/traces"})
    try:
        async with Client(server, mode="legacy") as client:
            result = await client.call_tool("echo", {"text": ARGUMENT})
            assert result.is_error is False
    finally:
        receiver.shutdown()
        receiver.server_close()
    span = _exported_span(_Receiver.bodies)
    attributes = {a.key: a.value.string_value for a in span.attributes}
    assert attributes["network.transport"] == "pipe" and attributes["mcp.protocol.version"]
    assert "mcp.session.id" not in attributes  # the connection is the session; it has no id
