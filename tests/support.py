"""Shared test helpers: settings in a temp folder, the app with its lifespan, and a real uvicorn on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette

from mcp_platform.settings import Settings, load_settings

FIXTURE_TOOLS = Path(__file__).parent / "fixtures" / "tools"
TOKEN = "test-token-with-all-scopes"
MODERN = "2026-07-28"
MODERN_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json",
                  "mcp-protocol-version": MODERN}
JSON_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings isolated in `tmp_path`: no repo config file, state there, fixture tools, env token `TOKEN`."""
    config = tmp_path / "mcp-platform.toml"
    if not config.exists():
        config.write_text("")
    overrides.setdefault("token", TOKEN)
    overrides.setdefault("state", {"url": f"sqlite+aiosqlite:///{tmp_path}/state.db"})
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


class ManualClock:
    """A monotonic clock the test moves by hand (`clock.now += 5`) instead of sleeping."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(app: Starlette, host: str = "127.0.0.1", loop: str = "auto") -> Iterator[str]:
    """A real uvicorn serving `app` on a free loopback port, in its own thread and event loop; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                           loop=loop, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
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
