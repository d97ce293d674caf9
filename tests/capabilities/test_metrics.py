from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcp_platform.capabilities.metrics import OTHER, Metrics, percentile, read_rss_bytes, server_metrics
from mcp_platform.context import Backends
from mcp_platform.hooks import ToolCallRecord
from mcp_platform.tool_registry import Registry
from tests.capabilities.support import HOSTILE_STRINGS, call, context, text
from tests.support import TestClock


def _record(tool: str, seconds: float, outcome: Any = "ok") -> ToolCallRecord:
    return ToolCallRecord(principal="alice", tool=tool, arguments={}, outcome=outcome, duration_s=seconds,
                          started_at=0.0)


def _metrics(clock: TestClock, **kwargs: Any) -> Metrics:
    return Metrics(clock=clock, rss=lambda: 123_456_789, **kwargs)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.0


@pytest.mark.anyio
async def test_percentiles_on_known_samples() -> None:
    clock = TestClock()
    metrics = _metrics(clock)
    metrics.set_known_tools(["query", "read"])
    for ms in range(100, 0, -1):  # 100 ms .. 1 ms, out of order on purpose
        await metrics.on_tool_call(_record("query", ms / 1000.0, "ok" if ms % 10 else "error"))
    snap = metrics.snapshot("query")
    (entry,) = snap.tools
    assert (entry.calls, entry.errors, entry.outcomes) == (100, 10, {"error": 10, "ok": 90})
    assert entry.latency.samples == 100
    assert (entry.latency.p50_ms, entry.latency.p95_ms, entry.latency.p99_ms) == pytest.approx((50.0, 95.0, 99.0))


@pytest.mark.anyio
async def test_latency_window_slides_but_counts_stay() -> None:
    clock = TestClock()
    metrics = _metrics(clock, window_s=60.0)
    await metrics.on_tool_call(_record("query", 5.0))
    clock.advance(61)
    await metrics.on_tool_call(_record("query", 0.010))
    (entry,) = metrics.snapshot().tools
    assert entry.calls == 2 and entry.latency.samples == 1 and entry.latency.p99_ms == pytest.approx(10.0)
    clock.advance(61)
    (entry,) = metrics.snapshot().tools
    assert entry.calls == 2 and entry.latency.samples == 0 and entry.latency.p50_ms is None


@pytest.mark.anyio
async def test_memory_and_labels_are_bounded() -> None:
    metrics = _metrics(TestClock(), max_samples=16)
    metrics.set_known_tools(["query"])
    for i in range(100):
        await metrics.on_tool_call(_record("query", i / 1000.0))
        await metrics.on_tool_call(_record(f"made-up-{i}", 0.001))
    await metrics.on_tool_call(_record("query", 0.001, outcome="weird"))
    snap = metrics.snapshot()
    assert [t.tool for t in snap.tools] == [OTHER, "query"]
    assert snap.tools[0].calls == 100
    assert snap.tools[1].latency.samples == 16
    assert snap.tools[1].outcomes == {"ok": 100, OTHER: 1}


@pytest.mark.anyio
async def test_unknown_names_get_labels_only_up_to_a_cap_before_tools_are_known() -> None:
    metrics = _metrics(TestClock())
    for i in range(1000):
        await metrics.on_tool_call(_record(f"t{i}", 0.001))
    names = [t.tool for t in metrics.snapshot().tools]
    assert len(names) <= 201 and OTHER in names


def test_http_statuses_sessions_uptime_and_rejections() -> None:
    clock = TestClock()
    metrics = _metrics(clock)
    for status in (200, 200, 429, 404, 999):
        metrics.on_http_response(status)
    metrics.record_rate_limited()
    snap = metrics.snapshot()
    assert snap.active_sessions is None
    metrics.set_sessions_provider(lambda: 3)
    clock.advance(12.5)
    snap = metrics.snapshot()
    assert snap.requests_total == 5
    assert snap.requests_by_status == {"200": 2, "404": 1, "429": 1, OTHER: 1}
    assert (snap.rate_limited_total, snap.active_sessions, snap.uptime_s, snap.rss_bytes) == (1, 3, 12.5, 123_456_789)


