"""Two instances of ours sharing Redis and a throwaway PostgreSQL state database, loaded at once (`--cluster`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.load import WARMUP_SECONDS, Load, apply_wrk_figures, finish, observed, run_wrk_many, wrk_script
from benchmarks.report import LOAD_HEADER, load_line
from benchmarks.scenarios import Row
from benchmarks.servers import MODERN_VERSION, CheckFailed, Era, Server, check_call, handshake, spawn
from benchmarks.state import RedisProbe, observed_redis, redis_summary

CLUSTER_CONNECTIONS = 8
"""Per instance (and per wrk process) in the two-instance run: 16 in all, as for one instance."""
CLUSTER_SECRET = "bench-cluster-secret-key-0123456789abcdef"


@dataclass
class ClusterResult:
    """Two instances of ours sharing Redis and a PostgreSQL state database, loaded at once, one wrk each."""

    era: str
    ok: bool = False
    instances: list[Row] = field(default_factory=list)
    """A (which created the session, in the handshake era) then B; each with its own wrk's figures."""
    total_rps: float = 0.0
    errors: int = 0
    redis_cpu_pct: float | None = None
    redis_commands: dict[str, int] = field(default_factory=dict)
    redis_usec_per_call: dict[str, float] = field(default_factory=dict)
    sessions_in_redis: int | None = None
    """Session keys in Redis after the run, less those the cold-start probes made: 1 in the handshake era (the one
    both instances served)."""
    all_total_rps: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def cpu_affinity(cpus: set[int]) -> Iterator[None]:
    """This process (and the wrk processes it starts) on `cpus` for the block."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_cluster(era: Era, seconds: float, wrk: str, root: Path, cpus: tuple[int, int] | None,
                redis: RedisProbe, state_url: str) -> ClusterResult:
    """Instance A on the first CPU, B on the second, both started by the CLI (uvloop + httptools, bearer auth);
    in the handshake era one session, created on A, is loaded on both at once (B has never seen it but through
    Redis). wrk is not pinned: it shares both CPUs."""
    label = f"2 instances {'handshake' if era == 'handshake' else MODERN_VERSION}"
    out = ClusterResult(era)
    settings = {"secret_key": CLUSTER_SECRET, "state": {"url": state_url, "redis_url": redis.url}}
    servers: list[Server] = []
    workdir = root / label.replace(" ", "_")
    loads: list[Load] = []
    try:
        redis.flush()
        for n, name in enumerate("AB"):  # one after the other: the first creates the state tables
            servers.append(spawn("ours", "uvloop", workdir / name, cpus[n] if cpus else None, settings=settings))
            out.instances.append(Row(f"{label}: {name}", "ours", era, "uvloop", state="redis+postgres",
                                     generator="wrk", loaded_stack=servers[-1].loaded_stack(),
                                     cold_start_ms=round(servers[-1].cold_start_s * 1000)))
        probes = redis.session_keys()  # the cold-start `initialize` of each instance made one
        session_id = handshake(servers[0].port, True) if era == "handshake" else None
        for server, row in zip(servers, out.instances, strict=True):  # B answers A's session
            reply = check_call(server.port, era, True, session_id)
            row.reply_type = reply.headers.get("content-type", "?").split(";")[0]
            row.idle_rss_kib = server.rss_kib()
        scripts = []
        for n, server in enumerate(servers):
            script = workdir / f"load-{'AB'[n]}.lua"
            script.write_text(wrk_script(era, True, session_id, first_id=n * 1_000_000_000))
            scripts.append((script, server.port))
        loads = [Load(CLUSTER_CONNECTIONS) for _ in servers]
        with cpu_affinity(set(os.sched_getaffinity(0)) | set(cpus or ())):
            run_wrk_many(wrk, scripts, WARMUP_SECONDS, CLUSTER_CONNECTIONS)
            total = Load(2 * CLUSTER_CONNECTIONS)
            with contextlib.ExitStack() as observing:
                for server, load in zip(servers, loads, strict=True):
                    observing.enter_context(observed(server, load))
                observing.enter_context(observed_redis(redis, total))
                all_figures = run_wrk_many(wrk, scripts, seconds, CLUSTER_CONNECTIONS)
        for n, (figures, load, row) in enumerate(zip(all_figures, loads, out.instances, strict=True)):
            (workdir / f"wrk-{'AB'[n]}.txt").write_text(figures["output"])
            apply_wrk_figures(figures, load)
            finish(load)
            row.loads.append(load)
        out.redis_cpu_pct, out.redis_commands = total.redis_cpu_pct, total.redis_commands
        out.redis_usec_per_call = total.redis_usec_per_call
        for server in servers:  # both still answer correctly after the load
            check_call(server.port, era, True, session_id)
        if session_id is not None:
            out.sessions_in_redis = redis.session_keys() - probes
            if out.sessions_in_redis != 1 or not redis.has_session(session_id):
                raise CheckFailed(f"expected exactly the one shared session in Redis (besides the {probes} made by "
                                  f"the cold-start probes), found {out.sessions_in_redis} more session keys")
        for row in out.instances:
            row.ok = all(load.errors == 0 and load.requests > 0 for load in row.loads) and bool(row.loads)
        out.ok = all(r.ok for r in out.instances)
    except (CheckFailed, OSError, subprocess.TimeoutExpired, TimeoutError, ValueError) as exc:
        out.notes.append(f"failed: {exc}")
        for name, server in zip("AB", servers, strict=False):
            if tail := server.log_tail():
                out.notes.append(f"server log of {name}:\n{tail}")
    finally:
        for server, row in zip(servers, out.instances, strict=False):
            row.peak_rss_kib = server.peak_rss_kib()
            server.stop()
            if logged := server.log_errors():
                row.notes.append(logged)
    out.total_rps = sum(load.rps for r in out.instances for load in r.loads)
    out.errors = sum(load.errors for r in out.instances for load in r.loads)
    out.notes.extend(f"{r.scenario}: {note}" for r in out.instances for load in r.loads for note in load.notes)
    out.notes.extend(f"{r.scenario}: {note}" for r in out.instances for note in r.notes)
    return out


def best_cluster_of(runs: Sequence[ClusterResult]) -> ClusterResult:
    best = replace(max(runs, key=lambda r: (r.ok, r.total_rps)))  # a copy: every run is also reported as it was
    if len(runs) > 1:
        best.notes = [f"run {n}: {note}" for n, r in enumerate(runs, 1) for note in r.notes]
    if not all(r.ok for r in runs):
        best.ok = False
        failed = ", ".join(str(n) for n, r in enumerate(runs, 1) if not r.ok)
        best.notes.append(f"{best.instances[0].scenario.rpartition(':')[0] if best.instances else best.era}: "
                          f"run(s) {failed} of {len(runs)} failed; the figures shown are the best run's")
    best.all_total_rps = [round(r.total_rps) for r in runs]
    return best


def print_cluster(cluster: Sequence[ClusterResult], rows: Sequence[Row], env: Mapping[str, Any],
                  seconds: float, repeat: int) -> None:
    print()
    pinning = f"A on CPU {env['server_cpu']}, B on CPU {env['load_cpu']}" if env["server_cpu"] is not None \
        else "not pinned"
    print(f"Two instances of ours ({pinning}), started by the CLI, sharing Redis ({env['redis_url']}) and a "
          f"throwaway PostgreSQL state database;\none wrk per instance, {CLUSTER_CONNECTIONS} connections each, both "
          f"at once, not pinned, {seconds:g} s after a {WARMUP_SECONDS:g} s warm-up."
          + (f" Best of {repeat} runs by total req/s." if repeat > 1 else ""))
    print()
    print(LOAD_HEADER)
    print("-" * len(LOAD_HEADER))
    for c in cluster:
        for r in c.instances:
            for load in r.loads:
                print(load_line(r.scenario, r.stack, load))
        label = c.instances[0].scenario.rpartition(":")[0] if c.instances else c.era
        print(f"{label + ': A + B':<47} {2 * CLUSTER_CONNECTIONS:>5} {c.total_rps:>7.0f}   errors {c.errors}, "
              f"{'ok' if c.ok else 'FAILED'}")
        same_era = [(r, load) for r in rows if r.server == "ours" and r.era == c.era and r.stack == "uvloop"
                    for load in r.loads if load.connections == 2 * CLUSTER_CONNECTIONS and load.requests]
        if same_era:
            print(f"{'':<4}one instance, same run: "
                  + "; ".join(f"{r.scenario} {load.rps:.0f} req/s" for r, load in same_era))
        requests = sum(load.requests for r in c.instances for load in r.loads)
        if summary := redis_summary(requests, c.redis_cpu_pct, c.redis_commands, c.redis_usec_per_call):
            print(f"{'':<4}{summary}")
        if c.sessions_in_redis is not None:
            print(f"{'':<4}sessions in Redis after the run: {c.sessions_in_redis} (created on A, served by both)")
        if repeat > 1:
            print(f"{'':<4}total req/s of each run: " + ", ".join(map(str, c.all_total_rps)))
    print("On a 2-core machine the two instances, the two wrk processes and Redis (and PostgreSQL) compete for the "
          "same\ncores: this measures the cost of shared state and correctness under load, not scaling.")
    notes = [note for c in cluster for note in c.notes]
    if notes:
        print()
        for note in notes:
            print(note)
