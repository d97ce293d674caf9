"""Load generators for the benchmark: wrk with a Lua script, or a bounded asyncio fallback; one measured run each.

Every reply is checked (status 200 and the tool's text result "3", in JSON or in an SSE data line); anything
else, and every socket error or timeout, counts as an error. Latencies are closed-loop: a connection sends its
next request when the previous one has answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.servers import (
    HOST,
    PATH,
    REQUEST_TIMEOUT,
    TOKEN,
    CheckFailed,
    Era,
    Server,
    call_headers,
    split_body,
)

WARMUP_SECONDS = 2.0
"""Load before the first measured run of each server (imports, first-call caches, the audit writer's start)."""
WRK_TIMEOUT_SECONDS = 10
"""wrk's `--timeout`: a request unanswered for this long is a timeout (an error) and left out of the latency
figures, so it is long enough that slow answers are measured, not dropped."""


@dataclass
class Load:
    """One measured run at one number of connections."""

    connections: int
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    max_ms: float = 0.0
    errors: int = 0
    """Socket errors, timeouts and responses that were not a correct 200, during the measured run."""
    server_cpu_s: float | None = None
    """CPU time (user + system, every thread) the server used during the measured run."""
    cpu_us_per_request: float | None = None
    server_cpu_pct: float | None = None
    """`server_cpu_s` as a share of one CPU over the run: near 100 means the server was the bottleneck."""
    cpu_pressure_pct: float | None = None
    """Share of the measured run during which some task on the machine waited for a CPU (/proc/pressure/cpu)."""
    redis_cpu_pct: float | None = None
    redis_commands: dict[str, int] = field(default_factory=dict)
    redis_usec_per_call: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _cpu_stall_us() -> int | None:
    """Microseconds, since boot, during which some runnable task waited for a CPU."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(some.rpartition("total=")[2])
    return None


@contextlib.contextmanager
def observed(server: Server, load: Load) -> Iterator[None]:
    """Record the server's CPU use and the machine's CPU pressure over the block (the measured run)."""
    cpu, stall, started = server.cpu_seconds(), _cpu_stall_us(), time.monotonic()
    yield
    wall = time.monotonic() - started
    cpu_after, stall_after = server.cpu_seconds(), _cpu_stall_us()
    if cpu is not None and cpu_after is not None and wall > 0:
        load.server_cpu_s = cpu_after - cpu
        load.server_cpu_pct = round(100 * load.server_cpu_s / wall, 1)
    if stall is not None and stall_after is not None and wall > 0:
        load.cpu_pressure_pct = round(100 * (stall_after - stall) / 1e6 / wall, 1)


def finish(load: Load) -> None:
    if load.server_cpu_s is not None and load.requests:
        load.cpu_us_per_request = round(load.server_cpu_s / load.requests * 1e6, 1)


# -- wrk ----------------------------------------------------------------------------------------------------------

WRK_SCRIPT = """\
wrk.method = "POST"
{headers}
local prefix = [==[{prefix}]==]
local suffix = [==[{suffix}]==]
local counter = {first_id}
bad = 0
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, prefix .. counter .. suffix)
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"text":"3"', 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local wrong = 0
  for _, thread in ipairs(threads) do
    wrong = wrong + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH {{\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p90_us\\":%d,\\"p99_us\\":%d," ..
    "\\"p999_us\\":%d,\\"max_us\\":%d,\\"wrong\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d," ..
    "\\"status\\":%d,\\"timeout\\":%d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, wrong, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk_script(era: Era, auth: bool, session_id: str | None, first_id: int = 0, token: str = TOKEN) -> str:
    """`first_id`: request ids count up from just above it (two wrk processes sharing one session use disjoint
    ranges, as one client would never reuse an id in flight)."""
    prefix, suffix = split_body(era)
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in call_headers(era, auth, session_id, token).items())
    return WRK_SCRIPT.format(headers=headers, prefix=prefix, suffix=suffix, first_id=first_id)


def wrk_command(wrk: str, script: Path, port: int, seconds: float, connections: int) -> list[str]:
    return [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", f"--timeout={WRK_TIMEOUT_SECONDS}s",
            "--latency", "-s", str(script), f"http://{HOST}:{port}{PATH}"]


def wrk_figures(proc: subprocess.Popen[str], stdout: str, stderr: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        raise CheckFailed(f"wrk failed (exit {proc.returncode}): {stderr.strip() or stdout[-500:]}")
    figures: dict[str, Any] = json.loads(lines[-1][len("BENCH "):])
    figures["output"] = stdout
    return figures


def run_wrk_many(wrk: str, loads: Sequence[tuple[Path, int]], seconds: float,
                 connections: int) -> list[dict[str, Any]]:
    """One wrk process per (Lua script, port), all started at once; the figures of each, once all are done."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for script, port in loads:
            procs.append(subprocess.Popen(wrk_command(wrk, script, port, seconds, connections),
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + seconds + WRK_TIMEOUT_SECONDS + 60
        outputs = [proc.communicate(timeout=max(1.0, deadline - time.monotonic())) for proc in procs]
    finally:
        for proc in procs:  # only on an error above (a timeout): they have all exited otherwise
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    return [wrk_figures(proc, *output) for proc, output in zip(procs, outputs, strict=True)]


def apply_wrk_figures(figures: Mapping[str, Any], load: Load) -> None:
    load.requests = figures["requests"]
    load.seconds = figures["duration_us"] / 1e6
    load.rps = load.requests / load.seconds if load.seconds else 0.0
    for name in ("p50", "p90", "p99", "p999", "max"):
        setattr(load, f"{name}_ms", figures[f"{name}_us"] / 1000)
    socket_errors = sum(figures[k] for k in ("connect", "read", "write", "timeout"))
    load.errors = socket_errors + figures["wrong"]
    if figures["wrong"]:
        load.notes.append(f"{figures['wrong']} replies were not HTTP 200 with a result of 3")
    if socket_errors:
        load.notes.append("wrk socket errors: " + ", ".join(
            f"{k} {figures[k]}" for k in ("connect", "read", "write", "timeout") if figures[k])
            + (f" (a timeout: a request still unanswered after {WRK_TIMEOUT_SECONDS} s; it is left out of the "
               "latency figures)" if figures["timeout"] else ""))


# -- the asyncio fallback -----------------------------------------------------------------------------------------


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: status, body (Content-Length or chunked, e.g. an SSE stream up to its final
    event) and whether the connection stays open."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split()[1])
    length: int | None = None
    chunked = False
    keep_alive = True
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            keep_alive = False
    if chunked:
        parts = []
        while (size := int((await reader.readline()).split(b";")[0], 16)) > 0:
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return status, b"".join(parts), keep_alive
    if length is not None:
        return status, await reader.readexactly(length), keep_alive
    return status, await reader.read(), False


async def _connection(port: int, head: bytes, prefix: bytes, suffix: bytes, ids: Iterator[int],
                      stop_at: float, latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while time.perf_counter() < stop_at:
            body = prefix + str(next(ids)).encode() + suffix
            started = time.perf_counter()
            try:
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                status, reply, keep_alive = await asyncio.wait_for(_read_reply(reader), REQUEST_TIMEOUT)
            except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError) as exc:
                errors.append(type(exc).__name__)
                return
            latencies.append(time.perf_counter() - started)
            if status != 200 or b'"text":"3"' not in reply:
                errors.append(f"HTTP {status}")
            if not keep_alive:
                errors.append("connection closed by server")
                return
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _python_load(era: Era, auth: bool, port: int, session_id: str | None, seconds: float,
                       connections: int, token: str = TOKEN) -> tuple[list[float], list[str], float]:
    headers = call_headers(era, auth, session_id, token) | {"Host": f"{HOST}:{port}"}
    head = (f"POST {PATH} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())).encode()
    prefix, suffix = split_body(era)
    ids = iter(range(1, sys.maxsize))
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    stop_at = started + seconds
    tasks = [_connection(port, head, prefix.encode(), suffix.encode(), ids, stop_at, latencies, errors)
             for _ in range(connections)]
    await asyncio.wait_for(asyncio.gather(*tasks), seconds + REQUEST_TIMEOUT + 5)
    return latencies, errors, time.perf_counter() - started


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = math.ceil(round(pct / 100 * len(sorted_values), 9))  # round: 99.9 / 100 * 1000 is 999.0000000000001
    index = min(len(sorted_values) - 1, max(0, rank - 1))
    return sorted_values[index]


def _run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def python_load(era: Era, auth: bool, server: Server, session_id: str | None, seconds: float,
                load: Load, token: str = TOKEN) -> None:
    latencies, errors, elapsed = _run_async(_python_load(era, auth, server.port, session_id, seconds,
                                                         load.connections, token))
    latencies.sort()
    load.requests = len(latencies)
    load.seconds = elapsed
    load.rps = len(latencies) / elapsed if elapsed else 0.0
    for name, pct in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        setattr(load, f"{name}_ms", percentile(latencies, pct) * 1000)
    load.max_ms = latencies[-1] * 1000 if latencies else 0.0
    load.errors = len(errors)
    if errors:
        kinds = sorted(set(errors))
        load.notes.append(f"{len(errors)} errors: " + ", ".join(f"{k} x{errors.count(k)}" for k in kinds))


def measure(wrk: str | None, era: Era, auth: bool, server: Server, session_id: str | None, connections: int,
            seconds: float, script_dir: Path, observe: Any = None, token: str = TOKEN) -> Load:
    """One measured run. `observe(load)`: an extra context manager around it (the Redis counters). `token`: the
    credential every call sends."""
    load = Load(connections)
    script = script_dir / "load.lua"
    script.write_text(wrk_script(era, auth, session_id, token=token))
    with contextlib.ExitStack() as stack:
        stack.enter_context(observed(server, load))
        if observe is not None:
            stack.enter_context(observe(load))
        if wrk:
            figures = run_wrk_many(wrk, [(script, server.port)], seconds, connections)[0]
        else:
            python_load(era, auth, server, session_id, seconds, load, token)
    if wrk:
        (script_dir / f"wrk-{connections}.txt").write_text(figures["output"])
        apply_wrk_figures(figures, load)
    finish(load)
    return load
