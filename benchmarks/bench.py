#!/usr/bin/env python
"""tools/call throughput, latency, CPU, memory, cold start and instructions per call: mcp-platform as users run
it, against the official MCP Python SDK and a plain Starlette route, in one run on one machine.

Our server is started by its CLI (`python -m mcp_platform serve`) with the shipped defaults (every built-in
capability, the audit log, metrics, bearer auth from MCP_PLATFORM_TOKEN) plus a trivial add/echo tool module
(`--tools-dir`) and `[rate_limit] enabled = false`. Every server runs on uvloop + httptools and on asyncio + h11
(ours on asyncio + h11 through `cli_on_stack.py`: the same CLI with only uvicorn's loop and http fixed), pinned to
the first CPU, and is loaded at 1, 16, 64 and 256 keep-alive connections in turn by `wrk -t1 --timeout 10s` on
the second CPU (or a bounded asyncio generator when wrk is missing). Then each of ours, the SDK's stateful JSON
and 2026-07-28 JSON modes and the Starlette route is counted under callgrind: instructions per call, a figure
that hardly moves with the machine's load. Every server is first checked for a correct answer (HTTP 200 and a
result of 3), and again after its load; every reply under load is checked too.

    python benchmarks/bench.py [--duration 5 | --quick] [--connections 1,16,64,256] [--stack uvloop|asyncio]
                               [--only TEXT] [--repeat N] [--calls 1000 | --instructions | --no-instructions]
                               [--soak MINUTES] [--json results.json] [--generator auto|wrk|python] [--keep]
                               [--cluster] [--redis-url URL] [--postgres-url URL] [--auth SETUP ...]

`--auth SETUP` (repeatable) runs, instead of the usual rows, ours at 2026-07-28 on uvloop + httptools once per
setup of `auth_setups.py` (bearer, oauth, oauth-hs256, redis, redis-nocache, forward, forward-nocache), side by
side (rows `ours --auth SETUP`), loaded and counted under callgrind like the others; `--only` still filters them.

Exit status: 0 when every server passed its checks, 1 otherwise (and 3 with --fail-on-targets when a target the
run measured was missed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable as a package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import instructions as callgrind  # noqa: E402
from benchmarks.auth_setups import AUTH_CHOICES, PreparedAuth, prepared  # noqa: E402
from benchmarks.cluster import ClusterResult, best_cluster_of, print_cluster, run_cluster  # noqa: E402
from benchmarks.load import WARMUP_SECONDS, WRK_TIMEOUT_SECONDS, Load, measure, wrk_command, wrk_script  # noqa: E402
from benchmarks.otlp_sink import otlp_sink, tracing_settings  # noqa: E402
from benchmarks.report import (  # noqa: E402
    environment,
    print_environment,
    print_instructions,
    print_rows,
    print_targets,
    targets,
)
from benchmarks.scenarios import (  # noqa: E402
    CONNECTION_LEVELS,
    INSTRUCTION_SCENARIOS,
    REFERENCE_CONNECTIONS,
    SCENARIOS,
    Instructions,
    Row,
    Scenario,
    auth_scenario,
)
from benchmarks.servers import (  # noqa: E402
    MODERN_VERSION,
    STACK_LABELS,
    STACKS,
    CheckFailed,
    Stack,
    check_call,
    free_port,
    handshake,
    spawn,
)
from benchmarks.state import RedisProbe, observed_redis, redis_summary, throwaway_postgres  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/13"
"""The bench's own Redis database: FLUSHDB'd before every run that uses it, so it must hold nothing else."""
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
"""Where the two-instance run creates (and afterwards drops) its throwaway `mcpp_bench_<hex>` state database."""
SOAK_SAMPLE_SECONDS = 30.0


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text)


def run_row(scenario: Scenario, stack: Stack, levels: Sequence[int], seconds: float, wrk: str | None, root: Path,
            cpus: tuple[int, int] | None, redis: RedisProbe | None, redis_url: str | None = None) -> Row:
    """Start the scenario's server on `stack`, check it, warm it up, load it at each level in turn.
    `redis`: the probe for the (Redis) scenarios, None when Redis is not reachable (they are then skipped).
    `redis_url`: where the `--auth redis` setups write their token."""
    row = Row(scenario.label, scenario.server, scenario.era, stack, shipped=scenario.shipped,
              state=("redis" if scenario.redis else "process") if scenario.server.startswith("ours") else "",
              generator="wrk" if wrk else "python-asyncio")
    if scenario.redis and redis is None:
        row.skipped = "Redis is not reachable"
        return row
    probe = redis if scenario.redis else None
    workdir = root / _slug(f"{scenario.label}-{stack}")
    # the tracing rows' OTLP receiver and the --auth setups' services, closed after the server stops
    stack_of_sinks = contextlib.ExitStack()
    port = free_port()
    try:
        if probe:
            probe.flush()  # no sessions or events left over from an earlier run
        settings: dict[str, Any] = {"state": {"redis_url": probe.url}} if probe else {}
        if scenario.tracing:
            settings |= tracing_settings(stack_of_sinks.enter_context(otlp_sink()))
        credential: PreparedAuth = stack_of_sinks.enter_context(prepared(scenario.auth, port, redis_url))
        server = spawn(scenario.server, stack, workdir, cpus[0] if cpus else None, auth=scenario.bearer,
                       settings=settings or None, env_extra=credential.env, port=port, token=credential.token)
    except (CheckFailed, RuntimeError, ValueError, OSError) as exc:
        stack_of_sinks.close()
        row.notes.append(str(exc))
        return row
    row.cold_start_ms = round(server.cold_start_s * 1000, 1)
    row.loaded_stack = server.loaded_stack()
    auth, token = scenario.bearer, credential.token
    try:
        if row.loaded_stack != "?" and row.loaded_stack != "+".join(STACKS[stack]):
            raise CheckFailed(f"asked for {'+'.join(STACKS[stack])}, the server loaded {row.loaded_stack}")
        session_id = handshake(server.port, auth, token) if scenario.era == "handshake" else None
        if probe and session_id and not probe.has_session(session_id):
            raise CheckFailed(f"the session is not in Redis ({probe.url}): is state.redis_url in effect?")
        reply = check_call(server.port, scenario.era, auth, session_id, token)
        row.reply_type = reply.headers.get("content-type", "?").split(";")[0]
        row.idle_rss_kib = server.rss_kib()
        measure(wrk, scenario.era, auth, server, session_id, REFERENCE_CONNECTIONS, WARMUP_SECONDS, workdir,
                token=token)

        def observe(load: Load) -> contextlib.AbstractContextManager[None]:
            return observed_redis(probe, load)

        for connections in levels:
            load = measure(wrk, scenario.era, auth, server, session_id, connections, seconds, workdir, observe,
                           token=token)
            if probe and (summary := redis_summary(load.requests, load.redis_cpu_pct, load.redis_commands,
                                                   load.redis_usec_per_call)):
                load.notes.append(summary)
            row.loads.append(load)
        check_call(server.port, scenario.era, auth, session_id, token)  # still answering correctly after the load
        row.ok = all(load.errors == 0 and load.requests > 0 for load in row.loads)
    except (CheckFailed, OSError, subprocess.TimeoutExpired, TimeoutError, ValueError) as exc:
        row.notes.append(f"failed: {exc}")
        if tail := server.log_tail():
            row.notes.append(f"server log:\n{tail}")
    finally:
        row.peak_rss_kib = server.peak_rss_kib()
        server.stop()
        stack_of_sinks.close()
        if logged := server.log_errors():
            row.notes.append(logged)
    return row


def _reference_rps(row: Row) -> float:
    load = row.at(REFERENCE_CONNECTIONS) or (row.loads[0] if row.loads else None)
    return load.rps if load else 0.0


def best_of(runs: Sequence[Row]) -> Row:
    """The run with the most req/s at 16 connections (the least disturbed); a failed run fails the row."""
    chosen = max(runs, key=lambda r: (r.ok, _reference_rps(r)))
    best = replace(chosen, notes=list(chosen.notes))  # a copy: every run is also reported as it was
    if not all(r.ok for r in runs):
        best.ok = False
        best.notes.extend(note for r in runs if r is not chosen for note in r.notes)
    best.all_rps = [round(_reference_rps(r)) for r in runs]
    return best


def run_instructions(scenarios: Sequence[Scenario], calls: int, cpu: int | None,
                     redis_url: str | None = None) -> list[Instructions]:
    out = []
    for scenario in scenarios:
        print(f"callgrind {scenario.label}: ", end="", flush=True)
        entry = Instructions(scenario.label, scenario.server, scenario.era, scenario.bearer, calls,
                             auth=scenario.auth if scenario.bearer else "")
        try:
            with otlp_sink() as sink:
                settings = tracing_settings(sink) if scenario.tracing else None
                entry.per_call = round(callgrind.count(scenario.server, scenario.era, scenario.bearer, calls, cpu,
                                                       settings=settings, setup=scenario.auth,
                                                       redis_url=redis_url))
            print(f"{entry.per_call:,} instructions per call", flush=True)
        except (CheckFailed, OSError, subprocess.SubprocessError, ValueError, RuntimeError) as exc:
            entry.error = f"{type(exc).__name__}: {exc}"
            print(f"FAILED ({entry.error[:300]})", flush=True)
        out.append(entry)
    return out


def run_soak(scenario: Scenario, stack: Stack, minutes: float, wrk: str, root: Path,
             cpus: tuple[int, int] | None) -> dict[str, Any]:
    """One server under wrk at 16 connections for `minutes`, its RSS sampled every 30 s."""
    workdir = root / _slug(f"soak-{scenario.label}-{stack}")
    server = spawn(scenario.server, stack, workdir, cpus[0] if cpus else None, auth=scenario.bearer)
    out: dict[str, Any] = {"scenario": scenario.label, "stack": stack, "minutes": minutes,
                           "connections": REFERENCE_CONNECTIONS, "samples": [], "ok": False}
    try:
        session_id = handshake(server.port, scenario.bearer) if scenario.era == "handshake" else None
        check_call(server.port, scenario.era, scenario.bearer, session_id)
        measure(wrk, scenario.era, scenario.bearer, server, session_id, REFERENCE_CONNECTIONS, WARMUP_SECONDS,
                workdir)
        script = workdir / "soak.lua"
        script.write_text(wrk_script(scenario.era, scenario.bearer, session_id))
        seconds = minutes * 60
        proc = subprocess.Popen(wrk_command(wrk, script, server.port, seconds, REFERENCE_CONNECTIONS),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        samples: list[tuple[float, int | None]] = []
        while True:
            elapsed = time.monotonic() - started
            samples.append((round(elapsed, 1), server.rss_kib()))
            print(f"  {elapsed:6.0f} s  RSS {(samples[-1][1] or 0) / 1024:.1f} MiB", flush=True)
            if elapsed >= seconds or proc.poll() is not None:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=min(SOAK_SAMPLE_SECONDS, seconds - elapsed))
        stdout, stderr = proc.communicate(timeout=WRK_TIMEOUT_SECONDS + 60)
        lines = [line for line in stdout.splitlines() if line.startswith("BENCH ")]
        figures = json.loads(lines[-1][len("BENCH "):]) if lines else {}
        values = [kib for _, kib in samples if kib]
        out["samples"] = [{"seconds": s, "rss_kib": kib} for s, kib in samples]
        out["spread_mib"] = round((max(values) - min(values)) / 1024, 1) if values else None
        out["growth_mib"] = round((values[-1] - values[0]) / 1024, 1) if values else None
        out["requests"] = figures.get("requests")
        out["errors"] = sum(figures.get(k, 0) for k in ("connect", "read", "write", "timeout", "wrong"))
        check_call(server.port, scenario.era, scenario.bearer, session_id)
        out["ok"] = bool(figures) and out["errors"] == 0
        if not figures:
            out["error"] = stderr.strip()[-500:]
    finally:
        out["peak_rss_kib"] = server.peak_rss_kib()
        server.stop()
    return out


def print_soak(soak: dict[str, Any]) -> None:
    print()
    print(f"Soak: {soak['scenario']} on {STACK_LABELS[soak['stack']]}, {soak['connections']} connections, "
          f"{soak['minutes']:g} minutes, RSS every {SOAK_SAMPLE_SECONDS:g} s: spread (max - min) "
          f"{soak.get('spread_mib')} MiB, "
          f"last - first {soak.get('growth_mib')} MiB; {soak.get('requests')} requests, {soak.get('errors')} "
          f"errors; {'ok' if soak['ok'] else 'FAILED'}")
    print("  " + ", ".join(f"{s['seconds']:.0f}s {s['rss_kib'] / 1024:.1f}" for s in soak["samples"]
                           if s["rss_kib"]))


# -- main ---------------------------------------------------------------------------------------------------------


def pick_cpus() -> tuple[int, int] | None:
    available = sorted(os.sched_getaffinity(0))
    return (available[0], available[1]) if len(available) >= 2 else None


def _redis_url(value: str) -> str:
    """A Redis URL that names its database explicitly (it will be flushed), and not database 0."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss") or not parts.path.strip("/").isdigit() or parts.path == "/0":
        raise argparse.ArgumentTypeError("give redis://host:port/N with an explicit database N other than 0 "
                                         "(the bench flushes it)")
    return value


