"""Every HTTP status and JSON-RPC error code the endpoint can give, provoked with hostile input, in process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mcp_platform.app import create_app
from tests.support import (
    JSON_HEADERS,
    MODERN,
    TOKEN,
    asgi_client,
    make_settings,
    modern_headers,
    modern_request,
    open_session,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(make_settings(tmp_path, http={"max_body_bytes": 4096}), capabilities=[])
    async with asgi_client(app) as c:
        yield c


def _error(response: httpx2.Response) -> dict[str, Any]:
    body = response.json()
    assert body["jsonrpc"] == "2.0"
    error: dict[str, Any] = body["error"]
    return error


# -- transport guards ------------------------------------------------------------------------------------------


async def test_foreign_host_is_421(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers={**JSON_HEADERS, "host": "evil.example:8000"}, content=b"{}")
    assert response.status_code == 421


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example:8000",
                                    "https://localhost.evil:443", "file://", "http://[::2]:80"])
async def test_foreign_origin_is_403(client: httpx2.AsyncClient, origin: str) -> None:
    response = await client.post("/mcp", headers={**JSON_HEADERS, "origin": origin},
                                 json=modern_request("tools/list"))
    assert response.status_code == 403
    assert _error(response)["code"] == -32600


async def test_loopback_origin_is_accepted(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers={**modern_headers("tools/list"), "origin": "http://localhost:6274"},
                                 json=modern_request("tools/list"))
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["PUT", "PATCH", "OPTIONS", "HEAD"])
async def test_other_methods_are_405_with_allow(client: httpx2.AsyncClient, method: str) -> None:
    response = await client.request(method, "/mcp")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST, DELETE"


async def test_wrong_content_type_is_400(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers={**JSON_HEADERS, "content-type": "text/plain"},
                                 content=json.dumps(modern_request("tools/list")))
    assert response.status_code == 400


@pytest.mark.parametrize("accept", ["", "text/html", "application/json", "text/event-stream"])
async def test_accept_without_both_types_is_406(client: httpx2.AsyncClient, accept: str | None) -> None:
    headers = {"content-type": "application/json"}
    if accept is not None:
        headers["accept"] = accept
    response = await client.post("/mcp", headers=headers, json=modern_request("tools/list"))
    assert response.status_code == 406


async def test_accept_wildcard_is_enough(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers={**modern_headers("tools/list"), "accept": "*/*"},
                                 json=modern_request("tools/list"))
    assert response.status_code == 200


async def test_declared_huge_body_is_413_before_reading(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers={**JSON_HEADERS, "content-length": "999999999"}, content=b"{}")
    assert response.status_code == 413


async def test_streamed_body_over_limit_is_413(client: httpx2.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    response = await client.post("/mcp", headers=JSON_HEADERS, content=chunks())
    assert response.status_code == 413


async def test_bad_content_length_is_400(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers={**JSON_HEADERS, "content-length": "-5"}, content=b"")
    assert response.status_code == 400


# -- auth --------------------------------------------------------------------------------------------------------


async def test_missing_token_is_401_with_bare_challenge(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers={**JSON_HEADERS, "authorization": ""},
                                 json=modern_request("tools/list"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("value", ["Bearer wrong", "Basic dXNlcjpwYXNz", "Bearer", f"Token {TOKEN}",
                                   "Bearer " + "x" * 5000, f"Bearer {TOKEN}x"])
async def test_wrong_token_is_401_invalid_token(client: httpx2.AsyncClient, value: str) -> None:
    response = await client.post("/mcp", headers={**modern_headers("tools/list"), "authorization": value},
                                 json=modern_request("tools/list"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert TOKEN not in response.text


async def test_oauth_discovery_paths_are_404(client: httpx2.AsyncClient) -> None:
    for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
                 "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]:
        assert (await client.get(path)).status_code == 404


# -- JSON and JSON-RPC framing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b'{"jsonrpc": "2.0", "id": 1, "method": "tools/li', b"not json", b"\xff\xfe{}",
                                  b"[" * 2000 + b"]" * 2000, b"[" * 3000, b"", b"   ", b'{"a": NaN}',
                                  b"{'single': 'quotes'}"])
async def test_malformed_json_is_400_parse_error(client: httpx2.AsyncClient, body: bytes) -> None:
    response = await client.post("/mcp", headers=modern_headers("tools/list"), content=body)
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == -32700
    assert response.json()["id"] is None


@pytest.mark.parametrize("message", [
    {"jsonrpc": "1.0", "id": 1, "method": "tools/list"},
    {"id": 1, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": None, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": True, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": {"x": 1}, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": 1, "method": 42},
    {"jsonrpc": "2.0", "id": 1, "method": ""},
    {"jsonrpc": "2.0", "id": 1},
    "a string",
    42,
])
async def test_invalid_jsonrpc_is_400_invalid_request(client: httpx2.AsyncClient, message: Any) -> None:
    response = await client.post("/mcp", headers=modern_headers("tools/list"), json=message)
    assert response.status_code == 400
    assert _error(response)["code"] == -32600


async def test_params_must_be_an_object(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers=modern_headers("tools/list"),
                                 json={"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": [1, 2]})
    assert response.status_code == 400
    assert _error(response)["code"] == -32602
    assert response.json()["id"] == 7


@pytest.mark.parametrize("headers", [{"mcp-protocol-version": MODERN}, {}])
async def test_batches_are_refused_outside_2025_03_26(client: httpx2.AsyncClient, headers: dict[str, str]) -> None:
    batch = [modern_request("tools/list", msg_id=1), modern_request("tools/list", msg_id=2)]
    response = await client.post("/mcp", headers={**JSON_HEADERS, **headers}, json=batch)
    assert response.status_code == 400
    assert _error(response)["code"] == -32600


async def test_batch_in_2025_11_25_session_is_refused(client: httpx2.AsyncClient) -> None:
    session = await open_session(client, "2025-11-25")
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "ping"}]
    response = await client.post("/mcp", headers={**JSON_HEADERS, "mcp-session-id": session}, json=batch)
    assert response.status_code == 400


async def test_batch_in_2025_03_26_session_answers_each_request(client: httpx2.AsyncClient) -> None:
    session = await open_session(client, "2025-03-26")
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "ping"},
             {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}},
             {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "add",
                                                                             "arguments": {"a": 1, "b": 2}}},
             {"jsonrpc": "2.0", "id": 3, "method": "no/such"},
             {"jsonrpc": "1.0", "id": 4}]
    response = await client.post("/mcp", headers={**JSON_HEADERS, "mcp-session-id": session}, json=batch)
    assert response.status_code == 200
    replies = response.json()
    assert [r.get("id") for r in replies] == [1, 2, 3, None]
    assert replies[1]["result"]["structuredContent"] == {"total": 3}
    assert replies[2]["error"]["code"] == -32601
    assert replies[3]["error"]["code"] == -32600
