"""Shared test helpers: settings in a temp folder, the one test clock, bounded waits, the app with its lifespan,
and a real uvicorn on loopback."""

from __future__ import annotations

import inspect
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

import anyio
import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette

from mcp_platform.settings import Settings, load_settings

T = TypeVar("T")

FIXTURE_TOOLS = Path(__file__).parent / "fixtures" / "tools"
TOKEN = "test-token-with-all-scopes"
MODERN = "2026-07-28"
MODERN_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json",
                  "mcp-protocol-version": MODERN}
JSON_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def state_url(folder: Path) -> str:
    """The state database `make_settings` puts in `folder`."""
    return f"sqlite+aiosqlite:///{folder / 'state.db'}"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """The settings of every test: isolated in `tmp_path` (an empty config file there, not the repo's), the state
    and app databases there, static files in `tmp_path / "static"`, the fixture tools, env token `TOKEN`;
    `overrides` replace any of these, as keyword arguments to `load_settings`."""
    config = tmp_path / "mcp-platform.toml"
    if not config.exists():
        config.write_text("")
    overrides.setdefault("token", TOKEN)
    overrides.setdefault("state", {"url": state_url(tmp_path)})
    overrides.setdefault("tools", {"dirs": [FIXTURE_TOOLS]})
    overrides.setdefault("database", {"url": f"sqlite+aiosqlite:///{tmp_path}/app.db"})
    overrides.setdefault("static", {"root": tmp_path / "static"})
    return load_settings(config, **overrides)


def modern_meta(version: str = MODERN, **extra: Any) -> dict[str, Any]:
    return {"io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "1"}, **extra}


def modern_request(method: str, params: dict[str, Any] | None = None, msg_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": {**(params or {}), "_meta": modern_meta()}}


def modern_headers(method: str, name: str | None = None, token: str | None = TOKEN) -> dict[str, str]:
    headers = {**MODERN_HEADERS, "mcp-method": method}
    if name is not None:
        headers["mcp-name"] = name
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


@asynccontextmanager
async def asgi_client(app: Starlette, token: str | None = TOKEN) -> AsyncIterator[httpx2.AsyncClient]:
    """An in-process client; runs the app's lifespan (httpx's ASGI transport does not)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000",
                                      headers=headers) as client:
            yield client


async def open_session(client: httpx2.AsyncClient, version: str = "2025-11-25") -> str:
    response = await client.post("/mcp", headers=JSON_HEADERS, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "tests", "version": "1"}}})
    assert response.status_code == 200, response.text
    session_id = response.headers["mcp-session-id"]
    notified = await client.post("/mcp", headers={**JSON_HEADERS, "mcp-session-id": session_id},
                                 json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert notified.status_code == 202
    return session_id


async def create_token(settings: Settings, name: str, scopes: list[str]) -> str:
    """A named token in `settings`' state database, as `mcp-platform token create` makes one."""
    from mcp_platform.auth import TokenStore
    from mcp_platform.stores.sql import StateDB

    db = StateDB(settings.state.url)
    await db.start()
    try:
        return await TokenStore(db).create(name, scopes)
    finally:
        await db.close()


class TestClock:
    """The tests' monotonic clock: time passes only when the test moves it (`advance`), or by `tick` seconds at
    every reading (so that, say, a query outlives any deadline). Callable, so it goes wherever a
    `Callable[[], float]` clock goes; `create_app(settings, clock=Clock(now=clock.now))` for the app."""

    __test__ = False  # a helper, not a test class, despite its name

    def __init__(self, start: float = 1000.0, *, tick: float = 0.0) -> None:
        self._now = start
        self.tick = tick

    def now(self) -> float:
        self._now += self.tick
        return self._now

    def __call__(self) -> float:
        return self.now()

    def advance(self, seconds: float) -> None:
        self._now += seconds


@overload
async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout: float = ..., interval: float = ...,
                     what: str = ...) -> T: ...


@overload
async def eventually(check: Callable[[], T | None], *, timeout: float = ..., interval: float = ...,
                     what: str = ...) -> T: ...


async def eventually(check: Callable[[], Any], *, timeout: float = 5.0, interval: float = 0.01,
                     what: str = "the condition") -> Any:
    """Polls `check` (sync or async) until it returns something truthy and returns that; fails after `timeout`.
    For conditions no event announces (a row written, a flag seen, another thread's state): the test waits for the
    condition itself, never for a head start. `interval` only spaces the checks out; nothing depends on it."""
    try:
        with anyio.fail_after(timeout):
            while True:
                value = check()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value
                await anyio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"{what} did not come true within {timeout} s") from None


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    """`eventually` for synchronous code, such as waiting for another process: polls `check` until it is true;
    raises naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(interval)


def wait_served(process: subprocess.Popen[Any], url: str, *, log: Path | None = None, path: str = "/healthz",
                timeout: float = 30) -> None:
    """Wait until a server running in another process answers `url + path` with 200. If the process exits first,
    fail at once with its log (when it writes one to `log`)."""
    def answered() -> bool:
        if process.poll() is not None:
            raise AssertionError(log.read_text() if log is not None else f"the server exited ({process.returncode})")
        try:
            return httpx2.get(url + path, timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    wait_until(answered, timeout=timeout, what=f"the server answering {path}")


async def heartbeats(lines: AsyncIterator[str], count: int, *, within: float) -> list[str]:
    """Reads an SSE stream's lines until `count` heartbeats (comment lines) have arrived, each within `within`
    seconds of the one before (the first, of the call); returns the other lines read on the way."""
    others: list[str] = []
    for _ in range(count):
        with anyio.fail_after(within):
            async for line in lines:
                if line.startswith(":"):
                    break
                others.append(line)
            else:
                raise AssertionError(f"the stream ended before {count} heartbeats")
    return others


def notifier_of(app: Starlette) -> Any:
    """The running app's change notifier (its `subscriber_count` is how many streams are listening now)."""
    return app.state.mcp.core.notifier


async def listening(app: Starlette, streams: int) -> None:
    """Waits until `streams` change streams (GET streams, `subscriptions/listen`, stdio) are subscribed to the app's
    notifier: a client's stream counts as open only once the server listens on its behalf."""
    notifier = notifier_of(app)
    await eventually(lambda: notifier.subscriber_count >= streams, what=f"{streams} listening streams")


class _Server(uvicorn.Server):
    """uvicorn, telling the test thread when its start-up is over (listening, or failed) instead of being polled."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.settled = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.settled.set()

    def serve_and_tell(self) -> None:
        try:
            self.run()
        finally:
            self.settled.set()  # it never reached start-up (a bad config, a failing lifespan)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(app: Starlette, host: str = "127.0.0.1", loop: str = "auto", port: int | None = None,
                   **options: Any) -> Iterator[str]:
    """A real uvicorn serving `app` on a free loopback port, in its own thread and event loop; yields the base URL.
    `port`: one from `free_port()` when the settings must name the URL before the server starts (OAuth's
    resource). `options` are more `uvicorn.Config` keyword arguments (the connection limits `serve` applies, say)."""
    port = port or free_port()
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                    loop=loop, timeout_graceful_shutdown=2, **options))
    thread = threading.Thread(target=server.serve_and_tell, daemon=True)
    thread.start()
    if not server.settled.wait(15) or not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@asynccontextmanager
async def mcp_client(url: str, mode: str, token: str | None = TOKEN, **kwargs: Any) -> AsyncIterator[Client]:
    """The official MCP client on `url` (mode: "legacy" for the handshake era, "2026-07-28" for modern)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
                Client(streamable_http_client(url, http_client=http), mode=mode, **kwargs) as client):
        yield client
