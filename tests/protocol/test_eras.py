"""Both protocol eras on one endpoint: sessions, version rules, the 2026-07-28 envelope ladder, result stamps.
How the replies are framed over HTTP (JSON or SSE, GET and DELETE) is `tests/transport/test_http.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mcp_platform.app import create_app
from mcp_platform.stores.base import SessionData
from mcp_platform.stores.memory import MemorySessionStore
from tests.support import (
    JSON_HEADERS,
    MODERN,
    TOKEN,
    TestClock,
    asgi_client,
    make_settings,
    modern_headers,
    modern_meta,
    modern_request,
    open_session,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
async def client(tmp_path: Path, clock: TestClock) -> AsyncIterator[httpx2.AsyncClient]:
    store = MemorySessionStore(ttl_seconds=60, max_sessions=3, clock=clock)
    app = create_app(make_settings(tmp_path, tools={"dirs": [Path(__file__).parents[1] / "fixtures" / "tools"],
                                                    "page_size": 4}), capabilities=[], sessions=store)
    async with asgi_client(app) as c:
        yield c


def _session_headers(session: str, version: str | None = "2025-11-25") -> dict[str, str]:
    headers = {**JSON_HEADERS, "mcp-session-id": session}
    if version:
        headers["mcp-protocol-version"] = version
    return headers


async def _rpc(client: httpx2.AsyncClient, headers: dict[str, str], method: str,
               params: dict[str, Any] | None = None) -> httpx2.Response:
    return await client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 9, "method": method,
                                                            "params": params or {}})


# -- handshake era -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
async def test_initialize_echoes_supported_versions(client: httpx2.AsyncClient, version: str) -> None:
    response = await client.post("/mcp", headers=JSON_HEADERS, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    result = response.json()["result"]
    assert result["protocolVersion"] == version
    assert result["serverInfo"]["name"] == "mcp-platform"
    assert "tools" in result["capabilities"]
    session_id = response.headers["mcp-session-id"]
    assert len(session_id) >= 32 and all(0x21 <= ord(c) <= 0x7E for c in session_id)


@pytest.mark.parametrize("requested", ["1999-01-01", "2026-07-28", None, 42, ""])
async def test_initialize_with_unknown_version_offers_latest_handshake(client: httpx2.AsyncClient,
                                                                        requested: Any) -> None:
    response = await client.post("/mcp", headers=JSON_HEADERS, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": requested}})
    assert response.json()["result"]["protocolVersion"] == "2025-11-25"


async def test_session_ids_are_unique(client: httpx2.AsyncClient) -> None:
    assert len({await open_session(client) for _ in range(3)}) == 3


async def test_request_without_session_id_is_400(client: httpx2.AsyncClient) -> None:
    response = await _rpc(client, {**JSON_HEADERS, "mcp-protocol-version": "2025-11-25"}, "tools/list")
    assert response.status_code == 400


@pytest.mark.parametrize("session", ["made-up", "x" * 300, "' OR 1=1 --"])
async def test_unknown_session_is_404(client: httpx2.AsyncClient, session: str) -> None:
    assert (await _rpc(client, _session_headers(session), "tools/list")).status_code == 404


async def test_deleted_session_is_404_afterwards(client: httpx2.AsyncClient) -> None:
    session = await open_session(client)
    assert (await _rpc(client, _session_headers(session), "ping")).json()["result"] == {}
    assert (await client.delete("/mcp", headers=_session_headers(session))).status_code == 200
    assert (await _rpc(client, _session_headers(session), "ping")).status_code == 404
    assert (await client.delete("/mcp", headers=_session_headers(session))).status_code == 404


async def test_expired_session_is_404(client: httpx2.AsyncClient, clock: TestClock) -> None:
    session = await open_session(client)
    clock.advance(59)
    assert (await _rpc(client, _session_headers(session), "ping")).status_code == 200
    clock.advance(59)  # idle time counts from the last request
    assert (await _rpc(client, _session_headers(session), "ping")).status_code == 200
    clock.advance(61)
    assert (await _rpc(client, _session_headers(session), "ping")).status_code == 404


async def test_a_store_full_of_single_sessions_is_503(tmp_path: Path) -> None:
    """At the cap a token holding several sessions gives one up (tests/transport/test_session_quota.py); when
    every token holds one, there is nobody to evict and `initialize` gets 503."""
    store = MemorySessionStore(ttl_seconds=60, max_sessions=3)
    for name in ("ann", "bob", "cid"):
        await store.create(SessionData(protocol_version="2025-11-25", principal=name))
    async with asgi_client(create_app(make_settings(tmp_path), capabilities=[], sessions=store)) as client:
        response = await client.post("/mcp", headers=JSON_HEADERS, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}})
    assert response.status_code == 503


async def test_session_of_another_token_is_404(tmp_path: Path) -> None:
    store = MemorySessionStore(ttl_seconds=60, max_sessions=10)
    other = await store.create(SessionData(protocol_version="2025-11-25", principal="someone-else"))
    app = create_app(make_settings(tmp_path), capabilities=[], sessions=store)
    async with asgi_client(app) as client:
        assert (await _rpc(client, _session_headers(other), "ping")).status_code == 404


@pytest.mark.parametrize("version", ["2025-06-18", "1999-01-01", "garbage"])
async def test_protocol_version_header_must_match_the_session(client: httpx2.AsyncClient, version: str) -> None:
    session = await open_session(client, "2025-11-25")
    response = await _rpc(client, _session_headers(session, version), "tools/list")
    assert response.status_code == 400


async def test_missing_protocol_version_header_is_accepted(client: httpx2.AsyncClient) -> None:
    session = await open_session(client, "2025-03-26")
    assert (await _rpc(client, _session_headers(session, None), "ping")).status_code == 200


async def test_notifications_and_responses_get_202(client: httpx2.AsyncClient) -> None:
    session = await open_session(client)
    for message in [{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 77}},
                    {"jsonrpc": "2.0", "method": "notifications/whatever"},
                    {"jsonrpc": "2.0", "id": 5, "result": {}}]:
        response = await client.post("/mcp", headers=_session_headers(session), json=message)
        assert response.status_code == 202
        assert response.content == b""


async def test_handshake_errors_are_jsonrpc_errors(client: httpx2.AsyncClient) -> None:
    session = await open_session(client)
    unknown = await _rpc(client, _session_headers(session), "no/such/method")
    assert unknown.json()["error"]["code"] == -32601
    bad_level = await _rpc(client, _session_headers(session), "logging/setLevel", {"level": "loud"})
    assert bad_level.json()["error"]["code"] == -32602
    ok_level = await _rpc(client, _session_headers(session), "logging/setLevel", {"level": "error"})
    assert ok_level.json()["result"] == {}


# -- modern era --------------------------------------------------------------------------------------------------


async def test_discover_lists_versions_and_capabilities(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers=modern_headers("server/discover"),
                                 json=modern_request("server/discover"))
    result = response.json()["result"]
    assert MODERN in result["supportedVersions"]
    assert result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-platform"
    assert "tools" in result["capabilities"]
    assert "mcp-session-id" not in response.headers


async def test_modern_list_results_carry_cache_hints(client: httpx2.AsyncClient) -> None:
    result = (await client.post("/mcp", headers=modern_headers("tools/list"),
                                json=modern_request("tools/list"))).json()["result"]
    assert result["ttlMs"] == 0 and result["cacheScope"] == "private"
    assert result["resultType"] == "complete"


@pytest.mark.parametrize("method", ["ping", "logging/setLevel", "resources/subscribe", "no/such"])
async def test_removed_and_unknown_methods_are_404(client: httpx2.AsyncClient, method: str) -> None:
    response = await client.post("/mcp", headers=modern_headers(method), json=modern_request(method))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == -32601


@pytest.mark.parametrize("drop", ["io.modelcontextprotocol/protocolVersion",
                                  "io.modelcontextprotocol/clientCapabilities"])
async def test_missing_envelope_key_is_400_invalid_params(client: httpx2.AsyncClient, drop: str) -> None:
    message = modern_request("tools/list")
    del message["params"]["_meta"][drop]
    response = await client.post("/mcp", headers=modern_headers("tools/list"), json=message)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in (-32602, -32020)


async def test_no_meta_at_all_is_400_invalid_params(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers=modern_headers("tools/list"),
                                 json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32602


@pytest.mark.parametrize(("headers", "body_name"), [
    ({"mcp-method": "tools/list"}, "add"),
    ({"mcp-name": "echo"}, "add"),
    ({"mcp-name": None}, "add"),
    ({"mcp-method": None}, "add"),
    ({"mcp-protocol-version": None}, "add"),
])
async def test_routing_header_mismatch_is_400_header_mismatch(client: httpx2.AsyncClient,
                                                               headers: dict[str, str | None], body_name: str) -> None:
    sent = modern_headers("tools/call", name="add")
    for key, value in headers.items():
        if value is None:
            sent.pop(key, None)
        else:
            sent[key] = value
    message = modern_request("tools/call", {"name": body_name, "arguments": {"a": 1, "b": 2}})
    response = await client.post("/mcp", headers=sent, json=message)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020


async def test_base64_encoded_mcp_name_is_decoded(client: httpx2.AsyncClient) -> None:
    headers = modern_headers("tools/call", name="=?base64?YWRk?=")  # "add"
    response = await client.post("/mcp", headers=headers,
                                 json=modern_request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}}))
    assert response.status_code == 200
    assert response.json()["result"]["structuredContent"] == {"total": 2}


async def test_duplicated_routing_header_is_400(client: httpx2.AsyncClient) -> None:
    headers = [(k, v) for k, v in modern_headers("tools/list").items()] + [("mcp-method", "tools/list")]
    response = await client.post("/mcp", headers=headers, json=modern_request("tools/list"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020


async def test_unsupported_version_is_400_with_supported_list(client: httpx2.AsyncClient) -> None:
    message = modern_request("tools/list")
    message["params"]["_meta"] = modern_meta("2099-01-01")
    headers = {**modern_headers("tools/list"), "mcp-protocol-version": "2099-01-01"}
    response = await client.post("/mcp", headers=headers, json=message)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32022
    assert error["data"] == {"supported": [MODERN], "requested": "2099-01-01"}


async def test_modern_notification_is_202_and_unknown_version_400(client: httpx2.AsyncClient) -> None:
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    assert (await client.post("/mcp", headers=modern_headers("x"), json=note)).status_code == 202
    headers = {**modern_headers("x"), "mcp-protocol-version": "2099-01-01"}
    response = await client.post("/mcp", headers=headers, json=note)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32022


async def test_modern_posted_response_is_invalid_request(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers=modern_headers("x"), json={"jsonrpc": "2.0", "id": 3, "result": {}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600


async def test_modern_ignores_session_id_header(client: httpx2.AsyncClient) -> None:
    headers = {**modern_headers("tools/list"), "mcp-session-id": "whatever"}
    response = await client.post("/mcp", headers=headers, json=modern_request("tools/list"))
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers


# -- tools through both eras ---------------------------------------------------------------------------------------


async def _list_all(client: httpx2.AsyncClient, token: str = TOKEN) -> list[str]:
    names: list[str] = []
    cursor = None
    for _ in range(20):
        params: dict[str, Any] = {"cursor": cursor} if cursor else {}
        result = (await client.post("/mcp", headers=modern_headers("tools/list", token=token),
                                    json=modern_request("tools/list", params))).json()["result"]
        names += [t["name"] for t in result["tools"]]
        cursor = result.get("nextCursor")
        if cursor is None:
            return names
    raise AssertionError("tools/list never ended")


async def test_tools_list_pages_are_complete_sorted_and_stable(client: httpx2.AsyncClient) -> None:
    names = await _list_all(client)
    assert names == sorted(names) and len(names) == len(set(names)) > 4
    assert names == await _list_all(client)


@pytest.mark.parametrize("cursor", ["garbage", "", "e30", 5, "eyJrIjoicHJvbXB0cyJ9", "x" * 5000])
async def test_bad_cursor_is_invalid_params(client: httpx2.AsyncClient, cursor: Any) -> None:
    response = await client.post("/mcp", headers=modern_headers("tools/list"),
                                 json=modern_request("tools/list", {"cursor": cursor}))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32602


async def test_unknown_tool_is_invalid_params_in_both_eras(client: httpx2.AsyncClient) -> None:
    modern = await client.post("/mcp", headers=modern_headers("tools/call", name="nope"),
                               json=modern_request("tools/call", {"name": "nope", "arguments": {}}))
    assert modern.status_code == 400 and modern.json()["error"]["code"] == -32602
    session = await open_session(client)
    legacy = await _rpc(client, _session_headers(session), "tools/call", {"name": "nope", "arguments": {}})
    assert legacy.status_code == 200 and legacy.json()["error"]["code"] == -32602


@pytest.mark.parametrize("arguments", [{"a": "one", "b": 2}, {"a": 1}, {"a": 1, "b": 2, "c": 3},
                                       {"a": [1], "b": {"x": 1}}, {"a": 1.5, "b": 1},
                                       {"a": None, "b": True}])
async def test_invalid_arguments_are_tool_errors(client: httpx2.AsyncClient, arguments: dict[str, Any]) -> None:
    response = await client.post("/mcp", headers=modern_headers("tools/call", name="add"),
                                 json=modern_request("tools/call", {"name": "add", "arguments": arguments}))
    result = response.json()["result"]
    assert result["isError"] is True
    assert "Invalid arguments for tool add" in result["content"][0]["text"]


async def test_arguments_must_be_an_object(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers=modern_headers("tools/call", name="add"),
                                 json=modern_request("tools/call", {"name": "add", "arguments": [1, 2]}))
    assert response.json()["error"]["code"] == -32602


async def test_crash_hides_internals(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers=modern_headers("tools/call", name="crash"),
                                 json=modern_request("tools/call", {"name": "crash", "arguments": {}}))
    result = response.json()["result"]
    assert result["isError"] is True
    assert "secret" not in response.text and "Traceback" not in response.text


async def test_tool_timeout_is_a_tool_error_naming_the_limit(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers=modern_headers("tools/call", name="sleepy"),
                                 json=modern_request("tools/call", {"name": "sleepy", "arguments": {"seconds": 5}}))
    result = response.json()["result"]
    assert result["isError"] is True
    assert "0.3 s timeout" in result["content"][0]["text"]


async def test_oversized_result_becomes_a_tool_error(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers=modern_headers("tools/call", name="big"),
                                 json=modern_request("tools/call", {"name": "big", "arguments": {"size": 200_000}}))
    result = response.json()["result"]
    assert result["isError"] is True
    assert "result limit" in result["content"][0]["text"]
    assert len(response.content) < 10_000
