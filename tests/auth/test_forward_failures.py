"""Forward auth when the auth service cannot decide (down, slow, 5xx, redirects, hostile answers) and when its
settings are wrong: always a refusal naming the service, never "allow", never a 500."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_platform.app import create_app
from mcp_platform.config_reload import ConfigManager
from mcp_platform.errors import AuthServiceUnavailable, ConfigError
from mcp_platform.settings import load_settings
from tests.auth.forward_service import (
    SLOW,
    AuthService,
    forward_settings,
    hostile_service,
    presented,
    verifier_for,
)
from tests.support import asgi_client, free_port, modern_headers, modern_request

pytestmark = pytest.mark.anyio


async def test_a_service_that_is_down_is_a_503_naming_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/auth"  # nothing listens there
    app = create_app(forward_settings(tmp_path, url + "?secret=abc"), capabilities=[])
    async with asgi_client(app, token=None) as client:
        reply = await client.post("/mcp", headers=modern_headers("tools/list", token="any-token"),
                                  json=modern_request("tools/list"))
    assert reply.status_code == 503 and reply.headers["retry-after"] == "2"
    message = reply.json()["error"]["message"]
    assert f"the auth service {url} cannot be reached (ConnectError)" in message
    assert "secret" not in reply.text and "any-token" not in reply.text


async def test_a_slow_service_is_a_503_within_the_timeout_and_is_asked_again_next_time(
        tmp_path: Path, service: AuthService) -> None:
    async with verifier_for(forward_settings(tmp_path, service.url, timeout_seconds=0.3)) as verifier:
        for attempt in (1, 2):  # a failure to decide is never cached
            started = time.monotonic()
            with anyio.fail_after(5), pytest.raises(AuthServiceUnavailable, match=r"did not answer within 0.3 s"):
                await verifier.verify(SLOW, presented(SLOW))
            assert time.monotonic() - started < 1.5
            assert service.asked(SLOW) == attempt


@pytest.mark.parametrize(("status", "problem"), [
    (500, "answered 500"), (502, "answered 502"), (503, "answered 503"), (404, "answered 404"),
    (400, "answered 400"), (418, "answered 418"), (302, "answered 302, a redirect"), (307, "a redirect"),
    (304, "a redirect"),
])
async def test_other_answers_are_a_503_and_redirects_are_not_followed(
        tmp_path: Path, service: AuthService, status: int, problem: str) -> None:
    service.answers["odd-token"] = (status, {"Location": "/login", "X-Auth-Request-User": "mallory"})
    async with verifier_for(forward_settings(tmp_path, service.url)) as verifier:
        with pytest.raises(AuthServiceUnavailable, match=problem):
            await verifier.verify("odd-token", presented("odd-token"))
        service.admit("odd-token", "olive")  # the service recovers: the failure was not remembered
        assert (await verifier.verify("odd-token", presented("odd-token"))).name == "olive"
    assert [seen.path for seen in service.received] == ["/auth", "/auth"]


def answer(*headers: bytes, body: bytes = b"") -> bytes:
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(h + b"\r\n" for h in headers)
    return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


@pytest.mark.parametrize(("raw", "problem"), [
    (answer(b"X-Auth-Request-User: " + b"a" * 40_000), "invalid X-Auth-Request-User"),
    (answer(b"X-Auth-Request-User: " + b"a" * 200_000), "cannot be reached"),
    (answer(b"X-Auth-Request-User: " + b"a" * 257), "invalid X-Auth-Request-User"),
    (answer(b"X-Auth-Request-User: zoe\x01z"), "invalid X-Auth-Request-User"),
    (answer(b"X-Auth-Request-User: zoe\x7f"), "invalid X-Auth-Request-User"),
    (answer(b"X-Auth-Request-User: ren\xc3\xa9e"), "invalid X-Auth-Request-User"),
    (answer(b"X-Auth-Request-User: zoe z"), "invalid X-Auth-Request-User"),
    (answer(b"X-Auth-Request-User: zoe", b"X-Auth-Request-User: admin"), "invalid X-Auth-Request-User"),
    (answer(b"X-Auth-Request-User: "), "without naming it in X-Auth-Request-User"),
    (answer(b"X-Other: zoe"), "without naming it in X-Auth-Request-User"),
    (answer(b"X-Auth-Request-User: zoe", b"X-Auth-Request-Scopes: read\x01admin"), "invalid X-Auth-Request-Scopes"),
    (answer(b"X-Auth-Request-User: zoe", b"X-Auth-Request-Scopes: " + b"read " * 1000),
     "invalid X-Auth-Request-Scopes"),
    (answer(b"X-Auth-Request-User: zoe", b"X-Auth-Request-Scopes: r\xc3\xa9ad"), "invalid X-Auth-Request-Scopes"),
    (b"this is not HTTP\r\n\r\n", "cannot be reached"),
    (b"HTTP/1.1 200 OK\r\nX-Auth-Request-User: zoe\r\nContent-Length: 10\r\n\r\nshort", "cannot be reached"),
])
async def test_hostile_answers_are_a_503_that_does_not_echo_them(tmp_path: Path, raw: bytes, problem: str) -> None:
    async with hostile_service(raw) as url, verifier_for(forward_settings(tmp_path, url)) as verifier:
        with anyio.fail_after(5), pytest.raises(AuthServiceUnavailable, match=problem) as refused:
            await verifier.verify("any-token", presented("any-token"))
    assert "zoe" not in str(refused.value) and "aaaa" not in str(refused.value)


@pytest.mark.parametrize(("scopes", "granted"), [
    (b"read root superuser", {"read"}), (b"write,,  ,", {"read", "write"}), (b"", set()), (b"ROOT", set()),
    (b"admin" + b" x" * 2000, {"read", "write", "admin"}),
])
async def test_unknown_scope_names_are_ignored(tmp_path: Path, scopes: bytes, granted: set[str]) -> None:
    raw = answer(b"X-Auth-Request-User: zoe", b"X-Auth-Request-Scopes: " + scopes)
    async with hostile_service(raw) as url, verifier_for(forward_settings(tmp_path, url)) as verifier:
        assert (await verifier.verify("any-token", presented("any-token"))).scopes == granted


async def test_a_large_body_is_not_read_whole(tmp_path: Path) -> None:
    raw = answer(b"X-Auth-Request-User: zoe", body=b"x" * 5_000_000)
    async with hostile_service(raw) as url, verifier_for(forward_settings(tmp_path, url)) as verifier:
        with anyio.fail_after(5):
            assert (await verifier.verify("any-token", presented("any-token"))).name == "zoe"


async def test_a_credential_with_bytes_beyond_ascii_reaches_the_service_as_sent(
        tmp_path: Path, service: AuthService) -> None:
    app = create_app(forward_settings(tmp_path, service.url), capabilities=[])
    async with asgi_client(app, token=None) as client:
        headers = {key.encode(): value.encode() for key, value in modern_headers("tools/list", token=None).items()}
        headers[b"authorization"] = "Bearer tok\xe9n".encode("latin-1")
        reply = await client.post("/mcp?q=\xe9", headers=headers, json=modern_request("tools/list"))
    assert reply.status_code == 401
    assert service.received[0].header("authorization") == "Bearer tok\xe9n"


async def test_metrics_answers_the_services_refusal_not_a_500(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/auth"
    async with asgi_client(create_app(forward_settings(tmp_path, url)), token="any-token") as client:
        reply = await client.get("/metrics")
    assert reply.status_code == 503 and "auth service" in reply.text and "retry-after" in reply.headers


def test_forward_must_come_last_and_needs_its_url() -> None:
    with pytest.raises(ConfigError, match="must come last"):
        load_settings(auth={"mode": ["forward", "bearer"], "forward": {"url": "http://127.0.0.1/auth"}})
    with pytest.raises(ConfigError, match=r"auth.forward.url is required"):
        load_settings(auth={"mode": ["bearer", "forward"]})
    assert load_settings(auth={"mode": "bearer,forward", "forward": {"url": "https://auth.internal/check?a=b"}}
                         ).auth.forward.url == "https://auth.internal/check?a=b"


@pytest.mark.parametrize(("forward", "problem"), [
    ({"url": "ftp://auth.internal/check"}, "http:// or https://"),
    ({"url": "http://"}, "with a host"),
    ({"url": "auth.internal/check"}, "http:// or https://"),
    ({"url": "http://ops:hunter2@auth.internal/check"}, "may not hold credentials"),
    ({"url": "http://auth.internal/check#x"}, "fragment"),
    ({"url": "http://auth.internal:99999/check"}, "not a URL"),
    ({"url": "http://[::1/check"}, "not a URL"),
    ({"url": "http://auth.internal/a b"}, "printable ASCII"),
    ({"url": "http://auth.internal/\r\nX: y"}, "printable ASCII"),
    ({"url": "http://auth.internal/" + "a" * 3000}, "2048"),
    ({"url": 42}, "auth.forward.url"),
    ({"method": "DELETE"}, "auth.forward.method"),
    ({"timeout_seconds": 0}, "auth.forward.timeout_seconds"),
    ({"timeout_seconds": -1}, "auth.forward.timeout_seconds"),
    ({"timeout_seconds": 61}, "auth.forward.timeout_seconds"),
    ({"principal_header": "X User"}, "HTTP header name"),
    ({"principal_header": "X-User:"}, "HTTP header name"),
    ({"principal_header": ""}, "HTTP header name"),
    ({"principal_header": "X\r\nSet-Cookie"}, "HTTP header name"),
    ({"scopes_header": "x" * 65}, "HTTP header name"),
    ({"default_scopes": ["root"]}, "auth.forward.default_scopes"),
    ({"default_scopes": "read"}, "auth.forward.default_scopes"),
    ({"scope_map": {"mcp-admins": "root"}}, "auth.forward.scope_map"),
    ({"scope_map": {"two words": "read"}}, "no space or comma"),
    ({"scope_map": {"": "read"}}, "no space or comma"),
    ({"headers": {"Authorization": "Basic eA=="}}, "set by the forward verifier"),
    ({"headers": {"x-forwarded-for": "10.0.0.1"}}, "set by the forward verifier"),
    ({"headers": {"Bad Name": "x"}}, "not an HTTP header name"),
    ({"headers": {"X-Secret": "a\r\nInjected: yes"}}, "printable ASCII"),
    ({"headers": {"X-Secret": "caf\xe9"}}, "printable ASCII"),
    ({"headers": {"X-Secret": "x" * 5000}}, "4096"),
    ({"cache_seconds": -1}, "auth.forward.cache_seconds"),
    ({"cache_size": 0}, "auth.forward.cache_size"),
    ({"max_connections": 0}, "auth.forward.max_connections"),
    ({"unknown": 1}, "auth.forward.unknown"),
])
def test_forward_settings_refuse_hostile_values_naming_the_field(forward: dict[str, Any], problem: str) -> None:
    forward = {"url": "http://auth.internal/check", **forward}
    with pytest.raises(ConfigError, match=problem) as refused:
        load_settings(auth={"mode": ["forward"], "forward": forward})
    assert "hunter2" not in str(refused.value) and "Injected" not in str(refused.value)


async def test_a_reload_that_changes_forward_settings_says_they_take_a_restart_and_hides_header_values(
        tmp_path: Path) -> None:
    config = tmp_path / "mcp-platform.toml"
    base = '[auth]\nmode = ["forward"]\n[auth.forward]\nurl = "http://auth.internal/check"\n'
    config.write_text(base + 'headers = { X-Forward-Secret = "old-s3cret" }\n')
    manager = ConfigManager(load_settings(config))
    config.write_text(base + 'cache_seconds = 1\nheaders = { X-Forward-Secret = "new-s3cret" }\n')
    report = await manager.reload(dry_run=True)
    assert report.valid and set(report.restart_required) == {"auth.forward.cache_seconds",
                                                             "auth.forward.headers.X-Forward-Secret"}
    assert "s3cret" not in repr(report)


def test_forward_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_PLATFORM_AUTH__MODE", "bearer,forward")
    monkeypatch.setenv("MCP_PLATFORM_AUTH__FORWARD__URL", "https://auth.internal/check")
    monkeypatch.setenv("MCP_PLATFORM_AUTH__FORWARD__HEADERS", '{"X-Forward-Secret": "from-env"}')
    monkeypatch.setenv("MCP_PLATFORM_AUTH__FORWARD__DEFAULT_SCOPES", '["write"]')
    forward = load_settings().auth.forward
    assert forward.url == "https://auth.internal/check" and forward.default_scopes == ["write"]
    assert forward.headers["X-Forward-Secret"].get_secret_value() == "from-env"
    monkeypatch.setenv("MCP_PLATFORM_AUTH__FORWARD__URL", "file:///etc/passwd")
    with pytest.raises(ConfigError, match="auth.forward.url"):
        load_settings()
