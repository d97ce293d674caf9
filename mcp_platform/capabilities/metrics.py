"""Metrics: tool calls, errors, latency percentiles, HTTP statuses, sessions, uptime and memory.

`Metrics` is fed by hooks (`on_tool_call`, `on_http_response`) and read two ways that always agree: `snapshot()`
for the `server_metrics` tool, and `render_prometheus()` for `/metrics`, whose collector is built from a snapshot.
Memory and label cardinality are bounded: at most `max_samples` latencies per tool inside a sliding window, and
tool names outside the registry are counted as `other`.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from pydantic import BaseModel

from mcp_platform.capabilities import Capability, Started
from mcp_platform.context import ToolContext
from mcp_platform.core import Core
from mcp_platform.errors import ToolError
from mcp_platform.hooks import Hooks, ToolCallRecord
from mcp_platform.registry import tool
from mcp_platform.stores.memory import MemorySessionStore

__all__ = ["CAPABILITY", "OTHER", "Latency", "Metrics", "MetricsSnapshot", "ToolMetrics", "percentile",
           "server_metrics"]

logger = logging.getLogger(__name__)

OTHER = "other"
"""The label of tool names the registry does not know and of odd status codes."""
MAX_UNREGISTERED_TOOLS = 200
"""Before `set_known_tools` is called, this many distinct names get their own label; the rest are `other`."""
_OUTCOMES = frozenset({"ok", "error", "timeout", "cancelled", "denied", "exception"})
_QUANTILES = (("p50_ms", "0.5"), ("p95_ms", "0.95"), ("p99_ms", "0.99"))


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of ascending `sorted_values`: always one of the observed values."""
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def read_rss_bytes() -> int | None:
    """Resident memory now (Linux /proc, one small read), or the peak RSS elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (OSError, ValueError):
        return None
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, others KiB


class Latency(BaseModel):
    samples: int
    """Calls measured inside the window."""
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class ToolMetrics(BaseModel):
    tool: str
    calls: int
    errors: int
    """Calls whose outcome was not `ok`."""
    outcomes: dict[str, int]
    latency: Latency


class MetricsSnapshot(BaseModel):
    uptime_s: float
    window_s: float
    """Latency percentiles cover calls that finished this many seconds ago at most."""
    requests_total: int
    requests_by_status: dict[str, int]
    rate_limited_total: int
    active_sessions: int | None
    """Open handshake-era sessions; null when no session store reports them."""
    rss_bytes: int | None
    tools: list[ToolMetrics]
    """Tools called at least once (or the one asked for), sorted by name."""


def _latency(durations: list[float]) -> Latency:
    if not durations:
        return Latency(samples=0, p50_ms=None, p95_ms=None, p99_ms=None)
    return Latency(samples=len(durations), p50_ms=percentile(durations, 50) * 1000.0,
                   p95_ms=percentile(durations, 95) * 1000.0, p99_ms=percentile(durations, 99) * 1000.0)


@dataclass
class _ToolStats:
    outcomes: dict[str, int] = field(default_factory=dict)
    samples: deque[tuple[float, float]] = field(default_factory=deque)


class Metrics:
    """Counters and latency windows; every time comes from `clock`."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, window_s: float = 300.0,
                 max_samples: int = 2048, rss: Callable[[], int | None] = read_rss_bytes) -> None:
        self._clock = clock
        self._started = clock()
        self.window_s = window_s
        self._max_samples = max_samples
        self._rss = rss
        self._tools: dict[str, _ToolStats] = {}
        self._known: frozenset[str] | None = None
        self._statuses: dict[str, int] = {}
        self._rate_limited = 0
        self._sessions: Callable[[], int] | None = None
        self._sessions_failed = False
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def set_known_tools(self, names: Iterable[str]) -> None:
        """Label only these tool names from now on; any other name is counted as `other`."""
        self._known = frozenset(names)

    def set_sessions_provider(self, provider: Callable[[], int]) -> None:
        self._sessions = provider


    def known_tools(self) -> list[str]:
        return sorted(self._known if self._known is not None else self._tools)

    def _label(self, name: str) -> str:
        if self._known is not None:
            return name if name in self._known else OTHER
        if name in self._tools or len(self._tools) < MAX_UNREGISTERED_TOOLS:
            return name
        return OTHER

    async def on_tool_call(self, record: ToolCallRecord) -> None:
        self.record_tool_call(record.tool, record.outcome, record.duration_s)

    def record_tool_call(self, tool_name: str, outcome: str, duration_s: float) -> None:
        label = self._label(tool_name)
        stats = self._tools.get(label)
        if stats is None:
            stats = self._tools[label] = _ToolStats(samples=deque(maxlen=self._max_samples))
        key = outcome if outcome in _OUTCOMES else OTHER
        stats.outcomes[key] = stats.outcomes.get(key, 0) + 1
        now = self._clock()
        stats.samples.append((now, max(0.0, duration_s)))
        self._expire(stats, now)

    def on_http_response(self, status: int) -> None:
        key = str(status) if 100 <= status <= 599 else OTHER
        self._statuses[key] = self._statuses.get(key, 0) + 1

    def record_rate_limited(self) -> None:
        self._rate_limited += 1

    def _expire(self, stats: _ToolStats, now: float) -> None:
        cutoff = now - self.window_s
        while stats.samples and stats.samples[0][0] < cutoff:
            stats.samples.popleft()

    def _tool_metrics(self, name: str, stats: _ToolStats | None, now: float) -> ToolMetrics:
        if stats is None:
            return ToolMetrics(tool=name, calls=0, errors=0, outcomes={}, latency=_latency([]))
        self._expire(stats, now)
        calls = sum(stats.outcomes.values())
        return ToolMetrics(tool=name, calls=calls, errors=calls - stats.outcomes.get("ok", 0),
                           outcomes=dict(sorted(stats.outcomes.items())),
                           latency=_latency(sorted(seconds for _, seconds in stats.samples)))

    def _active_sessions(self) -> int | None:
        if self._sessions is None:
            return None
        try:
            return int(self._sessions())
        except Exception:
            if not self._sessions_failed:  # once, so that a broken provider does not flood the log per scrape
                logger.exception("the active-sessions provider failed")
                self._sessions_failed = True
            return None

    def snapshot(self, tool_name: str | None = None) -> MetricsSnapshot:
        """Everything now; with `tool_name`, only that tool (`KeyError` listing the known ones if unknown)."""
        now = self._clock()
        if tool_name is None:
            tools = [self._tool_metrics(name, stats, now) for name, stats in sorted(self._tools.items())]
        else:
            if tool_name not in self.known_tools() and tool_name not in self._tools:
                raise KeyError(tool_name)
            tools = [self._tool_metrics(tool_name, self._tools.get(tool_name), now)]
        return MetricsSnapshot(
            uptime_s=now - self._started, window_s=self.window_s, requests_total=sum(self._statuses.values()),
            requests_by_status=dict(sorted(self._statuses.items())), rate_limited_total=self._rate_limited,
            active_sessions=self._active_sessions(), rss_bytes=self._rss(), tools=tools,
        )

    def render_prometheus(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of `snapshot()`, and the content type to serve it with."""
        return generate_latest(self.registry), str(CONTENT_TYPE_LATEST)


class _Collector(Collector):
    """Builds every series from one snapshot, so a scrape and `server_metrics` never disagree."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        snap = self._metrics.snapshot()
        calls = CounterMetricFamily("mcp_platform_tool_calls", "Tool calls by outcome.", labels=["tool", "outcome"])
        errors = CounterMetricFamily("mcp_platform_tool_errors", "Tool calls whose outcome was not ok.",
                                     labels=["tool"])
        latency = GaugeMetricFamily("mcp_platform_tool_latency_seconds",
                                    f"Tool call latency percentiles over the last {snap.window_s:g} s.",
                                    labels=["tool", "quantile"])
        for entry in snap.tools:
            for outcome, count in entry.outcomes.items():
                calls.add_metric([entry.tool, outcome], count)
            errors.add_metric([entry.tool], entry.errors)
            for attribute, quantile in _QUANTILES:
                value_ms = getattr(entry.latency, attribute)
                if value_ms is not None:
                    latency.add_metric([entry.tool, quantile], value_ms / 1000.0)
        requests = CounterMetricFamily("mcp_platform_http_responses", "HTTP responses by status code.",
                                       labels=["status"])
        for status, count in snap.requests_by_status.items():
            requests.add_metric([status], count)
        yield from (calls, errors, latency, requests)
        yield CounterMetricFamily("mcp_platform_rate_limited", "Requests rejected by rate limits.",
                                  value=snap.rate_limited_total)
        yield GaugeMetricFamily("mcp_platform_uptime_seconds", "Seconds since the server started.",
                                value=snap.uptime_s)
        if snap.active_sessions is not None:
            yield GaugeMetricFamily("mcp_platform_active_sessions", "Open handshake-era sessions.",
                                    value=snap.active_sessions)
        if snap.rss_bytes is not None:
            yield GaugeMetricFamily("mcp_platform_process_rss_bytes", "Resident memory of this process.",
                                    value=snap.rss_bytes)


@tool(read_only=True, title="Server metrics")
async def server_metrics(ctx: ToolContext, tool: str | None = None) -> MetricsSnapshot:
    """Show server health: uptime, HTTP requests by status, rate-limit rejections, open sessions, memory (RSS),
    and per tool the calls, errors and latency p50/p95/p99 over a recent window.

    Args:
        tool: Only this tool's numbers (a tool name as in tools/list). Omit for every tool called so far.
    """
    metrics = ctx.backend(Metrics)
    try:
        return metrics.snapshot(tool)
    except KeyError:
        known = metrics.known_tools()
        shown = ", ".join(known[:100]) + (" ..." if len(known) > 100 else "")
        raise ToolError(f"unknown tool {str(tool)[:128]!r}" + (f"; known tools are: {shown}" if known else "")
                        + ". Omit `tool` to see every tool.") from None


async def _start(core: Core, stack: AsyncExitStack) -> Started:
    metrics = Metrics(clock=core.clock.now)
    metrics.set_known_tools(t.name for t in core.registry.all())
    if isinstance(core.sessions, MemorySessionStore):  # a shared store's count is not this instance's
        metrics.set_sessions_provider(core.sessions.size)
    observers = Hooks(tool_call=[metrics.on_tool_call], http_response=[metrics.on_http_response],
                      rate_limited=[metrics.record_rate_limited])
    return Started(backends=[metrics], observers=observers, metrics=metrics.render_prometheus)


CAPABILITY = Capability(name="metrics", tools=[server_metrics], start=_start)
