#!/usr/bin/env python
"""tools/call throughput and latency: mcp-platform against the official MCP Python SDK, one run, one machine.

Each scenario gets a fresh server: a subprocess running uvicorn with one worker (loop="auto", http="auto", so
uvloop + httptools when installed, log level warning) pinned to one CPU, while the load generator runs on another.
The load is a trivial `add(a=1, b=2)` tool call over 16 keep-alive connections: `wrk` when it is on PATH, else a
bounded asyncio generator in this process. Every scenario is first checked for a correct answer (HTTP 200 and a
result of 3) and is only loaded if that check passes. The "(Redis)" scenarios keep our server's shared state in
Redis (database 13 by default, flushed before each run); `--cluster` adds a run of two instances sharing Redis and
a throwaway PostgreSQL state database, one CPU each, loaded at once by two wrk processes.

    python benchmarks/bench.py [--duration 10 | --quick] [--repeat N] [--json results.json]
                               [--generator auto|wrk|python] [--only TEXT] [--keep]
                               [--cluster] [--redis-url URL] [--postgres-url URL]

Exit status: 0 when every scenario passed its checks, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

ServerKind = Literal["ours", "sdk-sse", "sdk-json", "starlette"]
Era = Literal["handshake", "modern"]

HOST = "127.0.0.1"
PATH = "/mcp"
TOKEN = "bench-token"
HANDSHAKE_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
CONNECTIONS = 16
CLUSTER_CONNECTIONS = 8
"""Per instance (and per wrk process) in the two-instance run."""
REDIS_URL = "redis://127.0.0.1:6379/13"
"""The bench's own Redis database: FLUSHDB'd before every run that uses it, so it must hold nothing else."""
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
"""Where the two-instance run creates (and afterwards drops) its throwaway `mcpp_bench_<hex>` state database."""
CLUSTER_SECRET = "bench-cluster-secret-key-0123456789abcdef"
WARMUP_SECONDS = 2.0
STARTUP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0

TOOL_MODULE = '''\
from mcp_platform import tool


@tool(read_only=True, title="Add")
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b
'''

MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1.0"},
}


@dataclass(frozen=True)
class Scenario:
    label: str
    server: ServerKind
    era: Era
    redis: bool = False
    """Ours with `state.redis_url` set: sessions (read and TTL-refreshed on every handshake-era request), stream
    events, rate-limit counters and change notifications live in Redis."""


SCENARIOS = (
    Scenario("ours handshake", "ours", "handshake"),
    Scenario("ours handshake (Redis)", "ours", "handshake", redis=True),
    Scenario("ours 2026-07-28", "ours", "modern"),
    Scenario("ours 2026-07-28 (Redis)", "ours", "modern", redis=True),
    Scenario("SDK stateful SSE (default)", "sdk-sse", "handshake"),
    Scenario("SDK stateful JSON", "sdk-json", "handshake"),
    Scenario("SDK 2026-07-28 (JSON mode)", "sdk-json", "modern"),
    Scenario("SDK 2026-07-28 (default mode)", "sdk-sse", "modern"),
    # Not MCP: what the same stack does when parsing, dispatching and serialising cost next to nothing.
    Scenario("ceiling: plain Starlette route", "starlette", "modern"),
)


@dataclass
class Result:
    scenario: str
    server: str
    era: str
    ok: bool
    skipped: str = ""
    """Why the scenario did not run (a service it needs is not there); a skipped scenario does not fail the run."""
    state: str = ""
    """Where our server kept its shared state: "process" (memory + SQLite), "redis", or "redis+postgres"."""
    generator: str = ""
    reply_type: str = ""
    """Content type of the tools/call reply: application/json or text/event-stream."""
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    """Slowest answered request (wrk: requests unanswered after 2 s count as timeouts instead)."""
    errors: int = 0
    """Socket errors, timeouts and responses that were not a correct 200, during the measured run."""
    rss_kib: int | None = None
    """VmRSS of the server process after its run."""
    server_cpu_pct: float | None = None
    """CPU time the server used during the measured run, as a share of one CPU: near 100 means the server was
    the bottleneck; well below means something else was (the load generator, or other processes on its CPU)."""
    cpu_pressure_pct: float | None = None
    """Share of the measured run during which some task on the machine waited for a CPU (/proc/pressure/cpu)."""
    redis_cpu_pct: float | None = None
    """CPU time the Redis server used during the measured run, as a share of one CPU (`INFO cpu`; server-wide, so
    it includes other clients of the same Redis)."""
    redis_commands: dict[str, int] = field(default_factory=dict)
    """Redis commands run during the measured run, by name (`INFO commandstats` after minus before)."""
    redis_usec_per_call: dict[str, float] = field(default_factory=dict)
    """Redis's own time per call of each of those commands, in microseconds, over the measured run."""
    all_rps: list[int] = field(default_factory=list)
    """req/s of every run of this scenario (with --repeat); the figures shown are the best run's."""
    server_stack: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class CheckFailed(Exception):
    """A scenario's server did not answer as it should."""


# -- the server subprocess ----------------------------------------------------------------------------------------


def _write_ours_workdir(workdir: Path, settings: Mapping[str, Any] | None) -> None:
    (workdir / "tools").mkdir(parents=True, exist_ok=True)
    (workdir / "tools" / "bench_tools.py").write_text(TOOL_MODULE)
    (workdir / "bench.toml").write_text("")
    if settings:
        (workdir / "settings.json").write_text(json.dumps(settings))


