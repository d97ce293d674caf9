"""Forward auth against a real HTTP auth service: admit, refuse, what the service receives, the decision cache,
revocation on two instances, and the scope rules for a forwarded principal in both protocol eras."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_platform.app import create_app
from mcp_platform.auth_types import Principal
from mcp_platform.context import Clock
from mcp_platform.errors import AuthServiceForbidden, Unauthorized
from mcp_platform.transport.limits import server_options
from tests.auth.forward_service import AuthService, forward_settings, presented, verifier_for
from tests.support import (
    JSON_HEADERS,
    TOKEN,
    TestClock,
    asgi_client,
    create_token,
    eventually,
    free_port,
    make_settings,
    mcp_client,
    modern_headers,
    modern_request,
    running_server,
)

pytestmark = pytest.mark.anyio

async def call(client: httpx2.AsyncClient, token: str, method: str = "tools/list",
               params: dict[str, Any] | None = None) -> httpx2.Response:
    name = params["name"] if params and method == "tools/call" else None
    return await client.post("/mcp", headers=modern_headers(method, name=name, token=token),
                             json=modern_request(method, params))


async def test_an_admitted_token_has_the_principal_and_scopes_the_service_names(
        tmp_path: Path, service: AuthService) -> None:
    service.admit("alice-token", "alice@example.com", "read, write")
    service.admit("bob-token", "bob", "admin")
    async with verifier_for(forward_settings(tmp_path, service.url)) as verifier:
        assert await verifier.verify("alice-token", presented("alice-token")) == Principal(
            "alice@example.com", frozenset({"read", "write"}))
        assert await verifier.verify("bob-token", presented("bob-token")) == Principal(
            "bob", frozenset({"read", "write", "admin"}))


async def test_an_admit_without_scopes_gets_the_default_scopes(tmp_path: Path, service: AuthService) -> None:
    service.admit("carol-token", "carol")
    async with verifier_for(forward_settings(tmp_path, service.url)) as verifier:
        assert (await verifier.verify("carol-token", presented("carol-token"))).scopes == {"read"}
    async with verifier_for(forward_settings(tmp_path, service.url, default_scopes=["write"])) as verifier:
        assert (await verifier.verify("carol-token", presented("carol-token"))).scopes == {"read", "write"}


async def test_group_names_map_to_scopes_and_unknown_names_grant_nothing(tmp_path: Path, service: AuthService) -> None:
    service.admit("ops-token", "olga", "staff,mcp-admins")
    service.admit("guest-token", "gus", "root superuser")
    settings = forward_settings(tmp_path, service.url, scope_map={"mcp-admins": "admin"})
    async with verifier_for(settings) as verifier:
        assert (await verifier.verify("ops-token", presented("ops-token"))).scopes == {"read", "write", "admin"}
        assert (await verifier.verify("guest-token", presented("guest-token"))).scopes == frozenset()


async def test_the_services_401_and_403_are_passed_on(tmp_path: Path, service: AuthService) -> None:
    service.answers["banned-token"] = (403, {})
    app = create_app(forward_settings(tmp_path, service.url), capabilities=[])
    async with asgi_client(app, token=None) as client:
        refused = await call(client, "unknown-token")
        assert refused.status_code == 401
        challenge = refused.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge and "auth service refused" in challenge
        forbidden = await call(client, "banned-token")
        assert forbidden.status_code == 403 and "www-authenticate" not in forbidden.headers
        assert forbidden.json()["error"]["code"] == -32003
        assert "forbids" in forbidden.json()["error"]["message"]
        assert "banned-token" not in forbidden.text and "unknown-token" not in refused.text


async def test_the_service_receives_the_authorization_and_forwarded_headers_and_nothing_else(
        tmp_path: Path, service: AuthService) -> None:
    service.admit("dave-token", "dave", "read", **{"Set-Cookie": "sid=for-dave; Path=/"})
    settings = forward_settings(tmp_path, service.url, headers={"X-Forward-Secret": "s3cret-shared"})
    app = create_app(settings, capabilities=[])
    async with asgi_client(app, token=None) as client:
        client.cookies.set("session", "browser-cookie")
        for token in ("dave-token", "erin-token"):
            await client.post("/mcp?page=2", json=modern_request("tools/list"), headers={
                **modern_headers("tools/list", token=token), "origin": "http://127.0.0.1:8000",
                "x-custom": "private"})
    first, second = service.received
    assert (first.method, first.path, first.query, first.body) == ("GET", "/auth", "allowed_groups=mcp", b"")
    assert first.header("authorization") == "Bearer dave-token"
    assert first.header("x-forwarded-method") == "POST" and first.header("x-forwarded-uri") == "/mcp?page=2"
    assert first.header("x-forwarded-for") == "127.0.0.1" and first.header("x-forwarded-host") == "127.0.0.1:8000"
    assert first.header("x-forwarded-proto") == "http" and first.header("x-original-method") == "POST"
    assert first.header("x-original-url") == "http://127.0.0.1:8000/mcp?page=2"
    assert first.header("x-forward-secret") == "s3cret-shared"
    sent = {name for name, _ in first.headers}
    assert sent == {"host", "accept", "accept-encoding", "connection", "user-agent", "authorization",
                    "x-forwarded-method", "x-forwarded-uri", "x-forwarded-for", "x-forwarded-host",
                    "x-forwarded-proto", "x-original-method", "x-original-url", "x-forward-secret"}
    # The cookie the service set for dave never comes back with erin's request, nor the client's own cookie.
    assert second.header("authorization") == "Bearer erin-token" and second.header("cookie") is None


async def test_a_post_to_the_service_has_an_empty_body(tmp_path: Path, service: AuthService) -> None:
    service.admit("fay-token", "fay")
    async with verifier_for(forward_settings(tmp_path, service.url, method="POST")) as verifier:
        await verifier.verify("fay-token", presented("fay-token"))
    assert [(seen.method, seen.body) for seen in service.received] == [("POST", b"")]


async def test_a_decision_is_reused_within_cache_seconds_and_asked_again_after(
        tmp_path: Path, service: AuthService) -> None:
    service.admit("gil-token", "gil")
    clock = TestClock()
    async with verifier_for(forward_settings(tmp_path, service.url, cache_seconds=5), clock) as verifier:
        for _ in range(3):
            await verifier.verify("gil-token", presented("gil-token"))
            with pytest.raises(Unauthorized):
                await verifier.verify("nobody-token", presented("nobody-token"))
        assert service.asked("gil-token") == 1 and service.asked("nobody-token") == 1
        clock.advance(4.9)
        await verifier.verify("gil-token", presented("gil-token"))
        assert service.asked("gil-token") == 1
        clock.advance(0.2)
        await verifier.verify("gil-token", presented("gil-token"))
        assert service.asked("gil-token") == 2


async def test_cache_seconds_zero_asks_every_time(tmp_path: Path, service: AuthService) -> None:
    service.answers["hal-token"] = (403, {})
    async with verifier_for(forward_settings(tmp_path, service.url, cache_seconds=0)) as verifier:
        for _ in range(3):
            with pytest.raises(AuthServiceForbidden):
                await verifier.verify("hal-token", presented("hal-token"))
    assert service.asked("hal-token") == 3


async def test_the_cache_keeps_at_most_cache_size_decisions_dropping_the_oldest(
        tmp_path: Path, service: AuthService) -> None:
    for name in "abc":
        service.admit(f"{name}-token", name)
    async with verifier_for(forward_settings(tmp_path, service.url, cache_size=2)) as verifier:
        for name in "abc":
            await verifier.verify(f"{name}-token", presented(f"{name}-token"))
        assert verifier.describe()["cached_decisions"] == 2
        await verifier.verify("c-token", presented("c-token"))
        await verifier.verify("a-token", presented("a-token"))
    assert [service.asked(f"{name}-token") for name in "abc"] == [2, 1, 1]


async def test_concurrent_checks_of_one_token_share_one_request(tmp_path: Path, service: AuthService) -> None:
    service.admit("slow-token", "sam")
    principals: list[Principal] = []

    async def check() -> None:
        principals.append(await verifier.verify("slow-token", presented("slow-token")))

    async with verifier_for(forward_settings(tmp_path, service.url, timeout_seconds=10)) as verifier:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for _ in range(20):
                    group.start_soon(check)
                await eventually(lambda: service.received, what="the service being asked")
                service.release.set()
    assert len(principals) == 20 and {p.name for p in principals} == {"sam"}
    assert service.asked("slow-token") == 1


async def test_a_revoked_token_stops_working_on_two_instances_within_the_cache_age(
        tmp_path: Path, service: AuthService) -> None:
    service.admit("ivy-token", "ivy")
    clocks = [TestClock(), TestClock()]
    for i in range(2):
        (tmp_path / f"node{i}").mkdir()
    apps = [create_app(forward_settings(tmp_path / f"node{i}", service.url, cache_seconds=5),
                       capabilities=[], clock=Clock(now=clock.now)) for i, clock in enumerate(clocks)]
    async with asgi_client(apps[0], token=None) as first, asgi_client(apps[1], token=None) as second:
        for client in (first, second):
            assert (await call(client, "ivy-token")).status_code == 200
        assert service.asked("ivy-token") == 2  # each instance asked once
        del service.answers["ivy-token"]  # revoked at the auth service
        for client in (first, second):
            assert (await call(client, "ivy-token")).status_code == 200  # still within the cache age
        for clock in clocks:
            clock.advance(5.01)
        for client in (first, second):
            assert (await call(client, "ivy-token")).status_code == 401


async def test_bearer_tokens_are_never_sent_to_the_forward_service(tmp_path: Path, service: AuthService) -> None:
    settings = forward_settings(tmp_path, service.url, mode=["bearer", "forward"])
    named = await create_token(settings, "ci", ["read"])
    service.admit("jo-token", "jo")
    app = create_app(settings, capabilities=[])
    async with asgi_client(app, token=None) as client:
        for token in (named, TOKEN, "jo-token"):
            assert (await call(client, token)).status_code == 200
        assert (await call(client, "mcpp_unknown")).status_code == 401
    sent = [seen.header("authorization") for seen in service.received]
    assert sent == ["Bearer jo-token", "Bearer mcpp_unknown"]


async def test_the_authorization_header_is_never_logged(tmp_path: Path, service: AuthService,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    service.admit("kim-token-0123456789", "kim")
    service.answers["lee-token-0123456789"] = (500, {})
    app = create_app(forward_settings(tmp_path, service.url), capabilities=[])
    with caplog.at_level(logging.DEBUG):
        async with asgi_client(app, token=None) as client:
            for token in ("kim-token-0123456789", "lee-token-0123456789", "max-token-0123456789"):
                await call(client, token)
    assert "token-0123456789" not in caplog.text
    assert "answered 500" in caplog.text


async def test_describe_names_the_service_without_its_query_or_header_values(tmp_path: Path,
                                                                             service: AuthService) -> None:
    settings = forward_settings(tmp_path, service.url, headers={"X-Forward-Secret": "s3cret-shared"})
    async with verifier_for(settings) as verifier:
        described = verifier.describe()
    assert described["mode"] == "forward" and described["url"] == service.url.split("?")[0]
    assert described["static_headers"] == ["X-Forward-Secret"] and described["principal_header"] == \
        "X-Auth-Request-User"
    assert "s3cret" not in repr(described) and "allowed_groups" not in repr(described)


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_a_read_only_forwarded_principal_sees_read_tools_and_gets_403_for_others(
        tmp_path: Path, service: AuthService, era: str) -> None:
    service.admit("reader-token", "rita", "read")
    app = create_app(forward_settings(tmp_path, service.url), capabilities=[])
    with running_server(app) as base:
        async with mcp_client(f"{base}/mcp", era, token="reader-token") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
        assert "add" in names and "write_thing" not in names and "admin_thing" not in names
        params = {"name": "write_thing", "arguments": {"value": "x"}}
        async with httpx2.AsyncClient(base_url=base) as http:
            if era == "legacy":
                headers = {**JSON_HEADERS, "authorization": "Bearer reader-token"}
                opened = await http.post("/mcp", headers=headers, json={
                    "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                        "protocolVersion": "2025-11-25", "capabilities": {},
                        "clientInfo": {"name": "tests", "version": "1"}}})
                headers["mcp-session-id"] = opened.headers["mcp-session-id"]
                await http.post("/mcp", headers=headers, json={"jsonrpc": "2.0",
                                                                "method": "notifications/initialized"})
                refused = await http.post("/mcp", headers=headers, json={
                    "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
            else:
                refused = await call(http, "reader-token", "tools/call", params)
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert refused.json()["error"]["data"] == {"requiredScope": "write"}


@pytest.mark.parametrize(("trusted", "seen_for", "seen_proto"), [
    ([], "127.0.0.1", "http"), (["127.0.0.0/8"], "203.0.113.9", "https"),
])
async def test_the_forwarded_client_is_the_one_after_trusted_proxies_never_the_clients_own_claim(
        tmp_path: Path, service: AuthService, trusted: list[str], seen_for: str, seen_proto: str) -> None:
    service.admit("pat-token", "pat")
    settings = make_settings(tmp_path, http={"trusted_proxies": trusted},
                             auth={"mode": ["forward"], "forward": {"url": service.url}})
    with running_server(create_app(settings, capabilities=[]), **server_options(settings.http)) as base:
        async with httpx2.AsyncClient(base_url=base) as http:
            reply = await http.post("/mcp", json=modern_request("tools/list"), headers={
                **modern_headers("tools/list", token="pat-token"), "x-forwarded-for": "203.0.113.9",
                "x-forwarded-proto": "https", "x-forwarded-uri": "/admin", "x-forwarded-method": "DELETE",
                "x-original-url": "http://evil.example/"})
    assert reply.status_code == 200
    [seen] = service.received
    assert (seen.header("x-forwarded-for"), seen.header("x-forwarded-proto")) == (seen_for, seen_proto)
    assert (seen.header("x-forwarded-uri"), seen.header("x-forwarded-method")) == ("/mcp", "POST")
    assert seen.header("x-original-url") == f"{seen_proto}://{base.removeprefix('http://')}/mcp"
    assert [name for name, _ in seen.headers].count("x-forwarded-for") == 1


async def test_while_an_earlier_verifier_is_down_forward_admits_its_own_and_the_rest_get_the_outage(
        tmp_path: Path, service: AuthService) -> None:
    service.admit("quinn-token", "quinn")
    settings = make_settings(tmp_path, auth={"mode": ["redis", "forward"], "forward": {"url": service.url},
                                             "redis": {"url": f"redis://127.0.0.1:{free_port()}/0",
                                                       "timeout_seconds": 0.5}})
    async with asgi_client(create_app(settings, capabilities=[]), token=None) as client:
        assert (await call(client, "quinn-token")).status_code == 200  # Redis down: forward still decides its own
        # A token the auth service does not know may be one of Redis's: 503, never a 401 that drops it.
        maybe_redis = await call(client, "mcpp_maybe-a-redis-token")
        assert maybe_redis.status_code == 503 and "Redis" in maybe_redis.json()["error"]["message"]
