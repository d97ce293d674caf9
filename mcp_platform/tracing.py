"""OpenTelemetry spans for MCP requests, after the MCP semantic conventions.

Only `opentelemetry-api` is a dependency. Nothing is traced unless a tracer is installed: `configure` installs the
SDK with an OTLP/HTTP exporter when `tracing.otlp_endpoint` is set (the `otel` extra brings both), or adopts a
provider an operator's own SDK set-up (`opentelemetry-instrument`) made global. With neither, `start` returns None
before building anything, so a request pays one global read and no span (the API's no-op tracer still costs a
context object and a call per request).

Each request also records `mcp.server.operation.duration`, and each handshake-era session that ends
`mcp.server.session.duration`, when a meter provider comes with the tracer's. `mcp_platform.spans` adds the
requests' child spans (database, Redis, static files) with the same provider.

A span's name is `{mcp.method.name} {target}`; its attributes never hold arguments or results unless the operator
opts in (`tracing.record_arguments`).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

# opentelemetry is imported only once something is traced: a default start must not pay for it (startup imports).
if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from mcp_platform.settings import Settings

__all__ = ["ERROR_TYPE", "METHOD", "TOOL_NAME", "configure", "current", "end", "provider", "refusal", "session_ended",
           "set_provider", "shutdown", "start"]

METHOD = "mcp.method.name"
TOOL_NAME = "gen_ai.tool.name"
OPERATION = "gen_ai.operation.name"
PROMPT_NAME = "gen_ai.prompt.name"
RESOURCE_URI = "mcp.resource.uri"
REQUEST_ID = "jsonrpc.request.id"
SESSION_ID = "mcp.session.id"
PROTOCOL_VERSION = "mcp.protocol.version"
TRANSPORT = "network.transport"
ERROR_TYPE = "error.type"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
_METRIC_ATTRIBUTES = ("mcp.method.name", "gen_ai.tool.name", "gen_ai.prompt.name", "error.type",
                      "network.transport", "mcp.protocol.version")
TOOL_ERROR = "tool_error"
"""`error.type` of a tools/call whose result has `isError` (the call was answered; the tool failed)."""

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_meter_provider: MeterProvider | None = None
_duration: Histogram | None = None
_session_duration: Histogram | None = None
_providers: list[Any] = []  # the SDK providers `configure` installed, flushed by `shutdown`
_record_arguments = False
# The conventions' advice for mcp.server.operation.duration, in seconds.
_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


def set_provider(provider: TracerProvider | None, *, record_arguments: bool = False,
                 meter_provider: MeterProvider | None = None) -> None:
    """Trace with `provider` from now on (None: stop tracing), and record `mcp.server.operation.duration` with
    `meter_provider` when there is one. `configure` calls it; so do tests, with SDK providers of their own,
    because the global providers can be set only once per process."""
    global _tracer, _provider, _meter_provider, _duration, _session_duration, _record_arguments
    _tracer = None if provider is None else provider.get_tracer("mcp_platform")
    _provider, _meter_provider = provider, None if provider is None else meter_provider
    _duration = _session_duration = None
    if provider is not None and meter_provider is not None:
        meter = meter_provider.get_meter("mcp_platform")
        _duration = meter.create_histogram(
            "mcp.server.operation.duration", unit="s", description="Duration of one MCP request, as served",
            explicit_bucket_boundaries_advisory=_BUCKETS)
        _session_duration = meter.create_histogram(
            "mcp.server.session.duration", unit="s", description="Duration of one MCP session, as served",
            explicit_bucket_boundaries_advisory=_BUCKETS)
    _record_arguments = record_arguments


def provider() -> tuple[TracerProvider, MeterProvider | None] | None:
    """The providers requests are traced with (for their child spans), or None when nothing is traced."""
    return None if _provider is None else (_provider, _meter_provider)


def records_arguments() -> bool:
    """Whether the operator opted in to argument values on spans (`tracing.record_arguments`)."""
    return _record_arguments


def active() -> bool:
    """Whether requests are traced (the edge asks before building `start`'s arguments)."""
    return _tracer is not None


def configure(settings: Settings) -> None:
    """At start: export to `tracing.otlp_endpoint` when it is set, else use a global SDK provider if one exists."""
    config = settings.tracing
    if config.otlp_endpoint is None:
        if "opentelemetry.trace" not in sys.modules:
            return  # nobody imported the API, so no SDK provider can have been installed
        from opentelemetry import metrics, trace

        current = trace.get_tracer_provider()
        # The API's own providers (the proxy before any SDK, and the no-op) make spans that record nothing.
        if not isinstance(current, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            set_provider(current, record_arguments=config.record_arguments,
                         meter_provider=metrics.get_meter_provider())
        return
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError("tracing.otlp_endpoint is set but the OpenTelemetry SDK is not installed: "
                           "pip install 'mcp-platform[otel]'") from exc
    resource = Resource.create({"service.name": config.service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=config.otlp_endpoint)))
    # Metrics go beside the traces: the same collector, its metrics path.
    metrics_url = config.otlp_endpoint.removesuffix("/v1/traces") + "/v1/metrics"
    meter_provider = SdkMeterProvider(resource=resource, metric_readers=[
        PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=metrics_url))])
    trace.set_tracer_provider(provider)  # so instrumentation packages an operator adds export here too
    metrics.set_meter_provider(meter_provider)
    _providers[:] = [provider, meter_provider]
    set_provider(provider, record_arguments=config.record_arguments, meter_provider=meter_provider)


def shutdown() -> None:
    """Export what is still batched (at exit; a SIGTERM'd server must not lose its last spans)."""
    while _providers:
        _providers.pop().shutdown()