def _build_ours(workdir: Path) -> Any:
    from mcp_platform import create_app, load_settings
    from mcp_platform.errors import ConfigError

    overrides: dict[str, Any] = {
        "token": TOKEN,
        "tools": {"dirs": [str(workdir / "tools")]},
        "state": {"url": f"sqlite+aiosqlite:///{workdir / 'state.db'}"},
        "rate_limit": {"enabled": False},
    }
    extra = workdir / "settings.json"  # the (Redis) and two-instance runs: where state lives, a shared secret key
    if extra.exists():
        for key, value in json.loads(extra.read_text()).items():
            overrides[key] = overrides[key] | value if isinstance(value, dict) and key in overrides else value
    try:
        settings = load_settings(workdir / "bench.toml", **overrides)
    except ConfigError:
        del overrides["rate_limit"]  # an older or newer settings model without it
        settings = load_settings(workdir / "bench.toml", **overrides)
    return create_app(settings, capabilities=[], freeze_gc=True)  # as `mcp-platform serve` runs it


def _build_sdk(json_response: bool) -> Any:
    from mcp.server.mcpserver import MCPServer

    mcp = MCPServer("bench")

    @mcp.tool()
    async def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return mcp.streamable_http_app(json_response=json_response)


def _build_starlette() -> Any:
    """A plain Starlette route that parses the JSON-RPC body, calls `add` and serialises the reply: the ceiling
    an MCP server on this stack can approach, with no protocol checks at all."""
    from pydantic_core import from_json, to_json
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def add(a: int, b: int) -> int:
        return a + b

    async def endpoint(request: Request) -> Response:
        message = from_json(await request.body())
        value = await add(**message["params"]["arguments"])
        result = {"content": [{"type": "text", "text": str(value)}], "structuredContent": {"result": value},
                  "isError": False}
        return Response(to_json({"jsonrpc": "2.0", "id": message["id"], "result": result}),
                        media_type="application/json")

    return Starlette(routes=[Route(PATH, endpoint, methods=["POST"])])


def build_app(kind: ServerKind, workdir: Path) -> Any:
    if kind == "ours":
        return _build_ours(workdir)
    if kind == "starlette":
        return _build_starlette()
    return _build_sdk(json_response=kind == "sdk-json")


def serve(kind: ServerKind, workdir: Path, cpu: int | None) -> None:
    """Child process: bind a free loopback port, report it (and the uvicorn stack) in a file, then serve."""
    import uvicorn

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    app = build_app(kind, workdir)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))  # uvicorn listens only once the lifespan has started: connecting means ready
    config = uvicorn.Config(app, loop="auto", http="auto", log_level="warning", workers=1)
    config.load()
    factory = config.get_loop_factory()
    info = {
        "port": str(sock.getsockname()[1]),
        "http": config.http_protocol_class.__name__,
        "loop": getattr(factory, "__module__", None) or repr(factory),
        "cpu": str(sorted(os.sched_getaffinity(0))),
    }
    tmp = workdir / "server.json.tmp"
    tmp.write_text(json.dumps(info))
    tmp.replace(workdir / "server.json")
    uvicorn.Server(config).run(sockets=[sock])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    stack: dict[str, str]
    log: Path

    def rss_kib(self) -> int | None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def cpu_seconds(self) -> float | None:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_errors(self) -> str:
        """"N ERROR lines in the server log (first: ...)", or "" when there are none."""
        with contextlib.suppress(OSError):
            found = [line for line in self.log.read_text(errors="replace").splitlines() if line.startswith("ERROR")]
            if found:
                return f"{len(found)} ERROR lines in the server log (first: {found[0][:120]!r}; --keep keeps it)"
        return ""

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def start_server(kind: ServerKind, workdir: Path, cpu: int | None,
                 settings: Mapping[str, Any] | None = None) -> Server:
    """`settings`: overrides for ours, merged into the bench's (a dict value updates that section)."""
    workdir.mkdir(parents=True)
    if kind == "ours":
        _write_ours_workdir(workdir, settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_PLATFORM_")}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--workdir", str(workdir)]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    info_file = workdir / "server.json"
    while not info_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            server = Server(process, 0, {}, log)
            server.stop()
            raise CheckFailed(f"{kind} server did not start:\n{server.log_tail()}")
        time.sleep(0.05)
    info = json.loads(info_file.read_text())
    server = Server(process, int(info.pop("port")), info, log)
    while True:  # wait until it accepts connections (the lifespan has finished starting)
        try:
            socket.create_connection((HOST, server.port), timeout=1).close()
            return server
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise CheckFailed(f"{kind} server never accepted connections:\n{server.log_tail()}") from None
            time.sleep(0.05)


