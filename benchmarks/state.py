"""The benchmark's side of shared state: its own Redis database (flushed, inspected, its counters read) and a
throwaway PostgreSQL database for the two-instance run."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from benchmarks.servers import CheckFailed


class RedisFigures(Protocol):
    redis_cpu_pct: float | None
    redis_commands: dict[str, int]
    redis_usec_per_call: dict[str, float]


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
def observed_redis(probe: RedisProbe | None, result: RedisFigures) -> Iterator[None]:
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
