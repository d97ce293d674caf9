"""Several real `mcp-platform serve` processes sharing Redis and PostgreSQL, and a round-robin HTTP proxy in
front of them, for the tests of issue 6 (any instance answers any request)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.support import TOKEN, free_port, running_server, wait_until

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length",
               "host"}


class Instance:
    def __init__(self, config: Path, cwd: Path, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MCP_PLATFORM_TOKEN": TOKEN}
        self.log = (cwd / f"{name}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcp_platform", "serve", "--config", str(config), "--port", str(self.port)],
            cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"instance {self.name} exited; see {self.log.name}")
            try:
                return httpx2.get(self.url + "/readyz", timeout=1).status_code == 200
            except httpx2.HTTPError:
                return False

        wait_until(ready, timeout=timeout, what=f"instance {self.name} becoming ready")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, as when a machine dies."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def round_robin_proxy(upstreams: list[str], seen: list[tuple[str, str | None]]) -> Starlette:
    """Forwards each request to the next upstream in turn, streaming the response (SSE included); an upstream
    that refuses the connection or answers 503 is skipped, as nginx's `proxy_next_upstream error http_503` does
    (the last one's 503 is passed on). `seen` records
    (upstream, Mcp-Session-Id) per request."""
    turn = itertools.cycle(range(len(upstreams)))
    client = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120))

    async def forward(request: Request) -> Response:
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        start = next(turn)
        for attempt in range(len(upstreams)):
            upstream = upstreams[(start + attempt) % len(upstreams)]
            try:
                upstream_request = client.build_request(request.method, upstream + request.url.path,
                                                        headers=headers, content=body)
                reply = await client.send(upstream_request, stream=True)
            except httpx2.ConnectError:
                continue
            if reply.status_code == 503 and attempt + 1 < len(upstreams):
                # A draining (or unready) instance: try the next, as nginx's `proxy_next_upstream http_503` does
                # (a load balancer that health-checks /readyz would already have taken it out).
                await reply.aclose()
                continue
            seen.append((upstream, request.headers.get("mcp-session-id")))

            async def relay(reply: httpx2.Response = reply) -> AsyncIterator[bytes]:
                try:
                    async for chunk in reply.aiter_raw():
                        yield chunk
                except httpx2.HTTPError:
                    return  # the upstream died mid-response: end ours, as a real proxy does
                finally:
                    await reply.aclose()

            out_headers = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP_BY_HOP}
            return StreamingResponse(relay(), status_code=reply.status_code, headers=out_headers)
        return Response("no upstream", status_code=502)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "DELETE"])], lifespan=lifespan)


def write_config(folder: Path, *, postgres_url: str, redis_url: str, tools_dir: Path, static_root: Path,
                 extra: str = "") -> Path:
    config = folder / "cluster.toml"
    config.write_text(f'''
secret_key = "cluster-test-secret-key-0123456789abcdef"
[http]
host = "127.0.0.1"
sse_heartbeat_seconds = 0.5
[state]
url = "{postgres_url}"
redis_url = "{redis_url}"
[database]
url = "{postgres_url}"
[tools]
dirs = ["{tools_dir}"]
[static]
root = "{static_root}"
[flags.maintenance_mode]
default = false
description = "Maintenance switch"
[flags.beta]
default = false
description = "Beta tools"
{extra}
''')
    return config


@contextmanager
def cluster(config: Path, cwd: Path, count: int = 2) -> Iterator[list[Instance]]:
    instances: list[Instance] = []
    try:
        # One after the other: the first creates the tables and seeds the example data.
        for n in range(count):
            instances.append(Instance(config, cwd, f"instance-{chr(97 + n)}"))
            instances[-1].wait_ready()
        yield instances
    finally:
        for instance in instances:
            instance.stop()


@contextmanager
def proxied(instances: list[Instance]) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    with running_server(round_robin_proxy([i.url for i in instances], seen), loop="asyncio") as url:
        yield url, seen


def flush_redis(url: str) -> None:
    import redis

    client: Any = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
