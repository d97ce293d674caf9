"""What the benchmark runs: the scenarios (a server and how it is called), and the results of one server's run."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.auth_setups import AuthName
from benchmarks.load import Load
from benchmarks.servers import Era, ServerKind, Stack

CONNECTION_LEVELS = (1, 16, 64, 256)
REFERENCE_CONNECTIONS = 16
"""The level the ratios and the single-level rows use."""


@dataclass(frozen=True)
class Scenario:
    label: str
    server: ServerKind
    era: Era
    no_auth: bool = False
    """Ours with `--no-auth` (every other row of ours sends a bearer token)."""
    redis: bool = False
    """Ours with `[state] redis_url`: sessions (read and TTL-refreshed on every handshake-era request), stream
    events, rate-limit counters and change notifications live in Redis."""
    tracing: bool = False
    """Ours with `tracing.otlp_endpoint` set: every span exported over OTLP/HTTP to a loopback receiver that drops
    it (`otlp_sink.py`)."""
    auth: AuthName = "bearer"
    """Ours with one of the `--auth` setups of `auth_setups.py` (its settings, and the credential every call
    sends); `bearer` is `MCP_PLATFORM_TOKEN`, what every other row of ours sends."""
    stacks: tuple[Stack, ...] = ("uvloop", "asyncio")
    single_level: bool = False
    """Run at 16 connections only (a supporting row, not one the targets or the README quote)."""

    @property
    def bearer(self) -> bool:
        return self.server in ("ours", "ours-core") and not self.no_auth

    @property
    def shipped(self) -> bool:
        """Ours as a user runs it: the CLI, shipped defaults, bearer auth, state in the process."""
        return self.server == "ours" and not self.no_auth and not self.redis and not self.tracing \
            and self.auth == "bearer"


def auth_scenario(name: AuthName) -> Scenario:
    """The `--auth NAME` row: ours at 2026-07-28 on uvloop + httptools, the shipped config but for its auth."""
    return Scenario(f"ours --auth {name}", "ours", "modern", auth=name, stacks=("uvloop",))


SCENARIOS = (
    Scenario("ours 2026-07-28", "ours", "modern"),
    Scenario("ours handshake", "ours", "handshake"),
    Scenario("ours 2026-07-28 --no-auth", "ours", "modern", no_auth=True, stacks=("uvloop",), single_level=True),
    Scenario("ours 2026-07-28 (tracing on)", "ours", "modern", tracing=True, stacks=("uvloop",), single_level=True),
    Scenario("ours 2026-07-28 (Redis)", "ours", "modern", redis=True, stacks=("uvloop",), single_level=True),
    Scenario("ours handshake (Redis)", "ours", "handshake", redis=True, stacks=("uvloop",), single_level=True),
    Scenario("core only: ours 2026-07-28", "ours-core", "modern", stacks=("uvloop",), single_level=True),
    Scenario("SDK stateful SSE (default)", "sdk-sse", "handshake"),
    Scenario("SDK stateful JSON", "sdk-json", "handshake"),
    Scenario("SDK 2026-07-28 (JSON mode)", "sdk-json", "modern"),
    Scenario("SDK 2026-07-28 (default mode)", "sdk-sse", "modern"),
    # Not MCP: what the same stack does when parsing, dispatching and serialising cost next to nothing.
    Scenario("Starlette route", "starlette", "modern"),
)

INSTRUCTION_SCENARIOS = (
    Scenario("ours 2026-07-28", "ours", "modern"),
    Scenario("ours 2026-07-28 --no-auth", "ours", "modern", no_auth=True),
    Scenario("ours 2026-07-28 (tracing on)", "ours", "modern", tracing=True),
    Scenario("ours handshake", "ours", "handshake"),
    Scenario("SDK stateful JSON", "sdk-json", "handshake"),
    Scenario("SDK 2026-07-28 (JSON mode)", "sdk-json", "modern"),
    Scenario("Starlette route", "starlette", "modern"),
)
"""Counted under callgrind, on uvloop + httptools. The SDK's SSE modes are left out: their replies are streamed."""


@dataclass
class Row:
    """One server, started once, loaded at each number of connections in turn."""

    scenario: str
    server: str
    era: str
    stack: str
    ok: bool = False
    skipped: str = ""
    """Why the row did not run (a service it needs is not there); a skipped row does not fail the run."""
    shipped: bool = False
    state: str = ""
    """Where our server kept its shared state: "process" (memory + SQLite), "redis", or "redis+postgres"."""
    generator: str = ""
    loaded_stack: str = ""
    """Event loop + HTTP parser found in the server's memory map."""
    reply_type: str = ""
    """Content type of the tools/call reply: application/json or text/event-stream."""
    cold_start_ms: float | None = None
    """From spawning the server process to its first correct `initialize` answer."""
    idle_rss_kib: int | None = None
    """VmRSS after start-up, the handshake and one call."""
    peak_rss_kib: int | None = None
    """VmHWM at the end of the row: the most resident memory the server had."""
    loads: list[Load] = field(default_factory=list)
    all_rps: list[int] = field(default_factory=list)
    """req/s at 16 connections of every run of this row (with --repeat); the figures shown are the best run's."""
    notes: list[str] = field(default_factory=list)

    def at(self, connections: int) -> Load | None:
        return next((load for load in self.loads if load.connections == connections and load.requests), None)


@dataclass
class Instructions:
    scenario: str
    server: str
    era: str
    bearer: bool
    calls: int
    per_call: float | None = None
    auth: str = ""
    """The `--auth` setup counted (empty: bearer when `bearer`, else none)."""
    error: str = ""