def _cpu_stall_us() -> int | None:
    """Microseconds, since boot, during which some runnable task waited for a CPU."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(some.rpartition("total=")[2])
    return None


@contextlib.contextmanager
def observed(server: Server, result: Result) -> Iterator[None]:
    """Record the server's CPU use and the machine's CPU pressure over the block (the measured run)."""
    cpu, stall, started = server.cpu_seconds(), _cpu_stall_us(), time.monotonic()
    yield
    wall = time.monotonic() - started
    cpu_after, stall_after = server.cpu_seconds(), _cpu_stall_us()
    if cpu is not None and cpu_after is not None and wall > 0:
        result.server_cpu_pct = round(100 * (cpu_after - cpu) / wall, 1)
    if stall is not None and stall_after is not None and wall > 0:
        result.cpu_pressure_pct = round(100 * (stall_after - stall) / 1e6 / wall, 1)


# -- shared state: Redis and PostgreSQL ---------------------------------------------------------------------------


class RedisProbe:
    """The bench's side of Redis: flush its own database, check our server's keys, read the server's counters."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self._client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)

    def unreachable(self) -> str | None:
        """None when Redis answers PING, else why not."""
        try:
            self._client.ping()
        except Exception as exc:  # any failure means "no Redis to benchmark with"
            return f"Redis at {self.url} is not reachable ({type(exc).__name__}: {exc})"
        return None

    @contextlib.contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # the driver's errors: a scenario fails, the run goes on
            raise CheckFailed(f"Redis {what}: {type(exc).__name__}: {exc}") from exc

    def flush(self) -> None:
        """FLUSHDB: only the database named in the URL, never the others."""
        with self._failing("FLUSHDB"):
            self._client.flushdb()

    def flush_quietly(self) -> None:
        with contextlib.suppress(CheckFailed):
            self.flush()

    def session_keys(self) -> int:
        from mcp_platform.stores.redis_client import DEFAULT_PREFIX

        with self._failing("SCAN"):
            return sum(1 for _ in self._client.scan_iter(match=f"{DEFAULT_PREFIX}session:*", count=1000))

    def has_session(self, session_id: str) -> bool:
        from mcp_platform.stores.redis_client import DEFAULT_PREFIX

        with self._failing("EXISTS"):
            return bool(self._client.exists(f"{DEFAULT_PREFIX}session:{session_id}"))

    def counters(self) -> tuple[float, dict[str, tuple[int, int]]]:
        """Redis's CPU seconds so far, and (calls, usec) per command since its start or CONFIG RESETSTAT."""
        with self._failing("INFO"):
            cpu = self._client.info("cpu")
            stats = self._client.info("commandstats")
        commands = {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for name, v in stats.items()
                    if isinstance(v, dict)}
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), commands

    def close(self) -> None:
        self._client.close()


@contextlib.contextmanager
def observed_redis(probe: RedisProbe | None, result: Result) -> Iterator[None]:
    """Record the Redis server's CPU use and the commands it ran over the block. Server-wide figures: other
    clients of the same Redis (another project's tests, say) show up in them too."""
    if probe is None:
        yield
        return
    cpu, commands = probe.counters()
    started = time.monotonic()
    yield
    wall = time.monotonic() - started
    cpu_after, commands_after = probe.counters()
    if wall > 0:
        result.redis_cpu_pct = round(100 * (cpu_after - cpu) / wall, 1)
    for name, (calls, usec) in commands_after.items():
        before_calls, before_usec = commands.get(name, (0, 0))
        if name not in ("info", "ping") and calls > before_calls:
            result.redis_commands[name] = calls - before_calls
            result.redis_usec_per_call[name] = round((usec - before_usec) / (calls - before_calls), 2)


def redis_summary(requests: int, cpu_pct: float | None, commands: Mapping[str, int],
                  usec_per_call: Mapping[str, float]) -> str:
    """"Redis per request: 1.00 evalsha (9.1 us each), ...; Redis server CPU 12% of one core". Commands run
    less than once per 100 requests (connection set-up, health checks, other clients of the same Redis) are
    only counted."""
    if cpu_pct is None:
        return ""
    frequent = sorted(((name, calls) for name, calls in commands.items() if requests and calls / requests >= 0.01),
                      key=lambda item: (-item[1], item[0]))
    per_request = ", ".join(f"{calls / requests:.2f} {name} ({usec_per_call[name]:g} us each)"
                            for name, calls in frequent)
    rare = sum(calls for name, calls in commands.items() if name not in dict(frequent))
    text = f"Redis per request: {per_request or 'none'}"
    if rare:
        text += f" (+{rare} other calls in all)"
    text += f"; Redis server CPU {cpu_pct:.0f}% of one core"
    if len(frequent) > 1:
        text += " (commands a script runs are counted both on their own and in the script's time)"
    return text