def _levels(value: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("give connection counts separated by commas, e.g. 1,16,64,256") from None
    if not levels or any(not 1 <= n <= 1024 for n in levels):
        raise argparse.ArgumentTypeError("connection counts must be between 1 and 1024")
    return levels


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0,
                        help="measured seconds per server and connection count (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 s per connection count, 200 callgrind calls")
    parser.add_argument("--connections", type=_levels, default=CONNECTION_LEVELS, metavar="N,N,...",
                        help="connection counts, each measured in turn on the same server (default 1,16,64,256); "
                             "the supporting rows (--no-auth, Redis, core only) run at 16 only")
    parser.add_argument("--stack", action="append", choices=tuple(STACKS),
                        help="run only on this uvicorn stack (repeatable; default both)")
    parser.add_argument("--only", action="append", metavar="TEXT",
                        help="run only scenarios whose name contains TEXT, or is TEXT after a leading = "
                             "(repeatable; also selects the callgrind rows and the soak's server)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run every server N times (in rounds) and report each one's best run (default 1)")
    parser.add_argument("--calls", type=int, default=1000, metavar="N",
                        help="calls counted under callgrind per server (default 1000)")
    section = parser.add_mutually_exclusive_group()
    section.add_argument("--instructions", action="store_true", help="run only the callgrind counts")
    section.add_argument("--no-instructions", action="store_true", help="skip the callgrind counts")
    section.add_argument("--soak", type=float, metavar="MINUTES",
                         help="instead of the run: load one server (ours 2026-07-28 on uvloop+httptools, or the "
                              "first --only match) at 16 connections for MINUTES, recording its RSS every 30 s")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--fail-on-targets", action="store_true",
                        help="exit 3 when a target this run measured was missed")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator: wrk if on PATH (auto), or the built-in asyncio one")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (server logs, wrk scripts and outputs) and print its path")
    parser.add_argument("--cluster", action="store_true",
                        help="also run two instances sharing Redis and PostgreSQL, loaded at once (needs wrk)")
    parser.add_argument("--redis-url", type=_redis_url, default=REDIS_URL, metavar="URL",
                        help=f"Redis database for the (Redis) scenarios and --cluster; FLUSHED before each run "
                             f"(default {REDIS_URL})")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, metavar="URL",
                        help=f"PostgreSQL database from which --cluster creates and drops a throwaway "
                             f"mcpp_bench_<hex> database (default {POSTGRES_URL})")
    parser.add_argument("--auth", action="append", choices=AUTH_CHOICES, metavar="SETUP",
                        help="instead of the usual rows: ours at 2026-07-28 (uvloop+httptools) with this auth setup "
                             f"(repeatable: side by side; {', '.join(AUTH_CHOICES)}); the redis setups write one "
                             "token to --redis-url")
    return parser


