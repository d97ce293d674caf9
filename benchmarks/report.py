"""The benchmark's report: the tables, the environment, and the targets the issue sets, checked on one run."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.load import Load
from benchmarks.scenarios import REFERENCE_CONNECTIONS, Instructions, Row
from benchmarks.servers import STACK_LABELS, Stack

MIB = 1024


@dataclass
class Target:
    name: str
    measured: str
    limit: str
    met: bool | None
    """None: not measured in this run (the rows it needs did not run or failed)."""


# -- tables -------------------------------------------------------------------------------------------------------

LOAD_HEADER = (f"{'scenario':<30} {'stack':<16} {'conns':>5} {'req/s':>7} {'p50':>7} {'p90':>7} {'p99':>7} "
               f"{'p99.9':>7} {'max':>7} {'errors':>6} {'us/req':>7} {'srv CPU':>7} {'stall':>5}")


def _ms(value: float) -> str:
    return f"{value:>7.2f}" if value < 100 else f"{value:>7.0f}"


def load_line(scenario: str, stack: str, load: Load) -> str:
    label = STACK_LABELS.get(stack, stack)
    if not load.requests:
        return f"{scenario:<30} {label:<16} {load.connections:>5} {'-':>7}"
    cpu_us = f"{load.cpu_us_per_request:.0f}" if load.cpu_us_per_request is not None else "-"
    cpu = f"{load.server_cpu_pct:.0f}%" if load.server_cpu_pct is not None else "-"
    stall = f"{load.cpu_pressure_pct:.0f}%" if load.cpu_pressure_pct is not None else "-"
    return (f"{scenario:<30} {label:<16} {load.connections:>5} {load.rps:>7.0f} {_ms(load.p50_ms)} "
            f"{_ms(load.p90_ms)} {_ms(load.p99_ms)} {_ms(load.p999_ms)} {_ms(load.max_ms)} {load.errors:>6} "
            f"{cpu_us:>7} {cpu:>7} {stall:>5}")


SERVER_HEADER = (f"{'scenario':<30} {'stack':<16} {'cold start ms':>13} {'idle RSS MiB':>12} "
                 f"{'peak RSS MiB':>12}  {'reply':<5}  {'loaded':<16} status")


def server_line(row: Row) -> str:
    def mib(kib: int | None) -> str:
        return f"{kib / MIB:.1f}" if kib else "-"

    cold = f"{row.cold_start_ms:.0f}" if row.cold_start_ms is not None else "-"
    reply = {"application/json": "JSON", "text/event-stream": "SSE"}.get(row.reply_type, row.reply_type or "-")
    status = "skipped" if row.skipped else "ok" if row.ok else "FAILED"
    label = STACK_LABELS.get(row.stack, row.stack)
    return (f"{row.scenario:<30} {label:<16} {cold:>13} {mib(row.idle_rss_kib):>12} {mib(row.peak_rss_kib):>12}  "
            f"{reply:<5}  {row.loaded_stack or '-':<16} {status}")


# -- targets ------------------------------------------------------------------------------------------------------


def _find(rows: Sequence[Row], scenario: str, stack: Stack) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.stack == stack and r.ok), None)


def _instr(instructions: Sequence[Instructions], scenario: str) -> float | None:
    return next((i.per_call for i in instructions if i.scenario == scenario and i.per_call), None)


def _ratio_target(name: str, ours: float | None, other: float | None, limit: float, unit: str) -> Target:
    if ours is None or other is None or not other:
        return Target(name, "not measured", f">= {limit:g}x", None)
    ratio = ours / other
    return Target(name, f"{ratio:.2f}x ({unit})", f">= {limit:g}x", ratio >= limit)


def targets(rows: Sequence[Row], instructions: Sequence[Instructions],
            soak: Mapping[str, Any] | None = None) -> list[Target]:
    """The issue's targets, as ratios within this run. Throughput targets use req/s at 16 connections on
    uvloop + httptools; instruction targets the callgrind counts (inverted: fewer instructions is faster)."""
    out: list[Target] = []
    shipped = [r for r in rows if r.shipped and r.ok]
    for row in shipped:
        for connections in (16, 64):
            load = row.at(connections)
            name = f"latency shape: {row.scenario}, {STACK_LABELS[row.stack]}, {connections} conns"
            if load is None or not load.p50_ms:
                out.append(Target(name, "not measured", "p99 <= 2x p50, max <= 10x p50", None))
                continue
            p99, peak = load.p99_ms / load.p50_ms, load.max_ms / load.p50_ms
            out.append(Target(name, f"p99 {p99:.1f}x, max {peak:.1f}x p50", "p99 <= 2x p50, max <= 10x p50",
                              p99 <= 2 and peak <= 10))
    for ours_label in ("ours 2026-07-28", "ours handshake"):
        ours = _find(rows, ours_label, "uvloop")
        ours_rps = (load.rps if (load := ours.at(REFERENCE_CONNECTIONS)) else None) if ours else None
        ours_instr = _instr(instructions, ours_label)
        for other_label, limit in (("Starlette route", 0.6), ("SDK stateful JSON", 3.0)):
            other = _find(rows, other_label, "uvloop")
            other_rps = (load.rps if (load := other.at(REFERENCE_CONNECTIONS)) else None) if other else None
            out.append(_ratio_target(f"{ours_label} / {other_label}, req/s at 16 conns, uvloop+httptools",
                                     ours_rps, other_rps, limit, "req/s"))
            other_instr = _instr(instructions, other_label)
            out.append(_ratio_target(f"{ours_label} / {other_label}, instructions per call", other_instr,
                                     ours_instr, limit, f"{other_instr or 0:,.0f} / {ours_instr or 0:,.0f}"))
    bearer, none = _instr(instructions, "ours 2026-07-28"), _instr(instructions, "ours 2026-07-28 --no-auth")
    name = "bearer auth cost over --no-auth, instructions per call"
    out.append(Target(name, f"{bearer - none:+,.0f}" if bearer and none else "not measured", "<= 30,000",
                      bearer - none <= 30_000 if bearer and none else None))
    with_auth, without = _find(rows, "ours 2026-07-28", "uvloop"), _find(rows, "ours 2026-07-28 --no-auth", "uvloop")
    a = with_auth.at(REFERENCE_CONNECTIONS) if with_auth else None
    b = without.at(REFERENCE_CONNECTIONS) if without else None
    name = "bearer auth cost over --no-auth, server CPU us per request at 16 conns (noisy)"
    if a and b and a.cpu_us_per_request is not None and b.cpu_us_per_request is not None:
        diff = a.cpu_us_per_request - b.cpu_us_per_request
        out.append(Target(name, f"{diff:+.1f} us", "<= 10 us", diff <= 10))
    else:
        out.append(Target(name, "not measured", "<= 10 us", None))
    for row in shipped:
        name = f"idle RSS: {row.scenario}, {STACK_LABELS[row.stack]}"
        rss = row.idle_rss_kib
        out.append(Target(name, f"{rss / MIB:.1f} MiB" if rss else "not measured", "<= 60 MiB",
                          rss <= 60 * MIB if rss else None))
    for stack in ("uvloop", "asyncio"):
        ours_starts = [r.cold_start_ms for r in rows if r.shipped and r.stack == stack and r.cold_start_ms]
        sdk_starts = [r.cold_start_ms for r in rows if r.server.startswith("sdk") and r.stack == stack
                      and r.cold_start_ms]
        name = f"cold start, ours (median of shipped rows) vs the SDK (median), {STACK_LABELS[stack]}"
        if ours_starts and sdk_starts:
            ours_ms, sdk_ms = statistics.median(ours_starts), statistics.median(sdk_starts)
            out.append(Target(name, f"{ours_ms:.0f} ms vs {sdk_ms:.0f} ms", "ours <= the SDK's", ours_ms <= sdk_ms))
        else:
            out.append(Target(name, "not measured", "ours <= the SDK's", None))
    if soak is not None:
        spread = soak.get("spread_mib")
        name = f"RSS flat over a {soak['minutes']:g}-minute soak at 16 conns ({soak['scenario']})"
        out.append(Target(name, f"{spread:.1f} MiB (max - min)" if spread is not None else "not measured",
                          "<= 5 MiB over 10 minutes", spread <= 5 if spread is not None else None))
    return out


def print_targets(found: Sequence[Target]) -> None:
    if not found:
        return
    print()
    print("Targets (figures from this run, as ratios):")
    width = max((len(t.name) for t in found), default=0)
    for t in found:
        verdict = "not measured" if t.met is None else "met" if t.met else "MISSED"
        print(f"  {t.name:<{width}}  {t.measured:<32} target {t.limit:<32} {verdict}")


# -- the environment ----------------------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def redis_version(url: str) -> str:
    with contextlib.suppress(Exception):  # not reachable, or no redis package: only the report says so
        import redis

        client: Any = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()
    return "not reachable"


def environment(wrk: str | None, cpus: tuple[int, int] | None, redis_url: str) -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    wrk_version = ""
    if wrk:
        proc = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
        banner = (proc.stdout or proc.stderr).strip()
        wrk_version = banner.splitlines()[0].partition(" Copyright")[0] if banner else ""
    valgrind = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        valgrind = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, timeout=10,
                                  check=False).stdout.strip()
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "uvicorn": _version("uvicorn"),
        "mcp": _version("mcp"),
        "mcp-platform": _version("mcp-platform"),
        "starlette": _version("starlette"),
        "uvloop": _version("uvloop"),
        "httptools": _version("httptools"),
        "h11": _version("h11"),
        "generator": (wrk_version or "wrk") if wrk else "python-asyncio",
        "valgrind": valgrind,
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "server_cpu": cpus[0] if cpus else None,
        "load_cpu": cpus[1] if cpus else None,
        "redis_url": redis_url,
        "redis_version": redis_version(redis_url),
    }


def print_environment(env: Mapping[str, Any], seconds: float, levels: Sequence[int], repeat: int) -> None:
    print()
    print(f"Python {env['python']} ({env['implementation']}), mcp-platform {env['mcp-platform']}, mcp "
          f"{env['mcp']}, uvicorn {env['uvicorn']}, starlette {env['starlette']}, uvloop {env['uvloop']}, "
          f"httptools {env['httptools']}, h11 {env['h11']}; {env['cpu_model']}")
    cpu = f"servers on CPU {env['server_cpu']}, load on CPU {env['load_cpu']}" if env["server_cpu"] is not None \
        else "not pinned (fewer than 2 CPUs)"
    print(f"Load: {env['generator']} -t1 --timeout 10s, {'/'.join(map(str, levels))} connections, {seconds:g} s "
          f"each after a 2 s warm-up per server; {cpu}.")
    if repeat > 1:
        print(f"Every server ran {repeat} times; each row is its best run by req/s at 16 connections.")


def print_rows(rows: Sequence[Row]) -> None:
    print()
    print(LOAD_HEADER)
    print("-" * len(LOAD_HEADER))
    for row in rows:
        if not row.loads:
            print(f"{row.scenario:<30} {STACK_LABELS.get(row.stack, row.stack):<16} "
                  f"{'skipped' if row.skipped else 'FAILED'}")
        for load in row.loads:
            print(load_line(row.scenario, row.stack, load))
    print("latencies in ms; us/req: server CPU time (user + system, all threads) per request; srv CPU: the "
          "server's CPU\ntime over the run (100% = its core saturated); stall: share of the run in which some task on "
          "the machine\nwaited for a CPU (/proc/pressure/cpu).")
    print()
    print(SERVER_HEADER)
    print("-" * len(SERVER_HEADER))
    for row in rows:
        print(server_line(row))
    print("cold start: spawn to the first `initialize` answered (the Starlette route: the first call); idle RSS: "
          "after\nstart-up and one call; peak RSS: VmHWM after the last run; loaded: event loop + HTTP parser in "
          "the\nserver's memory map.")


def print_instructions(instructions: Sequence[Instructions]) -> None:
    if not instructions:
        return
    print()
    route = _instr(instructions, "Starlette route")
    print(f"Instructions per tools/call under callgrind (uvloop+httptools, {instructions[0].calls} sequential calls "
          f"on one connection, after a 200-call warm-up):")
    for i in instructions:
        auth = i.auth or ("bearer" if i.bearer else "no auth")
        if i.per_call is None:
            print(f"  {i.scenario:<30} {auth:<15} FAILED: {i.error[:200]}")
            continue
        share = f"  route / this = {route / i.per_call:.2f}x" if route else ""
        print(f"  {i.scenario:<30} {auth:<15} {i.per_call:>12,.0f}{share}")