def postgres_dsn(url: str, database: str | None = None) -> str:
    """`url` (postgresql:// or postgresql+asyncpg://) in asyncpg's plain form, pointing at `database` if given."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}" if database else parts.path, parts.query, ""))


async def _postgres(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(postgres_dsn(url), timeout=10)
    try:
        await conn.execute(statement, timeout=30)
    finally:
        await conn.close(timeout=10)


@contextlib.contextmanager
def throwaway_postgres(url: str) -> Iterator[str]:
    """A fresh `mcpp_bench_<hex>` database on `url`'s server (created from `url`'s database); yields its
    SQLAlchemy URL and drops it, WITH (FORCE), afterwards."""
    import secrets

    name = f"mcpp_bench_{secrets.token_hex(4)}"
    asyncio.run(_postgres(url, f'CREATE DATABASE "{name}"'))  # a generated identifier, not input
    try:
        yield postgres_dsn(url, name).replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        asyncio.run(_postgres(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- requests -----------------------------------------------------------------------------------------------------


def base_headers(server: ServerKind) -> dict[str, str]:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if server == "ours":
        headers["Authorization"] = f"Bearer {TOKEN}"
    return headers


def call_headers(scenario: Scenario, session_id: str | None) -> dict[str, str]:
    headers = base_headers(scenario.server)
    if scenario.era == "modern":
        headers.update({"MCP-Protocol-Version": MODERN_VERSION, "Mcp-Method": "tools/call", "Mcp-Name": "add"})
    else:
        headers["MCP-Protocol-Version"] = HANDSHAKE_VERSION
        if session_id is not None:
            headers["Mcp-Session-Id"] = session_id
    return headers


def call_body(era: Era, request_id: int) -> bytes:
    params: dict[str, Any] = {"name": "add", "arguments": {"a": 1, "b": 2}}
    if era == "modern":
        params["_meta"] = MODERN_META
    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    return json.dumps(message, separators=(",", ":")).encode()


def split_body(era: Era) -> tuple[str, str]:
    """The call body around its id, so a load generator can give every request its own id (the SDK's stateful
    transport keys its response streams by request id, so concurrent requests must not share one)."""
    marker = 987654321
    prefix, _, suffix = call_body(era, marker).decode().partition(str(marker))
    return prefix, suffix


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def messages(self) -> list[Any]:
        """The JSON-RPC messages in the body: one JSON document, or the `data:` of each SSE event."""
        if self.headers.get("content-type", "").startswith("text/event-stream"):
            found = []
            for event in self.body.decode().replace("\r\n", "\n").split("\n\n"):
                data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
                if data:
                    found.append(json.loads(data))
            return found
        return [json.loads(self.body)] if self.body.strip() else []


def post(port: int, headers: Mapping[str, str], body: bytes) -> Reply:
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("POST", PATH, body=body, headers=dict(headers))
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def handshake(scenario: Scenario, port: int) -> str:
    """initialize + notifications/initialized; the session id to load with."""
    headers = base_headers(scenario.server)
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "1.0"}}}
    reply = post(port, headers, json.dumps(init).encode())
    session_id = reply.headers.get("mcp-session-id")
    results = [m for m in reply.messages() if isinstance(m, dict) and m.get("id") == 0 and "result" in m]
    if reply.status != 200 or not session_id or not results:
        raise CheckFailed(f"initialize: HTTP {reply.status}, session {session_id!r}, body {reply.body[:300]!r}")
    negotiated = results[0]["result"].get("protocolVersion")
    if negotiated != HANDSHAKE_VERSION:
        raise CheckFailed(f"initialize negotiated {negotiated!r}, not {HANDSHAKE_VERSION}")
    headers.update({"Mcp-Session-Id": session_id, "MCP-Protocol-Version": HANDSHAKE_VERSION})
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    reply = post(port, headers, json.dumps(note).encode())
    if reply.status != 202:
        raise CheckFailed(f"notifications/initialized: HTTP {reply.status}, body {reply.body[:300]!r}")
    return session_id


def result_is_three(result: Any) -> bool:
    if not isinstance(result, dict) or result.get("isError"):
        return False
    if result.get("structuredContent") == {"result": 3}:
        return True
    content = result.get("content")
    return isinstance(content, list) and any(
        isinstance(c, dict) and c.get("type") == "text" and c.get("text") == "3" for c in content)


def check_call(scenario: Scenario, port: int, session_id: str | None) -> Reply:
    """One tools/call, which must answer HTTP 200 with a result of 3."""
    reply = post(port, call_headers(scenario, session_id), call_body(scenario.era, 1))
    replies = [m for m in reply.messages() if isinstance(m, dict) and m.get("id") == 1]
    if reply.status != 200 or len(replies) != 1 or not result_is_three(replies[0].get("result")):
        raise CheckFailed(f"tools/call: HTTP {reply.status}, content-type {reply.headers.get('content-type')!r}, "
                          f"body {reply.body[:400]!r}")
    return reply


# -- load: wrk ----------------------------------------------------------------------------------------------------

# `response` checks every reply: status 200 and the tool's text result "3" (both servers put it in
# content[0].text as "text":"3", in JSON or in an SSE data line).
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
    "BENCH {{\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d,\\"max_us\\":%d," ..
    "\\"wrong\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max, wrong,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk_script(scenario: Scenario, session_id: str | None, first_id: int = 0) -> str:
    """`first_id`: request ids count up from just above it (two wrk processes sharing one session use disjoint
    ranges, as one client would never reuse an id in flight)."""
    prefix, suffix = split_body(scenario.era)
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in call_headers(scenario, session_id).items())
    return WRK_SCRIPT.format(headers=headers, prefix=prefix, suffix=suffix, first_id=first_id)


def run_wrk_many(wrk: str, loads: Sequence[tuple[Path, int]], seconds: float,
                 connections: int = CONNECTIONS) -> list[dict[str, Any]]:
    """One wrk process per (Lua script, port), all started at once; the figures of each, once all are done."""
    duration = max(1, round(seconds))
    procs: list[subprocess.Popen[str]] = []
    try:
        for script, port in loads:
            cmd = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
                   f"http://{HOST}:{port}{PATH}"]
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + duration + 60
        outputs = [proc.communicate(timeout=max(1.0, deadline - time.monotonic())) for proc in procs]
    finally:
        for proc in procs:  # only on an error above (a timeout): they have all exited otherwise
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    all_figures = []
    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        lines = [line for line in stdout.splitlines() if line.startswith("BENCH ")]
        if proc.returncode != 0 or not lines:
            raise CheckFailed(f"wrk failed (exit {proc.returncode}): {stderr.strip() or stdout[-500:]}")
        figures: dict[str, Any] = json.loads(lines[-1][len("BENCH "):])
        figures["output"] = stdout
        all_figures.append(figures)
    return all_figures


def run_wrk(wrk: str, script: Path, port: int, seconds: float) -> dict[str, Any]:
    return run_wrk_many(wrk, [(script, port)], seconds)[0]


def load_with_wrk(wrk: str, scenario: Scenario, server: Server, session_id: str | None, seconds: float,
                  workdir: Path, result: Result, redis: RedisProbe | None) -> None:
    script = workdir / "load.lua"
    script.write_text(wrk_script(scenario, session_id))
    run_wrk(wrk, script, server.port, WARMUP_SECONDS)
    with observed(server, result), observed_redis(redis, result):
        figures = run_wrk(wrk, script, server.port, seconds)
    (workdir / "wrk.txt").write_text(figures["output"])
    apply_wrk_figures(figures, result)


def apply_wrk_figures(figures: Mapping[str, Any], result: Result) -> None:
    result.requests = figures["requests"]
    result.seconds = figures["duration_us"] / 1e6
    result.rps = result.requests / result.seconds if result.seconds else 0.0
    result.p50_ms = figures["p50_us"] / 1000
    result.p99_ms = figures["p99_us"] / 1000
    result.max_ms = figures.get("max_us", 0) / 1000
    socket_errors = sum(figures[k] for k in ("connect", "read", "write", "timeout"))
    result.errors = socket_errors + figures["wrong"]
    if figures["wrong"]:
        result.notes.append(f"{figures['wrong']} replies were not HTTP 200 with a result of 3")
    if socket_errors:
        result.notes.append("wrk socket errors: " + ", ".join(
            f"{k} {figures[k]}" for k in ("connect", "read", "write", "timeout") if figures[k])
            + (" (a timeout: a request still unanswered after 2 s; it is left out of the latency figures)"
               if figures["timeout"] else ""))


# -- load: asyncio fallback ---------------------------------------------------------------------------------------


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


async def _python_load(scenario: Scenario, port: int, session_id: str | None,
                       seconds: float) -> tuple[list[float], list[str], float]:
    headers = call_headers(scenario, session_id) | {"Host": f"{HOST}:{port}"}
    head = (f"POST {PATH} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())).encode()
    prefix, suffix = split_body(scenario.era)
    ids = iter(range(1, sys.maxsize))
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    stop_at = started + seconds
    tasks = [_connection(port, head, prefix.encode(), suffix.encode(), ids, stop_at, latencies, errors)
             for _ in range(CONNECTIONS)]
    await asyncio.wait_for(asyncio.gather(*tasks), seconds + REQUEST_TIMEOUT + 5)
    return latencies, errors, time.perf_counter() - started


def _percentile(sorted_values: Sequence[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def _run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def load_with_python(scenario: Scenario, server: Server, session_id: str | None, seconds: float,
                     result: Result, redis: RedisProbe | None) -> None:
    _run_async(_python_load(scenario, server.port, session_id, WARMUP_SECONDS))
    with observed(server, result), observed_redis(redis, result):
        latencies, errors, elapsed = _run_async(_python_load(scenario, server.port, session_id, seconds))
    latencies.sort()
    result.requests = len(latencies)
    result.seconds = elapsed
    result.rps = len(latencies) / elapsed if elapsed else 0.0
    result.p50_ms = _percentile(latencies, 50) * 1000
    result.p99_ms = _percentile(latencies, 99) * 1000
    result.max_ms = latencies[-1] * 1000 if latencies else 0.0
    result.errors = len(errors)
    if errors:
        kinds = sorted(set(errors))
        result.notes.append(f"{len(errors)} errors: " + ", ".join(f"{k} x{errors.count(k)}" for k in kinds))


# -- one scenario -------------------------------------------------------------------------------------------------


def run_scenario(scenario: Scenario, seconds: float, wrk: str | None, root: Path,
                 cpus: tuple[int, int] | None, redis: RedisProbe | None) -> Result:
    """`redis`: the probe for the (Redis) scenarios, None when Redis is not reachable (they are then skipped)."""
    result = Result(scenario.label, scenario.server, scenario.era, ok=False,
                    state=("redis" if scenario.redis else "process") if scenario.server == "ours" else "",
                    generator="wrk" if wrk else "python-asyncio")
    if scenario.redis and redis is None:
        result.skipped = "Redis is not reachable"
        return result
    probe = redis if scenario.redis else None
    settings = {"state": {"redis_url": probe.url}} if probe else None
    workdir = root / scenario.label.replace(" ", "_").replace("(", "").replace(")", "")
    try:
        if probe:
            probe.flush()  # no sessions or events left over from an earlier run
        server = start_server(scenario.server, workdir, cpus[0] if cpus else None, settings)
    except CheckFailed as exc:
        result.notes.append(str(exc))
        return result
    result.server_stack = server.stack
    try:
        session_id = handshake(scenario, server.port) if scenario.era == "handshake" else None
        if probe and session_id and not probe.has_session(session_id):
            raise CheckFailed(f"the session is not in Redis ({probe.url}): is state.redis_url in effect?")
        reply = check_call(scenario, server.port, session_id)
        result.reply_type = reply.headers.get("content-type", "?").split(";")[0]
        if wrk:
            load_with_wrk(wrk, scenario, server, session_id, seconds, workdir, result, probe)
        else:
            load_with_python(scenario, server, session_id, seconds, result, probe)
        check_call(scenario, server.port, session_id)  # still answering correctly after the load
        if probe and (summary := redis_summary(result.requests, result.redis_cpu_pct, result.redis_commands,
                                                result.redis_usec_per_call)):
            result.notes.append(summary)
        if result.server_cpu_pct is not None and result.server_cpu_pct < 85:
            result.notes.append(f"the server used only {result.server_cpu_pct:.0f}% of its CPU: req/s is a lower "
                                "bound, set by the load generator or by contention, not the server's capacity")
        result.ok = result.errors == 0 and result.requests > 0
    except (CheckFailed, OSError, subprocess.TimeoutExpired, TimeoutError, ValueError) as exc:
        result.notes.append(f"failed: {exc}")
        if tail := server.log_tail():
            result.notes.append(f"server log:\n{tail}")
    finally:
        result.rss_kib = server.rss_kib()
        server.stop()
        if logged := server.log_errors():
            result.notes.append(logged)
    return result


# -- two instances ------------------------------------------------------------------------------------------------


@dataclass
class ClusterResult:
    """Two instances of ours sharing Redis and a PostgreSQL state database, loaded at once, one wrk each."""

    era: str
    ok: bool = False
    instances: list[Result] = field(default_factory=list)
    """A (which created the session, in the handshake era) then B; each with its own wrk's figures."""
    total_rps: float = 0.0
    errors: int = 0
    redis_cpu_pct: float | None = None
    redis_commands: dict[str, int] = field(default_factory=dict)
    redis_usec_per_call: dict[str, float] = field(default_factory=dict)
    sessions_in_redis: int | None = None
    """Session keys in Redis after the run: 1 in the handshake era (the one both instances served)."""
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
    """Instance A on the first CPU, B on the second; in the handshake era one session, created on A, is loaded
    on both at once (B has never seen it but through Redis). wrk is not pinned: it shares both CPUs."""
    scenario = Scenario(f"2 instances {'handshake' if era == 'handshake' else MODERN_VERSION}", "ours", era, True)
    out = ClusterResult(era)
    settings = {"state": {"url": state_url, "redis_url": redis.url}, "secret_key": CLUSTER_SECRET}
    servers: list[Server] = []
    workdir = root / scenario.label.replace(" ", "_")
    try:
        redis.flush()
        for n, name in enumerate("AB"):  # one after the other: the first creates the state tables
            servers.append(start_server("ours", workdir / name, cpus[n] if cpus else None, settings))
            out.instances.append(Result(f"{scenario.label}: {name}", "ours", era, ok=False, state="redis+postgres",
                                        generator="wrk", server_stack=servers[-1].stack))
        session_id = handshake(scenario, servers[0].port) if era == "handshake" else None
        for server, result in zip(servers, out.instances, strict=True):  # B answers A's session
            reply = check_call(scenario, server.port, session_id)
            result.reply_type = reply.headers.get("content-type", "?").split(";")[0]
        scripts = []
        for n, server in enumerate(servers):
            script = workdir / f"load-{'AB'[n]}.lua"
            script.write_text(wrk_script(scenario, session_id, first_id=n * 1_000_000_000))
            scripts.append((script, server.port))
        with cpu_affinity(set(os.sched_getaffinity(0)) | set(cpus or ())):
            run_wrk_many(wrk, scripts, WARMUP_SECONDS, CLUSTER_CONNECTIONS)
            total = Result(scenario.label, "ours", era, ok=False)
            with contextlib.ExitStack() as observing:
                for server, result in zip(servers, out.instances, strict=True):
                    observing.enter_context(observed(server, result))
                observing.enter_context(observed_redis(redis, total))
                all_figures = run_wrk_many(wrk, scripts, seconds, CLUSTER_CONNECTIONS)
        for n, (figures, result) in enumerate(zip(all_figures, out.instances, strict=True)):
            (workdir / f"wrk-{'AB'[n]}.txt").write_text(figures["output"])
            apply_wrk_figures(figures, result)
        out.redis_cpu_pct, out.redis_commands = total.redis_cpu_pct, total.redis_commands
        out.redis_usec_per_call = total.redis_usec_per_call
        for server in servers:  # both still answer correctly after the load
            check_call(scenario, server.port, session_id)
        if session_id is not None:
            out.sessions_in_redis = redis.session_keys()
            if out.sessions_in_redis != 1 or not redis.has_session(session_id):
                raise CheckFailed(f"expected exactly the one shared session in Redis, found "
                                  f"{out.sessions_in_redis} session keys")
        for result in out.instances:
            result.ok = result.errors == 0 and result.requests > 0
        out.ok = all(r.ok for r in out.instances)
    except (CheckFailed, OSError, subprocess.TimeoutExpired, TimeoutError, ValueError) as exc:
        out.notes.append(f"failed: {exc}")
        for name, server in zip("AB", servers, strict=False):
            if tail := server.log_tail():
                out.notes.append(f"server log of {name}:\n{tail}")
    finally:
        for server, result in zip(servers, out.instances, strict=False):
            result.rss_kib = server.rss_kib()
            server.stop()
            if logged := server.log_errors():
                result.notes.append(logged)
    out.total_rps = sum(r.rps for r in out.instances)
    out.errors = sum(r.errors for r in out.instances)
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


