"""The chain across real verifiers when one of their services fails: a JWT whose JWKS is down is answered 503 and
goes to no forward-auth service; a token the auth service admits still works meanwhile; every refusal names what
failed. Real JWKS endpoint, real auth service (both uvicorn on loopback), real app in-process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mcp_platform.app import create_app
from tests.auth.forward_service import auth_service
from tests.auth.idp import RESOURCE, jwks_server, make_keys
from tests.support import asgi_client, eventually, make_settings, modern_headers, modern_request

pytestmark = pytest.mark.anyio



async def test_a_jwt_whose_jwks_is_down_never_reaches_the_forward_auth_service(tmp_path: Path) -> None:
    key = make_keys()["RS256"]
    with jwks_server([key]) as jwks, auth_service() as service:
        service.admit("opaque-service-token", "svc-user", "read")
        settings = make_settings(tmp_path, auth={"mode": ["oauth", "forward"], "forward": {"url": service.url},
                                                 "oauth": {"issuer": "https://idp.example.test/",
                                                           "jwks_url": jwks.url, "resource": RESOURCE}})
        token = key.mint()
        async with asgi_client(create_app(settings, capabilities=[]), token=None) as client:
            async def ask(credential: str) -> tuple[int, str]:
                response = await client.post("/mcp", json=modern_request("tools/list"),
                                             headers=modern_headers("tools/list", token=credential))
                return response.status_code, response.text

            jwks.status = 500  # the identity provider's key endpoint breaks before the first JWT arrives
            status, text = await ask(token)
            assert status == 503 and "JWKS" in text
            assert service.asked(token) == 0  # the JWT went to no one else
            status, _ = await ask("opaque-service-token")
            assert status != 503 and service.asked("opaque-service-token") == 1  # forward's own users go on
            jwks.status = 200  # back: within the retry-after-failure pause (2 s), not the unknown-kid bound (30 s)
            assert await eventually(lambda: _admitted(ask, token), timeout=6, interval=0.2, what="the JWT admitted")
            assert service.asked(token) == 0


async def _admitted(ask: Callable[[str], Awaitable[tuple[int, str]]], token: str) -> bool:
    status, _ = await ask(token)
    return status == 200