def test_a_broken_sessions_provider_does_not_break_the_snapshot() -> None:
    metrics = _metrics(TestClock())

    def broken() -> int:
        raise RuntimeError("store down")

    metrics.set_sessions_provider(broken)
    assert metrics.snapshot().active_sessions is None
    assert metrics.snapshot().active_sessions is None


def test_real_rss_is_positive() -> None:
    rss = read_rss_bytes()
    assert rss is not None and rss > 1024 * 1024


@pytest.mark.anyio
async def test_prometheus_exposition_parses_and_matches_the_snapshot() -> None:
    clock = TestClock()
    metrics = _metrics(clock)
    metrics.set_known_tools(["query", "read"])
    metrics.set_sessions_provider(lambda: 2)
    for ms in (10, 20, 30, 40):
        await metrics.on_tool_call(_record("query", ms / 1000.0))
    await metrics.on_tool_call(_record("read", 0.5, "timeout"))
    metrics.on_http_response(200)
    metrics.on_http_response(429)
    metrics.record_rate_limited()
    clock.advance(30)
    body, content_type = metrics.render_prometheus()
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    snap = metrics.snapshot()

    def samples(family: str, suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(s.labels.items())): s.value for s in families[family].samples
                if s.name == family + suffix}

    calls = samples("mcp_platform_tool_calls", "_total")
    errors = samples("mcp_platform_tool_errors", "_total")
    latency = samples("mcp_platform_tool_latency_seconds")
    for entry in snap.tools:
        for outcome, count in entry.outcomes.items():
            assert calls[(("outcome", outcome), ("tool", entry.tool))] == count
        assert errors[(("tool", entry.tool),)] == entry.errors
        for key, quantile in (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99")):
            assert latency[(("quantile", quantile), ("tool", entry.tool))] == pytest.approx(
                getattr(entry.latency, f"{key}_ms") / 1000.0)
    assert sum(calls.values()) == 5
    assert samples("mcp_platform_http_responses", "_total") == {(("status", "200"),): 1, (("status", "429"),): 1}
    assert samples("mcp_platform_rate_limited", "_total") == {(): snap.rate_limited_total}
    assert samples("mcp_platform_active_sessions") == {(): 2}
    assert samples("mcp_platform_uptime_seconds") == {(): 30.0}
    assert samples("mcp_platform_process_rss_bytes") == {(): 123_456_789}


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = _metrics(TestClock()), _metrics(TestClock())
    assert first.registry is not second.registry
    first.record_rate_limited()
    assert b"mcp_platform_rate_limited_total 1.0" in first.render_prometheus()[0]
    assert b"mcp_platform_rate_limited_total 0.0" in second.render_prometheus()[0]


@pytest.mark.anyio
async def test_server_metrics_tool() -> None:
    metrics = _metrics(TestClock())
    metrics.set_known_tools(["query", "read"])
    await metrics.on_tool_call(_record("query", 0.002))
    backends = Backends()
    backends.add(metrics)
    everything = await call(server_metrics, {}, context(backends))
    assert not everything.is_error
    assert [t["tool"] for t in everything.structured["tools"]] == ["query"]
    one = await call(server_metrics, {"tool": "read"}, context(backends))
    assert one.structured["tools"] == [{"tool": "read", "calls": 0, "errors": 0, "outcomes": {},
                                        "latency": {"samples": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}}]
    assert json.loads(text(one)) == one.structured


@pytest.mark.anyio
@pytest.mark.parametrize("bad", [b for b in HOSTILE_STRINGS if b is not None] + ["no_such_tool"])
async def test_server_metrics_rejects_hostile_tool_names(bad: Any) -> None:
    metrics = _metrics(TestClock())
    metrics.set_known_tools(["query", "read"])
    backends = Backends()
    backends.add(metrics)
    result = await call(server_metrics, {"tool": bad}, context(backends))
    assert result.is_error and len(text(result)) < 2000
    if isinstance(bad, str) and bad:
        assert "query, read" in text(result)


def test_tool_definition_matches_the_catalogue() -> None:
    built = Registry().add(server_metrics)
    assert built.spec.scope == "read" and built.definition["annotations"]["readOnlyHint"] is True
    assert list(built.input_schema["properties"]) == ["tool"]
    assert built.output_schema is not None