def _matches(label: str, only: Sequence[str] | None) -> bool:
    """Whether `--only` picks the row: a text found in its label, or `=LABEL` for that row alone."""
    return not only or any(label.lower() == t[1:].lower() if t.startswith("=") else t.lower() in label.lower()
                           for t in only)


@contextlib.contextmanager
def _workfolder(keep: bool) -> Iterator[Path]:
    if keep:
        tmp = tempfile.mkdtemp(prefix="mcp-bench-")
        print(f"work folder: {tmp}")
        yield Path(tmp)
    else:
        with tempfile.TemporaryDirectory(prefix="mcp-bench-") as tmp:
            yield Path(tmp)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    seconds = 2.0 if args.quick else args.duration
    calls = 200 if args.quick and args.calls == 1000 else args.calls
    if not 1 <= seconds <= 600:
        parser.error("--duration must be between 1 and 600 seconds")
    if not 1 <= args.repeat <= 10:
        parser.error("--repeat must be between 1 and 10")
    if not 10 <= calls <= 100_000:
        parser.error("--calls must be between 10 and 100000")
    wrk = shutil.which("wrk") if args.generator != "python" else None
    if args.generator == "wrk" and wrk is None:
        parser.error("wrk is not on PATH (apt-get install wrk), or use --generator python")
    if (args.cluster or args.soak) and wrk is None:
        parser.error("--cluster and --soak need wrk (apt-get install wrk)")
    stacks: tuple[Stack, ...] = tuple(args.stack or STACKS)
    cpus = pick_cpus()
    if cpus is not None:
        os.sched_setaffinity(0, {cpus[1]})  # this process and wrk; each server is pinned to cpus[0]
    env = environment(wrk, cpus, args.redis_url)

    if args.soak is not None:
        if not 0.5 <= args.soak <= 240:
            parser.error("--soak takes 0.5 to 240 minutes")
        chosen = next((s for s in SCENARIOS if s.shipped and _matches(s.label, args.only)), None)
        if chosen is None:
            parser.error("--only matched none of the shipped scenarios (ours 2026-07-28, ours handshake)")
        stack = stacks[0]
        print(f"soak: {chosen.label} on {stack}, {args.soak:g} minutes", flush=True)
        with _workfolder(args.keep) as tmp:
            assert wrk is not None
            soak = run_soak(chosen, stack, args.soak, wrk, tmp, cpus)
        print_soak(soak)
        found = [t for t in targets([], [], soak) if t.name.startswith("RSS flat")]
        print_targets(found)
        if args.json:
            args.json.write_text(json.dumps({"environment": env, "soak": soak,
                                             "targets": [asdict(t) for t in found]}, indent=2) + "\n")
        return 0 if soak["ok"] else 1

    rows_to_run = [auth_scenario(name) for name in dict.fromkeys(args.auth)] if args.auth else SCENARIOS
    plan = [(s, stack) for s in rows_to_run if _matches(s.label, args.only) for stack in s.stacks if stack in stacks]
    if args.instructions:
        plan = []
    counted_from = rows_to_run if args.auth else INSTRUCTION_SCENARIOS
    counted = [] if args.no_instructions else [s for s in counted_from if _matches(s.label, args.only)]
    if not plan and not counted and not args.cluster:
        parser.error("--only matched no scenario")
    if counted and shutil.which("valgrind") is None:
        parser.error("valgrind is not on PATH (apt-get install valgrind), or use --no-instructions")
    redis: RedisProbe | None = None
    if args.cluster or any(s.redis for s, _ in plan):
        redis = RedisProbe(args.redis_url)
        if reason := redis.unreachable():
            if args.cluster:
                parser.error(f"--cluster: {reason}")
            print(f"{reason}: the (Redis) scenarios are skipped", flush=True)
            redis.close()
            redis = None

    runs: dict[tuple[str, str], list[Row]] = {(s.label, stack): [] for s, stack in plan}
    cluster_runs: dict[str, list[ClusterResult]] = {era: [] for era in ("handshake", "modern")} if args.cluster \
        else {}
    counts: list[Instructions] = []
    with contextlib.ExitStack() as cleanup:
        tmp = cleanup.enter_context(_workfolder(args.keep))
        if redis is not None:
            cleanup.callback(redis.close)
            cleanup.callback(redis.flush_quietly)  # leave the bench's database empty
        state_url = ""
        if args.cluster:
            try:
                state_url = cleanup.enter_context(throwaway_postgres(args.postgres_url))
            except Exception as exc:  # asyncpg missing, server down, no permission: say so and stop
                parser.error(f"--cluster: cannot create a PostgreSQL database from {args.postgres_url}: "
                             f"{type(exc).__name__}: {exc}")
            print(f"cluster state database: {state_url}", flush=True)
        for round_no in range(1, args.repeat + 1):  # rounds, so that a noisy spell spreads over every server
            tag = f" (round {round_no}/{args.repeat})" if args.repeat > 1 else ""
            for scenario, stack in plan:
                levels = args.connections
                if scenario.single_level:
                    levels = (REFERENCE_CONNECTIONS,) if REFERENCE_CONNECTIONS in levels else levels[:1]
                print(f"{scenario.label} on {stack}{tag}: ", end="", flush=True)
                row = run_row(scenario, stack, levels, seconds, wrk, tmp / f"round{round_no}", cpus, redis,
                              args.redis_url)
                runs[(scenario.label, stack)].append(row)
                print(", ".join(f"{load.connections}: {load.rps:.0f} req/s" for load in row.loads) if row.ok
                      else f"skipped ({row.skipped})" if row.skipped else "FAILED", flush=True)
            for era, era_runs in cluster_runs.items():
                assert wrk is not None and redis is not None
                name = "handshake" if era == "handshake" else MODERN_VERSION
                print(f"2 instances {name}{tag}: ", end="", flush=True)
                outcome = run_cluster("handshake" if era == "handshake" else "modern", seconds, wrk,
                                      tmp / f"round{round_no}", cpus, redis, state_url)
                era_runs.append(outcome)
                print(" + ".join(f"{load.rps:.0f}" for r in outcome.instances for load in r.loads)
                      + f" = {outcome.total_rps:.0f} req/s" if outcome.ok else "FAILED", flush=True)
        if counted:
            counts = run_instructions(counted, calls, cpus[0] if cpus else None, args.redis_url)
    rows = [best_of(row_runs) for row_runs in runs.values()]
    cluster = [best_cluster_of(era_runs) for era_runs in cluster_runs.values()]
    found = [] if args.auth else targets(rows, counts)  # the targets are about the usual rows

    print_environment(env, seconds, args.connections, args.repeat)
    if rows:
        print_rows(rows)
    print_instructions(counts)
    if cluster:
        print_cluster(cluster, rows, env, seconds, args.repeat)
    print_targets(found)
    notes = [(f"{r.scenario} ({r.stack})", note) for r in rows for note in r.notes]
    notes += [(f"{r.scenario} ({r.stack}, {load.connections} conns)", note) for r in rows for load in r.loads
              for note in load.notes]
    notes += [(f"{r.scenario} ({r.stack})", f"skipped: {r.skipped}") for r in rows if r.skipped]
    if args.repeat > 1:
        notes += [(f"{r.scenario} ({r.stack})", "req/s at 16 conns of each run: " + ", ".join(map(str, r.all_rps)))
                  for r in rows if not r.skipped]
    if notes:
        print()
        for where, note in notes:
            print(f"{where}: {note}")
    if args.json:
        payload = {"environment": env, "seconds": seconds, "warmup_seconds": WARMUP_SECONDS,
                   "connections": list(args.connections), "repeat": args.repeat,
                   "rows": [asdict(r) for r in rows], "instructions": [asdict(i) for i in counts],
                   "targets": [asdict(t) for t in found],
                   "all_runs": {f"{label} ({stack})": [asdict(r) for r in row_runs]
                                for (label, stack), row_runs in runs.items()},
                   "cluster": [asdict(c) for c in cluster],
                   "cluster_runs": {era: [asdict(c) for c in era_runs] for era, era_runs in cluster_runs.items()}}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    passed = all(r.ok or r.skipped for row_runs in runs.values() for r in row_runs)
    passed = passed and all(c.ok for era_runs in cluster_runs.values() for c in era_runs)
    passed = passed and all(i.per_call is not None for i in counts)
    if not passed:
        return 1
    return 3 if args.fail_on_targets and any(t.met is False for t in found) else 0


if __name__ == "__main__":
    sys.exit(main())
