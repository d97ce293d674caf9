#!/usr/bin/env python
"""The forward-auth service of the `forward` benchmark setups: every request with a bearer credential is admitted
as `bench-forward` (200, `X-Auth-Request-User`), anything else is 401, as oauth2-proxy answers nginx.

Binds a loopback port the OS chooses, prints it on a line of its own once it listens, and serves until SIGTERM.
Started by `auth_setups.auth_service()`; cheap on purpose, so that the figures are the verifier's and one HTTP
round trip's, not the service's.
"""

from __future__ import annotations

import socket
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def decide(request: Request) -> Response:
    if request.headers.get("authorization", "").startswith("Bearer "):
        return Response(status_code=200, headers={"X-Auth-Request-User": "bench-forward"})
    return Response(status_code=401)


def app() -> Starlette:
    return Starlette(routes=[Route("/auth", decide, methods=["GET", "HEAD", "POST"])])


class _Announcing(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if sockets:
            print(sockets[0].getsockname()[1], flush=True)


def main() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app(), log_level="warning", access_log=False, server_header=False)
    _Announcing(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
