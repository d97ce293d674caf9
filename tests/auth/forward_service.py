"""Forward-auth services for the tests: a well-behaved one on a real uvicorn (answers per token, records what it
received), and a hostile one on a raw socket (sends whatever bytes the test gives it, which uvicorn would refuse
to produce)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_platform.auth import Presented
from mcp_platform.auth.forward import ForwardVerifier, open_verifier
from mcp_platform.settings import Settings
from tests.support import TestClock, make_settings, running_server

SLOW = "slow-token"
"""The service holds its answer to this token until `release` is set (or 10 s pass)."""


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name]
        return values[0] if values else None


@dataclass
class AuthService:
    """`answers[token] = (status, headers)`; an unknown token gets 401. Everything received is in `received`."""

    answers: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def admit(self, token: str, user: str, scopes: str | None = None, **headers: str) -> None:
        answer = {"X-Auth-Request-User": user, **headers}
        if scopes is not None:
            answer["X-Auth-Request-Scopes"] = scopes
        self.answers[token] = (200, answer)

    def asked(self, token: str) -> int:
        return sum(1 for seen in self.received if seen.header("authorization") == f"Bearer {token}")

    async def _auth(self, request: Request) -> Response:
        body = await request.body()
        headers = [(key.decode("latin-1"), value.decode("latin-1")) for key, value in request.headers.raw]
        self.received.append(Received(request.method, request.url.path, request.url.query, headers, body))
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token == SLOW:
            await anyio.to_thread.run_sync(self.release.wait, 10)
        status, answer = self.answers.get(token, (401, {}))
        return Response(status_code=status, headers=answer)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/auth", self._auth, methods=["GET", "POST", "HEAD"]),
                                 Route("/login", self._auth, methods=["GET"])])


@contextmanager
def auth_service() -> Iterator[AuthService]:
    """The well-behaved service on a real uvicorn on a free loopback port; `service.url` is its `/auth`."""
    service = AuthService()
    with running_server(service.app()) as base:
        service.url = f"{base}/auth?allowed_groups=mcp"
        try:
            yield service
        finally:
            service.release.set()  # before the server stops, so a held answer does not delay its shutdown


@asynccontextmanager
async def hostile_service(answer: bytes) -> AsyncIterator[str]:
    """A service on a raw socket that reads a request head and sends `answer` verbatim; yields its URL."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The client may hang up at any point (it stops reading a body it does not want): that is its right.
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            try:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer)
                await writer.drain()
            finally:
                writer.close()
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/auth"
    finally:
        server.close()
        await server.wait_closed()


def forward_settings(tmp_path: Path, url: str, *, mode: list[str] | None = None, **forward: Any) -> Settings:
    """Settings of a server whose `auth.mode` is `mode` (default: forward alone), asking `url`."""
    return make_settings(tmp_path, auth={"mode": mode or ["forward"], "forward": {"url": url, **forward}})


@asynccontextmanager
async def verifier_for(settings: Settings, clock: TestClock | None = None) -> AsyncIterator[ForwardVerifier]:
    """The forward verifier of `settings`, on its own, timed by `clock` when given."""
    async with AsyncExitStack() as stack:
        yield await open_verifier(settings.auth.forward, stack, clock=clock or time.monotonic)


def presented(token: str) -> Presented:
    """A request from 10.1.2.3 to mcp.example.com/mcp carrying `token`."""
    return Presented({"method": "POST", "path": "/mcp", "client": ("10.1.2.3", 5555)},
                     {"authorization": f"Bearer {token}", "host": "mcp.example.com"})
