"""The `redis` verifier through the real endpoint and a real Redis: admit, refuse, expiry, malformed entries,
revocation across two instances within the cache age, Redis down or hung (503 naming Redis, within the timeout),
chained with bearer, and scopes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_platform.app import create_app
from mcp_platform.auth import hash_token
from mcp_platform.auth.redis_entries import MAX_ENTRY_BYTES
from mcp_platform.auth.redis_tokens import RedisTokenVerifier, open_client
from mcp_platform.capabilities import metrics, ratelimit
from mcp_platform.context import Clock
from mcp_platform.errors import ConfigError, Unauthorized
from tests.auth.redis_support import redis_tokens
from tests.support import TOKEN, TestClock, asgi_client, eventually, free_port, modern_headers, modern_request
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio


async def tools_list(client: httpx2.AsyncClient, token: str | None) -> httpx2.Response:
    return await client.post("/mcp", headers=modern_headers("tools/list", token=token),
                             json=modern_request("tools/list"))


def served(response: httpx2.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {tool["name"] for tool in response.json()["result"]["tools"]}


async def test_a_redis_token_is_admitted_with_its_name_and_scopes(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        token = await tokens.add("alice", ["write"])
        client, location = open_client(tokens.settings(tmp_path))
        verifier = RedisTokenVerifier(client, tokens.settings(tmp_path).auth.redis, location=location)
        try:
            principal = await verifier.verify(token)
            assert principal is not None and principal.name == "alice"
            assert principal.scopes == {"read", "write"}
            assert await verifier.verify("mcpp_not-a-token-anyone-wrote") is None
        finally:
            await verifier.close()
            await client.aclose()


async def test_admitted_through_the_endpoint_and_unknown_tokens_get_401(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        token = await tokens.add("alice", ["admin"], expires_at=4102444800)  # 2100
        app = create_app(tokens.settings(tmp_path), capabilities=[])
        async with asgi_client(app, token=None) as client:
            assert "admin_thing" in served(await tools_list(client, token))
            for unknown in ("mcpp_unknown", TOKEN, "x" * 5000):
                refused = await tools_list(client, unknown)
                assert refused.status_code == 401
                challenge = refused.headers["www-authenticate"]
                assert 'error="invalid_token"' in challenge and "malformed" in challenge  # the generic reason
            anonymous = await tools_list(client, None)
            assert anonymous.status_code == 401 and "error=" not in anonymous.headers["www-authenticate"]


async def test_an_expired_entry_is_refused_saying_so(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        token = await tokens.add("old", ["read"], expires_at=1_000_000_000)  # 2001
        app = create_app(tokens.settings(tmp_path), capabilities=[])
        async with asgi_client(app, token=None) as client:
            refused = await tools_list(client, token)
            assert refused.status_code == 401
            assert 'error_description="The token has expired"' in refused.headers["www-authenticate"]
            assert token not in refused.text and hash_token(token) not in refused.text


async def test_an_entry_expiring_while_cached_stops_at_its_expiry(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        now = [2_000_000_000.0]
        token = await tokens.add("short", ["read"], expires_at=now[0] + 1)
        client, location = open_client(tokens.settings(tmp_path))
        verifier = RedisTokenVerifier(client, tokens.settings(tmp_path).auth.redis, location=location,
                                      clock=TestClock(), wall=lambda: now[0])
        try:
            assert await verifier.verify(token) is not None
            now[0] += 1
            with pytest.raises(Unauthorized) as refused:
                await verifier.verify(token)  # still cached, but its own expiry has come
            assert refused.value.description == "The token has expired"
        finally:
            await verifier.close()
            await client.aclose()


MALFORMED: dict[str, Any] = {
    "garbage JSON": b"{\"name\": \"alice\", scopes",
    "not UTF-8": b"\xc3\x28",
    "a JSON list": ["alice", ["read"]],
    "name of the wrong type": {"name": ["alice"], "scopes": ["read"]},
    "scopes of the wrong type": {"name": "alice", "scopes": "read"},
    "expiry of the wrong type": {"name": "alice", "scopes": ["read"], "expires_at": "2030-01-01"},
    "an unknown scope": {"name": "alice", "scopes": ["read", "superuser"]},
    "no scopes": {"name": "alice", "scopes": []},
    "a huge value": {"name": "alice", "scopes": ["read"], "padding": "x" * MAX_ENTRY_BYTES},
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_entry_is_refused_with_the_reason(tmp_path: Path, case: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    async with redis_tokens() as tokens:
        token = await tokens.put(MALFORMED[case])
        app = create_app(tokens.settings(tmp_path, mode=["redis", "bearer"]), capabilities=[])
        async with asgi_client(app, token=None) as client:
            refused = await tools_list(client, token)
            assert refused.status_code == 401, refused.text
            challenge = refused.headers["www-authenticate"]
            assert 'error="invalid_token"' in challenge and "entry in Redis is malformed" in challenge
            assert token not in refused.text and token not in caplog.text
            assert hash_token(token)[:12] in caplog.text  # the operator can find the key
            assert hash_token(token) not in caplog.text


async def test_a_hash_entry_and_other_redis_types(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        await tokens.client.hset(tokens.key("hash-token"), mapping={"name": "bob", "scopes": "read"})
        await tokens.client.sadd(tokens.key("set-token"), "bob")
        app = create_app(tokens.settings(tmp_path), capabilities=[])
        async with asgi_client(app, token=None) as client:
            assert "write_thing" not in served(await tools_list(client, "hash-token"))
            refused = await tools_list(client, "set-token")
            assert refused.status_code == 401 and "Redis set" in refused.headers["www-authenticate"]


async def test_revoking_takes_effect_on_two_instances_within_the_cache_age(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        token = await tokens.add("alice", ["read"])
        clock = TestClock()
        first = create_app(tokens.settings(tmp_path / "a"), capabilities=[], clock=Clock(now=clock.now))
        second = create_app(tokens.settings(tmp_path / "b"), capabilities=[], clock=Clock(now=clock.now))
        async with asgi_client(first, token=None) as one, asgi_client(second, token=None) as two:
            for client in (one, two):
                assert "add" in served(await tools_list(client, token))
            await tokens.client.delete(tokens.key(token))
            clock.advance(4.9)
            for client in (one, two):  # each instance still holds the answer it had
                assert (await tools_list(client, token)).status_code == 200
            clock.advance(0.1)
            for client in (one, two):
                assert (await tools_list(client, token)).status_code == 401

            # A new token is seen within the cache age too, even by an instance that was just told "unknown".
            fresh = "mcpp_created-after-it-was-tried"
            assert (await tools_list(one, fresh)).status_code == 401
            await tokens.put({"name": "late", "scopes": ["read"]}, token=fresh)
            assert (await tools_list(one, fresh)).status_code == 401
            assert (await tools_list(two, fresh)).status_code == 200
            clock.advance(5)
            assert (await tools_list(one, fresh)).status_code == 200


async def test_redis_down_at_start_gives_503_naming_redis(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with redis_tokens() as tokens:
        closed = f"redis://:hunter2-password@127.0.0.1:{free_port()}/{tokens.database}"
        app = create_app(tokens.settings(tmp_path, url=closed, mode=["bearer", "redis"]),
                         capabilities=[metrics.CAPABILITY])
        with caplog.at_level(logging.WARNING), anyio.fail_after(10):
            async with asgi_client(app, token=None) as client:
                down = await tools_list(client, "mcpp_some-redis-token")
                assert down.status_code == 503
                assert "Redis token store is unavailable: connection failed" in down.json()["error"]["message"]
                assert down.headers["retry-after"] == "5"
                assert "add" in served(await tools_list(client, TOKEN))  # bearer tokens go on, asked first
                scraped = await client.get("/metrics", headers={"authorization": "Bearer mcpp_some-redis-token"})
                assert scraped.status_code == 503 and "Redis" in scraped.text
        assert "does not answer" in caplog.text and "hunter2" not in caplog.text + down.text


async def test_redis_going_away_mid_run_keeps_cached_answers_then_503_then_recovers(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        proxy = TcpProxy("127.0.0.1", tokens.port)
        try:
            token = await tokens.add("alice", ["read"])
            clock = TestClock()
            url = f"redis://127.0.0.1:{proxy.port}/{tokens.database}"
            app = create_app(tokens.settings(tmp_path, url=url), capabilities=[], clock=Clock(now=clock.now))
            async with asgi_client(app, token=None) as client:
                assert (await tools_list(client, token)).status_code == 200
                proxy.cut()
                assert (await tools_list(client, token)).status_code == 200  # the cached answer, for its age
                clock.advance(5)
                with anyio.fail_after(5):
                    down = await tools_list(client, token)
                assert down.status_code == 503 and "Redis" in down.json()["error"]["message"]
                assert (await tools_list(client, "mcpp_never-seen")).status_code == 503  # never "allow"
                proxy.restore()

                async def back() -> bool:
                    return (await tools_list(client, token)).status_code == 200

                await eventually(back, timeout=10, interval=0.05, what="Redis's return")
        finally:
            proxy.close()


async def test_a_hung_redis_gives_503_within_the_timeout(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        proxy = TcpProxy("127.0.0.1", tokens.port)
        try:
            token = await tokens.add("alice", ["read"])
            url = f"redis://127.0.0.1:{proxy.port}/{tokens.database}"
            app = create_app(tokens.settings(tmp_path, url=url, redis={"timeout_seconds": 0.3, "cache_seconds": 0}),
                             capabilities=[])
            async with asgi_client(app, token=None) as client:
                assert (await tools_list(client, token)).status_code == 200
                proxy.stall()
                with anyio.fail_after(2):  # 0.3 s, with room for a loaded machine; never the driver's retries
                    async with anyio.create_task_group() as group:  # concurrent requests, one shared lookup
                        for _ in range(5):
                            async def one() -> None:
                                hung = await tools_list(client, token)
                                assert hung.status_code == 503
                                assert "no answer within 0.3 s" in hung.json()["error"]["message"]
                            group.start_soon(one)
                proxy.flow()

                async def back() -> bool:
                    return (await tools_list(client, token)).status_code == 200

                await eventually(back, timeout=10, interval=0.05, what="Redis answering again")
        finally:
            proxy.close()


async def test_bearer_and_redis_tokens_are_both_admitted(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        token = await tokens.add("from-redis", ["read"])
        app = create_app(tokens.settings(tmp_path, mode=["bearer", "redis"]), capabilities=[])
        async with asgi_client(app, token=None) as client:
            assert "admin_thing" in served(await tools_list(client, TOKEN))
            assert "admin_thing" not in served(await tools_list(client, token))
            assert (await tools_list(client, "mcpp_neither")).status_code == 401


async def test_a_read_only_redis_principal_sees_read_tools_and_gets_403_for_others(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        reader = await tokens.add("reader", ["read"])
        app = create_app(tokens.settings(tmp_path), capabilities=[])
        async with asgi_client(app, token=None) as client:
            names = served(await tools_list(client, reader))
            assert "add" in names and "write_thing" not in names and "admin_thing" not in names
            for tool, scope in (("write_thing", "write"), ("admin_thing", "admin")):
                response = await client.post(
                    "/mcp", headers=modern_headers("tools/call", name=tool, token=reader),
                    json=modern_request("tools/call", {"name": tool, "arguments": {"value": "x"}}))
                assert response.status_code == 403
                challenge = response.headers["www-authenticate"]
                assert f'error="insufficient_scope", scope="{scope}"' in challenge
                assert reader not in response.text


async def test_a_flood_of_random_tokens_meets_the_failed_auth_limit(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        settings = tokens.settings(tmp_path, auth={"failed_auth_per_minute": 3})
        app = create_app(settings, capabilities=[ratelimit.CAPABILITY])
        async with asgi_client(app, token=None) as client:
            statuses = [(await tools_list(client, f"mcpp_random-{n}")).status_code for n in range(5)]
            assert statuses == [401, 401, 401, 429, 429]


async def test_describe_shows_where_and_how_never_a_password(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        url = f"redis://user:hunter2-password@127.0.0.1:{tokens.port}/{tokens.database}"
        client, location = open_client(tokens.settings(tmp_path, url=url, redis={"cache_size": 50}))
        verifier = RedisTokenVerifier(client, tokens.settings(tmp_path).auth.redis, location=location)
        try:
            described = verifier.describe()
        finally:
            await verifier.close()
            await client.aclose()
        assert described["mode"] == "redis" and described["key_prefix"] == tokens.prefix
        assert described["redis"] == f"redis://127.0.0.1:{tokens.port}/{tokens.database}"
        assert {"cache_size", "cache_seconds", "timeout_seconds", "cached_answers"} <= set(described)
        assert "hunter2" not in repr(described) and "user" not in repr(described)


async def test_redis_mode_without_a_redis_url_is_refused_at_start(tmp_path: Path) -> None:
    from tests.support import make_settings

    app = create_app(make_settings(tmp_path, auth={"mode": ["redis"]}), capabilities=[])
    with pytest.raises(ConfigError, match=r"auth.redis.url \(or state.redis_url\)"):
        async with asgi_client(app):
            pass


async def test_the_state_redis_is_used_when_auth_redis_url_is_unset(tmp_path: Path) -> None:
    async with redis_tokens() as tokens:
        token = await tokens.add("alice", ["read"])
        settings = tokens.settings(tmp_path, redis={"url": None},
                                   state={"url": f"sqlite+aiosqlite:///{tmp_path}/state.db", "redis_url": tokens.url})
        assert settings.auth.redis.url is None
        app = create_app(settings, capabilities=[])
        async with asgi_client(app, token=None) as client:
            assert (await tools_list(client, token)).status_code == 200