# -- report -------------------------------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


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
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "uvicorn": _version("uvicorn"),
        "mcp": _version("mcp"),
        "mcp-platform": _version("mcp-platform"),
        "uvloop": _version("uvloop"),
        "httptools": _version("httptools"),
        "generator": (wrk_version or "wrk") if wrk else "python-asyncio",
        "connections": CONNECTIONS,
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "server_cpu": cpus[0] if cpus else None,
        "load_cpu": cpus[1] if cpus else None,
        "redis_url": redis_url,
        "redis_version": redis_version(redis_url),
    }


def redis_version(url: str) -> str:
    with contextlib.suppress(Exception):  # not reachable, or no redis package: only the report says so
        import redis

        client: Any = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()
    return "not reachable"


def best_of(runs: Sequence[Result]) -> Result:
    """The run with the most req/s (the least disturbed by other load); a failed run fails the scenario."""
    chosen = max(runs, key=lambda r: (r.ok, r.rps))
    best = replace(chosen, notes=list(chosen.notes))  # a copy: every run is also reported as it was
    if not all(r.ok for r in runs):
        best.ok = False
        best.notes.extend(note for r in runs if r is not chosen for note in r.notes)
    best.all_rps = [round(r.rps) for r in runs]
    return best


def ratios(results: Sequence[Result]) -> dict[str, dict[str, Any]]:
    """Ours against the SDK's fastest mode on each era, and against the plain Starlette ceiling."""
    out: dict[str, dict[str, Any]] = {}
    ceiling = next((r for r in results if r.server == "starlette" and r.ok and r.rps), None)
    for era in ("handshake", "modern"):
        ours = next((r for r in results if r.era == era and r.server == "ours" and r.state == "process" and r.ok),
                    None)
        sdk = [r for r in results if r.era == era and r.server.startswith("sdk") and r.ok]
        if ours is None:
            continue
        entry: dict[str, Any] = {"ours": ours.scenario}
        if sdk:
            best = max(sdk, key=lambda r: r.rps)
            entry |= {"sdk_best": best.scenario,
                      "rps_ratio": round(ours.rps / best.rps, 2) if best.rps else None,
                      "p50_ratio": round(ours.p50_ms / best.p50_ms, 2) if best.p50_ms else None}
        if ceiling is not None:
            entry["share_of_ceiling"] = round(ours.rps / ceiling.rps, 2)
        out[era] = entry
    return out


