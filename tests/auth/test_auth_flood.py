"""One caller flooding made-up tokens must not turn each into a request to a shared service: once its address is
over `auth.failed_auth_per_minute`, verifiers that ask Redis or an auth service answer 429 before asking, while
answers they already hold (and every other address) go on as before. Real Redis, real auth service."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from mcp_platform.app import create_app
from mcp_platform.capabilities import ratelimit
from tests.auth.forward_service import auth_service, forward_settings
from tests.auth.redis_support import redis_tokens
from tests.support import asgi_client, modern_headers, modern_request

pytestmark = pytest.mark.anyio


async def _status(client: httpx2.AsyncClient, token: str) -> int:
    response = await client.post("/mcp", json=modern_request("tools/list"),
                                 headers=modern_headers("tools/list", token=token))
    return response.status_code


async def test_a_flooder_over_the_limit_costs_the_auth_service_no_more_requests(tmp_path: Path) -> None:
    with auth_service() as service:
        service.admit("known-token", "alice", "read")
        settings = forward_settings(tmp_path, service.url)
        settings = settings.model_copy(update={"auth": settings.auth.model_copy(update={"failed_auth_per_minute": 3})})
        async with asgi_client(create_app(settings, capabilities=[ratelimit.CAPABILITY]), token=None) as client:
            assert await _status(client, "known-token") == 200  # answered once, then from the cache
            statuses = [await _status(client, f"made-up-{n}") for n in range(8)]
            assert statuses == [401, 401, 401] + [429] * 5
            assert len(service.received) == 1 + 3  # the five over the limit were never sent on
            assert await _status(client, "known-token") == 200  # a cached admission still works from there


async def test_a_flooder_over_the_limit_costs_redis_no_more_lookups(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        settings = tokens.settings(tmp_path, auth={"failed_auth_per_minute": 3})
        app = create_app(settings, capabilities=[ratelimit.CAPABILITY])
        async with asgi_client(app, token=None) as client:
            statuses = [await _status(client, f"mcpp_made-up-{n}") for n in range(8)]
            assert statuses == [401, 401, 401] + [429] * 5
            verifier = app.state.mcp.endpoint.verifier
            assert verifier.describe()["cached_answers"] == 3  # one lookup per refused token, none after
