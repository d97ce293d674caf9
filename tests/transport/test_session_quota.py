"""One token cannot exhaust the handshake-era session table: past `sessions.max_per_principal` its own least
recently used sessions are evicted (404 from then on), and another token can still initialize, in memory and on
Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
import redis.asyncio as aioredis

from mcp_platform.app import create_app
from tests.services import require_redis
from tests.support import JSON_HEADERS, TOKEN, asgi_client, create_token, make_settings, open_session

pytestmark = pytest.mark.anyio

VERSION = "2025-11-25"


@pytest.fixture(params=["memory", "redis"])
async def redis_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    if request.param == "memory":
        yield None
        return
    url = require_redis()
    client = aioredis.from_url(url)
    try:
        await client.flushdb()
        yield url
        await client.flushdb()
    finally:
        await client.aclose()


async def _ping(client: httpx2.AsyncClient, session_id: str, token: str) -> int:
    headers = {**JSON_HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": VERSION,
               "authorization": f"Bearer {token}"}
    response = await client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    return response.status_code


async def test_one_token_cannot_lock_another_out_of_the_session_table(tmp_path: Path, redis_url: str | None) -> None:
    quota, cap = 5, 8
    settings = make_settings(tmp_path, sessions={"max_per_principal": quota, "max_sessions": cap},
                             state={"url": f"sqlite+aiosqlite:///{tmp_path}/state.db", "redis_url": redis_url})
    reader = await create_token(settings, "reader", ["read"])
    async with asgi_client(create_app(settings, capabilities=[]), token=reader) as client:
        opened = [await open_session(client, VERSION) for _ in range(cap + 3)]  # quota + 6: all accepted
        # The reader's oldest sessions made room for its newest: its first cap+3-quota are gone.
        assert [await _ping(client, sid, reader) for sid in opened] == [404] * (cap + 3 - quota) + [200] * quota
        client.headers["authorization"] = f"Bearer {TOKEN}"
        admin = await open_session(client, VERSION)
        assert await _ping(client, admin, TOKEN) == 200


async def test_at_the_global_cap_the_biggest_holder_gives_way(tmp_path: Path, redis_url: str | None) -> None:
    settings = make_settings(tmp_path, sessions={"max_per_principal": 3, "max_sessions": 4},
                             state={"url": f"sqlite+aiosqlite:///{tmp_path}/state.db", "redis_url": redis_url})
    tokens = {name: await create_token(settings, name, ["read"]) for name in ("ann", "bob", "cid", "dan", "eve")}
    async with asgi_client(create_app(settings, capabilities=[]), token=tokens["ann"]) as client:
        ann = [await open_session(client, VERSION) for _ in range(3)]
        client.headers["authorization"] = f"Bearer {tokens['bob']}"
        bob = await open_session(client, VERSION)
        await _ping(client, ann[0], tokens["ann"])  # ann's least recently used is now ann[1]
        client.headers["authorization"] = f"Bearer {tokens['cid']}"
        cid = await open_session(client, VERSION)  # the table is full: ann, who holds the most, gives way
        assert [await _ping(client, sid, tokens["ann"]) for sid in ann] == [200, 404, 200]
        client.headers["authorization"] = f"Bearer {tokens['dan']}"
        await open_session(client, VERSION)  # ann again (2 sessions, the most)
        assert await _ping(client, bob, tokens["bob"]) == 200 and await _ping(client, cid, tokens["cid"]) == 200
        # Now each of four tokens holds one session: nobody is evicted for a fifth, which gets 503.
        client.headers["authorization"] = f"Bearer {tokens['eve']}"
        response = await client.post("/mcp", headers=JSON_HEADERS, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        assert response.status_code == 503