def _row(label: str, r: Result) -> str:
    rss = f"{r.rss_kib / 1024:.1f}" if r.rss_kib else "-"
    cpu = f"{r.server_cpu_pct:.0f}%" if r.server_cpu_pct is not None else "-"
    stall = f"{r.cpu_pressure_pct:.0f}%" if r.cpu_pressure_pct is not None else "-"
    reply = {"application/json": "JSON", "text/event-stream": "SSE"}.get(r.reply_type, r.reply_type or "-")
    figures = f"{r.rps:>7.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} {r.errors:>6}" if r.requests else \
        f"{'-':>7} {'-':>7} {'-':>7} {'-':>6}"
    status = "skipped" if r.skipped else "ok" if r.ok else "FAILED"
    return f"{label:<30} {figures} {rss:>7} {cpu:>7} {stall:>5}  {reply:<6} {status}"


def print_report(results: Sequence[Result], env: Mapping[str, Any], seconds: float, repeat: int,
                 cluster: Sequence[ClusterResult] = ()) -> None:
    print()
    print(f"Python {env['python']} ({env['implementation']}), uvicorn {env['uvicorn']}, mcp {env['mcp']}, "
          f"mcp-platform {env['mcp-platform']}, uvloop {env['uvloop']}, httptools {env['httptools']}")
    stacks = {f"{r.server_stack.get('loop', '?')} + {r.server_stack.get('http', '?')}" for r in results
              if r.server_stack}
    print(f"uvicorn stack used by the servers: {', '.join(sorted(stacks)) or 'unknown'}")
    cpu = f"server on CPU {env['server_cpu']}, load on CPU {env['load_cpu']}" if env["server_cpu"] is not None \
        else "not pinned (fewer than 2 CPUs)"
    print(f"Load: {env['generator']}, {CONNECTIONS} connections, {seconds:g} s per scenario after a "
          f"{WARMUP_SECONDS:g} s warm-up; {cpu}; {env['cpu_model']}")
    if repeat > 1:
        print(f"Each scenario ran {repeat} times; each row is its best run (all req/s at the end).")
    print()
    header = (f"{'scenario':<30} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'RSS MiB':>7} "
              f"{'srv CPU':>7} {'stall':>5}  {'reply':<6} status")
    print(header)
    print("-" * len(header))
    for r in results:
        print(_row(r.scenario, r))
    print("srv CPU: the server's CPU time over the measured run (100% = its core saturated, so req/s is its "
          "capacity).\nstall: share of the run in which some task on the machine waited for a CPU "
          "(/proc/pressure/cpu), a hint of\ncontention from other processes (or from a saturated load "
          "generator's core).")
    print()
    for era, ratio in ratios(results).items():
        name = "handshake era (2025-11-25)" if era == "handshake" else MODERN_VERSION
        line = f"{name}: {ratio['ours']}"
        if "sdk_best" in ratio:
            line += f" / {ratio['sdk_best']} = {ratio['rps_ratio']}x req/s, p50 {ratio['p50_ratio']}x"
        if "share_of_ceiling" in ratio:
            line += f"; {ratio['share_of_ceiling']:.0%} of the plain Starlette ceiling"
        print(line)
    notes = [(r.scenario, note) for r in results for note in r.notes]
    notes += [(r.scenario, f"skipped: {r.skipped}") for r in results if r.skipped]
    if repeat > 1:
        notes += [(r.scenario, "req/s of each run: " + ", ".join(map(str, r.all_rps))) for r in results
                  if not r.skipped]
    if notes:
        print()
        for scenario, note in notes:
            print(f"{scenario}: {note}")
    if cluster:
        print_cluster(cluster, results, env, seconds, repeat)