def _target(method: str, params: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The span name's target, and the attribute that names it."""
    if method in ("tools/call", "prompts/get"):
        name = params.get("name")
        return (name, TOOL_NAME if method == "tools/call" else PROMPT_NAME) if isinstance(name, str) else (None, None)
    if method.startswith("resources/") and isinstance(uri := params.get("uri"), str):
        return uri, RESOURCE_URI
    return None, None


def _carrier(params: Mapping[str, Any], headers: Mapping[str, str] | None) -> dict[str, str]:
    """W3C trace context from `params._meta` (SEP-414), else from the HTTP headers (names lower-cased)."""
    meta = params.get("_meta")
    if isinstance(meta, Mapping) and isinstance(parent := meta.get("traceparent"), str):
        carrier = {"traceparent": parent}
        if isinstance(state := meta.get("tracestate"), str):
            carrier["tracestate"] = state
        return carrier
    if headers is None or "traceparent" not in headers:
        return {}
    return {key: headers[key] for key in ("traceparent", "tracestate") if key in headers}


def start(request_id: str | int, method: str, params: Mapping[str, Any], *, headers: Mapping[str, str] | None,
          protocol_version: str | None, session_id: str | None = None, start_time: int | None = None) -> Span | None:
    """The server span of one request, not yet current (the caller makes it current where the work runs), or
    None when nothing is traced. `start_time` (ns since the epoch): when the request arrived, if earlier."""
    tracer = _tracer
    if tracer is None:
        return None
    target, target_attribute = _target(method, params)
    attributes: dict[str, str | int] = {
        METHOD: method, REQUEST_ID: str(request_id), TRANSPORT: "pipe" if headers is None else "tcp"}
    if protocol_version is not None:
        attributes[PROTOCOL_VERSION] = protocol_version
    if target is not None and target_attribute is not None:
        attributes[target_attribute] = target
    if method == "tools/call":
        attributes[OPERATION] = "execute_tool"
        if _record_arguments:
            attributes[TOOL_ARGUMENTS] = json.dumps(params.get("arguments"), default=str)
    if session_id is not None and headers is not None:  # a stdio connection is its session and has no id
        attributes[SESSION_ID] = session_id
    carrier = _carrier(params, headers)
    context = None
    if carrier:
        from opentelemetry import propagate  # reads its entry points on import: only once something is traced

        context = propagate.extract(carrier)
    from opentelemetry.trace import SpanKind

    name = method if target is None else f"{method} {target}"
    return tracer.start_span(name, context=context, kind=SpanKind.SERVER, attributes=attributes,
                             start_time=start_time)


def refusal(request_id: str | int, method: str, params: Mapping[str, Any], exc: BaseException, *,
            headers: Mapping[str, str] | None, protocol_version: str | None, start_time: int,
            session_id: str | None = None) -> None:
    """The span of a request refused before it became a call (rate limit, era ladder, session), ended at once."""
    span = start(request_id, method, params, headers=headers, protocol_version=protocol_version,
                 session_id=session_id, start_time=start_time)
    if span is not None:
        end(span, exc)


def session_ended(started_at: float | None, protocol_version: str, transport: str, *,
                  error_type: str | None = None, late_by: float = 0.0) -> None:
    """Record `mcp.server.session.duration` for a handshake-era session that began at `started_at` (seconds since
    the epoch, so every instance agrees) and ended `late_by` seconds before now (an expiry noticed later)."""
    histogram = _session_duration
    if histogram is None or started_at is None:
        return
    attributes = {PROTOCOL_VERSION: protocol_version, TRANSPORT: transport}
    if error_type is not None:
        attributes[ERROR_TYPE] = error_type
    histogram.record(max(0.0, time.time() - started_at - late_by), attributes)


_NO_SPAN = contextlib.nullcontext()  # reusable: entering it does nothing


def current(span: Span | None) -> contextlib.AbstractContextManager[Any]:
    """Make `span` the current one for the work inside (its children's parent); nothing when there is none."""
    if span is None:
        return _NO_SPAN
    from opentelemetry import trace

    return trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False)  # `refused` words failures


def tool_result(span: Span, result: Mapping[str, Any]) -> None:
    """What a tools/call result says: `error.type` when the tool failed, the result itself when opted in."""
    if result.get("isError") is True:
        span.set_attribute(ERROR_TYPE, TOOL_ERROR)
        span.set_status(_error())
    if _record_arguments:
        span.set_attribute(TOOL_RESULT, json.dumps(result.get("content"), default=str))


def end(span: Span, exc: BaseException | None = None) -> None:
    """End a request's span (a refusal's error first) and record how long it took."""
    if exc is not None:
        refused(span, exc)
    span.end()
    duration, started = _duration, getattr(span, "start_time", None)  # the SDK's span has its start, in ns
    end_time = getattr(span, "end_time", None)
    if duration is not None and isinstance(started, int) and isinstance(end_time, int):
        attributes = getattr(span, "attributes", None) or {}
        duration.record((end_time - started) / 1e9, {key: attributes[key] for key in _METRIC_ATTRIBUTES
                                                     if key in attributes})


def _error() -> Any:
    from opentelemetry.trace import StatusCode

    return StatusCode.ERROR


def refused(span: Span, exc: BaseException) -> None:
    """A request answered with a JSON-RPC error: its code names the error, as the conventions ask; an exception
    that is no refusal (a bug, a cancellation) by its class."""
    code = getattr(exc, "code", None)
    span.set_attribute(ERROR_TYPE, str(code) if isinstance(code, int) else type(exc).__name__)
    span.set_status(_error())
