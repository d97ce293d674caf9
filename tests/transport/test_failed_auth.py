"""The failed-auth limit: it limits failures only, so a valid token is admitted whatever its address did, and the
client address it counts is the socket's unless the connection comes from a proxy named in `http.trusted_proxies`
(uvicorn's own default trusts X-Forwarded-For from loopback, which would let anyone behind a local proxy, or on
the host, pick the address their failures are charged to)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_platform.app import create_app
from tests.support import JSON_HEADERS, TOKEN, asgi_client, make_settings
from tests.transport.test_limits import _connect, _read_head, _status, limited_server

pytestmark = pytest.mark.anyio

PING = b'{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{' \
       b'"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},' \
       b'"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}}}'


async def test_a_valid_token_is_admitted_from_an_address_over_its_failure_limit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    headers = {**JSON_HEADERS, "mcp-protocol-version": "2026-07-28", "mcp-method": "server/discover"}
    async with asgi_client(create_app(settings, capabilities=None), token=None) as client:
        statuses = []
        for attempt in range(settings.auth.failed_auth_per_minute + 5):
            wrong = {**headers, "authorization": f"Bearer wrong-token-{attempt}"}
            statuses.append((await client.post("/mcp", headers=wrong, content=PING)).status_code)
        assert statuses[0] == 401 and statuses[-1] == 429  # the failures are limited
        assert (await client.post("/mcp", headers=headers, content=PING)).status_code == 429  # no token: a failure
        right = {**headers, "authorization": f"Bearer {TOKEN}"}
        for _ in range(3):
            response = await client.post("/mcp", headers=right, content=PING)
            assert response.status_code == 200, response.text
        wrong = {**headers, "authorization": "Bearer still-wrong"}
        assert (await client.post("/mcp", headers=wrong, content=PING)).status_code == 429


def _post(address: tuple[str, int], token: str, forwarded_for: str) -> int:
    body = PING
    with _connect(address) as sock:
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token.encode() +
                     b"\r\nX-Forwarded-For: " + forwarded_for.encode() +
                     b"\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                     b"MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: server/discover\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        return _status(_read_head(sock))


def _failures_counted_per_forwarded_address(tmp_path: Path, **http: object) -> tuple[bool, int]:
    """Spend one forwarded address's failure budget, then fail from another: True if that one still gets 401
    (X-Forwarded-For decided the address), False if 429 (the socket's address did); and the status the right
    token then gets from the spent address."""
    settings = make_settings(tmp_path, http=http, auth={"failed_auth_per_minute": 3})
    with limited_server(settings, "auto", capabilities=True) as address:
        for _ in range(3):
            assert _post(address, "wrong", "203.0.113.1") == 401
        assert _post(address, "wrong", "203.0.113.1") == 429
        other = _post(address, "wrong", "203.0.113.2")
        return other == 401, _post(address, TOKEN, "203.0.113.1")


def test_x_forwarded_for_from_loopback_is_ignored_by_default(tmp_path: Path) -> None:
    assert _failures_counted_per_forwarded_address(tmp_path) == (False, 200)


def test_x_forwarded_for_is_honoured_from_a_configured_proxy(tmp_path: Path) -> None:
    assert _failures_counted_per_forwarded_address(tmp_path, trusted_proxies=["127.0.0.0/8"]) == (True, 200)


def test_x_forwarded_for_from_an_unlisted_proxy_is_ignored(tmp_path: Path) -> None:
    assert _failures_counted_per_forwarded_address(tmp_path, trusted_proxies=["192.0.2.7"]) == (False, 200)