def print_cluster(cluster: Sequence[ClusterResult], results: Sequence[Result], env: Mapping[str, Any],
                  seconds: float, repeat: int) -> None:
    print()
    pinning = f"A on CPU {env['server_cpu']}, B on CPU {env['load_cpu']}" if env["server_cpu"] is not None \
        else "not pinned"
    print(f"Two instances of ours ({pinning}), sharing Redis ({env['redis_url']}) and a throwaway PostgreSQL "
          f"state database;\none wrk per instance, {CLUSTER_CONNECTIONS} connections each, both at once, not pinned, "
          f"{seconds:g} s after a {WARMUP_SECONDS:g} s warm-up."
          + (f" Best of {repeat} runs by total req/s." if repeat > 1 else ""))
    print()
    header = (f"{'scenario':<30} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'RSS MiB':>7} "
              f"{'srv CPU':>7} {'stall':>5}  {'reply':<6} status")
    print(header)
    print("-" * len(header))
    for c in cluster:
        for r in c.instances:
            print(_row(r.scenario, r))
        label = c.instances[0].scenario.rpartition(":")[0] if c.instances else c.era
        total = f"{c.total_rps:>7.0f} {'':>7} {'':>7} {c.errors:>6}"
        print(f"{label + ': A + B':<30} {total} {'':>7} {'':>7} {'':>5}  {'':<6} {'ok' if c.ok else 'FAILED'}")
        same_era = [r for r in results if r.server == "ours" and r.era == c.era and r.requests]
        if same_era:
            print(f"{'':<4}one instance, same run: " + "; ".join(f"{r.scenario} {r.rps:.0f} req/s" for r in same_era))
        if summary := redis_summary(sum(r.requests for r in c.instances), c.redis_cpu_pct, c.redis_commands,
                                    c.redis_usec_per_call):
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per scenario (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 s per scenario")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run every scenario N times (in rounds) and report each one's best run (default 1)")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator: wrk if on PATH (auto), or the built-in asyncio one")
    parser.add_argument("--only", action="append", metavar="TEXT",
                        help="run only scenarios whose name contains TEXT (repeatable)")
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
    parser.add_argument("--serve", choices=("ours", "sdk-sse", "sdk-json", "starlette"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:  # child process
        serve(args.serve, args.workdir, args.cpu)
        return 0

    seconds = 3.0 if args.quick else args.duration
    if not 1 <= seconds <= 600:
        parser.error("--duration must be between 1 and 600 seconds")
    if not 1 <= args.repeat <= 10:
        parser.error("--repeat must be between 1 and 10")
    wrk = shutil.which("wrk") if args.generator != "python" else None
    if args.generator == "wrk" and wrk is None:
        parser.error("wrk is not on PATH (apt-get install wrk), or use --generator python")
    if args.cluster and wrk is None:
        parser.error("--cluster needs wrk (apt-get install wrk); the asyncio generator is too slow to load two "
                     "instances")
    scenarios = [s for s in SCENARIOS if not args.only or any(t.lower() in s.label.lower() for t in args.only)]
    if not scenarios and not args.cluster:
        parser.error("--only matched no scenario")
    redis: RedisProbe | None = None
    if args.cluster or any(s.redis for s in scenarios):
        redis = RedisProbe(args.redis_url)
        if reason := redis.unreachable():
            if args.cluster:
                parser.error(f"--cluster: {reason}")
            print(f"{reason}: the (Redis) scenarios are skipped", flush=True)
            redis.close()
            redis = None
    cpus = pick_cpus()
    if cpus is not None:
        os.sched_setaffinity(0, {cpus[1]})  # this process and wrk; each server pins itself to cpus[0]
    env = environment(wrk, cpus, args.redis_url)

    runs: dict[str, list[Result]] = {s.label: [] for s in scenarios}
    cluster_runs: dict[str, list[ClusterResult]] = {era: [] for era in ("handshake", "modern")} if args.cluster \
        else {}
    with contextlib.ExitStack() as cleanup:
        if args.keep:
            tmp = tempfile.mkdtemp(prefix="mcp-bench-")
            print(f"work folder: {tmp}")
        else:
            tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="mcp-bench-"))
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
        for round_no in range(1, args.repeat + 1):  # rounds, so that a noisy spell spreads over every scenario
            tag = f" (round {round_no}/{args.repeat})" if args.repeat > 1 else ""
            for scenario in scenarios:
                print(f"{scenario.label}{tag}: ", end="", flush=True)
                result = run_scenario(scenario, seconds, wrk, Path(tmp) / f"round{round_no}", cpus, redis)
                runs[scenario.label].append(result)
                print(f"{result.rps:.0f} req/s, p50 {result.p50_ms:.2f} ms, server CPU {result.server_cpu_pct}%"
                      if result.ok else f"skipped ({result.skipped})" if result.skipped else "FAILED", flush=True)
            for era, era_runs in cluster_runs.items():
                assert wrk is not None and redis is not None
                name = "handshake" if era == "handshake" else MODERN_VERSION
                print(f"2 instances {name}{tag}: ", end="", flush=True)
                outcome = run_cluster("handshake" if era == "handshake" else "modern", seconds, wrk,
                                      Path(tmp) / f"round{round_no}", cpus, redis, state_url)
                era_runs.append(outcome)
                print(" + ".join(f"{r.rps:.0f}" for r in outcome.instances) + f" = {outcome.total_rps:.0f} req/s"
                      if outcome.ok else "FAILED", flush=True)
    results = [best_of(label_runs) for label_runs in runs.values()]
    cluster = [best_cluster_of(era_runs) for era_runs in cluster_runs.values()]
    print_report(results, env, seconds, args.repeat, cluster)
    if args.json:
        payload = {"environment": env, "seconds": seconds, "warmup_seconds": WARMUP_SECONDS, "repeat": args.repeat,
                   "results": [asdict(r) for r in results], "ratios": ratios(results),
                   "all_runs": {label: [asdict(r) for r in label_runs] for label, label_runs in runs.items()},
                   "cluster": [asdict(c) for c in cluster],
                   "cluster_runs": {era: [asdict(c) for c in era_runs] for era, era_runs in cluster_runs.items()}}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    passed = all(r.ok or r.skipped for label_runs in runs.values() for r in label_runs)
    return 0 if passed and all(c.ok for era_runs in cluster_runs.values() for c in era_runs) else 1

if __name__ == "__main__":
    sys.exit(main())
