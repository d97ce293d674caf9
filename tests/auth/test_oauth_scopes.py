"""Scopes from the identity provider: mapped through `scopes`, filtering tools/list, and 401/403 answers that tell a
client what to request, alike in both eras; a named bearer token and a JWT side by side; a real uvicorn with the
official client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mcp_platform.app import create_app
from tests.auth.idp import Jwks, SigningKey, jwks_server, make_keys, oauth_settings
from tests.support import (
    JSON_HEADERS,
    asgi_client,
    create_token,
    mcp_client,
    modern_headers,
    modern_request,
    open_session,
    running_server,
)

pytestmark = pytest.mark.anyio

METADATA = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"
IDP_SCOPES = {"mcp:read": "read", "mcp:write": "write", "mcp:admin": "admin"}


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return make_keys()


@pytest.fixture
def jwks(keys: dict[str, SigningKey]) -> Iterator[Jwks]:
    with jwks_server(list(keys.values())) as server:
        yield server


async def _modern(client: httpx2.AsyncClient, token: str | None, method: str,
                  params: dict[str, Any] | None = None) -> httpx2.Response:
    headers = modern_headers(method, name=(params or {}).get("name"), token=token)
    if token is None:
        headers.pop("authorization", None)
    return await client.post("/mcp", headers=headers, json=modern_request(method, params))


async def _handshake(client: httpx2.AsyncClient, session: str, method: str,
                     params: dict[str, Any] | None = None) -> httpx2.Response:
    return await client.post("/mcp", headers={**JSON_HEADERS, "mcp-session-id": session},
                             json={"jsonrpc": "2.0", "id": 2, "method": method, "params": params or {}})


def _names(response: httpx2.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {tool["name"] for tool in response.json()["result"]["tools"]}


@pytest.mark.parametrize("era", ["2026-07-28", "handshake"])
async def test_a_read_only_jwt_sees_read_tools_and_is_told_to_step_up_with_the_provider_write_scope(
        tmp_path: Path, keys: dict[str, SigningKey], jwks: Jwks, era: str) -> None:
    settings = oauth_settings(tmp_path, jwks_url=jwks.url, scopes=IDP_SCOPES)
    token = keys["RS256"].mint(scope="openid profile mcp:read")  # the provider's other scopes mean nothing here
    call = {"name": "write_thing", "arguments": {"value": "x"}}
    async with asgi_client(create_app(settings, capabilities=[]), token=token) as client:
        if era == "handshake":
            session = await open_session(client)
            listed = await _handshake(client, session, "tools/list")
            refused = await _handshake(client, session, "tools/call", call)
        else:
            listed = await _modern(client, token, "tools/list")
            refused = await _modern(client, token, "tools/call", call)
    assert "add" in _names(listed) and not {"write_thing", "admin_thing"} & _names(listed)
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"] == (
        f'Bearer error="insufficient_scope", scope="mcp:write", resource_metadata="{METADATA}", '
        'error_description="tool write_thing needs the \'write\' scope"')
    assert refused.json()["error"]["data"] == {"requiredScope": "write"}


@pytest.mark.parametrize("claims", [{"scope": None, "scp": ["mcp:write", "offline_access"]},
                                    {"scope": None, "scp": "mcp:write other"},
                                    {"scope": "mcp:read", "scp": ["mcp:write"]}])
async def test_scp_as_a_list_or_a_string_grants_the_mapped_scopes(tmp_path: Path, keys: dict[str, SigningKey],
                                                                  jwks: Jwks, claims: dict[str, Any]) -> None:
    settings = oauth_settings(tmp_path, jwks_url=jwks.url, scopes=IDP_SCOPES)
    token = keys["ES256"].mint(**claims)
    async with asgi_client(create_app(settings, capabilities=[]), token=token) as client:
        listed = await _modern(client, token, "tools/list")
        wrote = await _modern(client, token, "tools/call", {"name": "write_thing", "arguments": {"value": "x"}})
    assert {"add", "write_thing"} <= _names(listed) and "admin_thing" not in _names(listed)
    assert wrote.status_code == 200 and wrote.json()["result"].get("isError") is not True


async def test_a_jwt_with_no_mapped_scope_lists_nothing_it_cannot_call(tmp_path: Path, keys: dict[str, SigningKey],
                                                                       jwks: Jwks) -> None:
    settings = oauth_settings(tmp_path, jwks_url=jwks.url, scopes=IDP_SCOPES)
    token = keys["EdDSA"].mint(scope="read write admin")  # our names, not the provider's: they grant nothing
    async with asgi_client(create_app(settings, capabilities=[]), token=token) as client:
        listed = await _modern(client, token, "tools/list")
        refused = await _modern(client, token, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
    assert not {"add", "write_thing", "admin_thing"} & _names(listed)
    assert refused.status_code == 403 and 'scope="mcp:read"' in refused.headers["www-authenticate"]


async def test_a_401_names_the_metadata_and_the_provider_scopes_alike_in_both_eras(tmp_path: Path, jwks: Jwks) -> None:
    settings = oauth_settings(tmp_path, jwks_url=jwks.url, scopes=IDP_SCOPES)
    async with asgi_client(create_app(settings, capabilities=[]), token=None) as client:
        modern = await _modern(client, None, "tools/list")
        handshake = await client.post("/mcp", headers=JSON_HEADERS, json={
            "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    expected = f'Bearer realm="mcp-platform", resource_metadata="{METADATA}", scope="mcp:read mcp:write mcp:admin"'
    assert modern.status_code == handshake.status_code == 401
    assert modern.headers["www-authenticate"] == handshake.headers["www-authenticate"] == expected
    assert jwks.requests == 0  # no credential, no question to the identity provider


async def test_a_named_bearer_token_and_a_jwt_work_side_by_side(tmp_path: Path, keys: dict[str, SigningKey],
                                                                jwks: Jwks) -> None:
    settings = oauth_settings(tmp_path, jwks_url=jwks.url, scopes=IDP_SCOPES)
    ci = await create_token(settings, "ci", ["read"])
    person = keys["RS256"].mint(sub="ada@example.com", scope="mcp:admin")
    async with asgi_client(create_app(settings, capabilities=[]), token=None) as client:
        ci_list = await _modern(client, ci, "tools/list")
        person_list = await _modern(client, person, "tools/list")
        ci_write = await _modern(client, ci, "tools/call", {"name": "write_thing", "arguments": {"value": "x"}})
    assert "admin_thing" not in _names(ci_list) and "admin_thing" in _names(person_list)
    # A bearer token's step-up is asked for in the provider's terms too: this server has one scope vocabulary.
    assert ci_write.status_code == 403 and 'scope="mcp:write"' in ci_write.headers["www-authenticate"]


async def test_metrics_take_a_jwt_and_answer_503_when_the_keys_cannot_be_had(tmp_path: Path,
                                                                            keys: dict[str, SigningKey]) -> None:
    from mcp_platform.capabilities import metrics

    with jwks_server([keys["RS256"]]) as jwks:
        url = jwks.url
        settings = oauth_settings(tmp_path, jwks_url=url)
        async with asgi_client(create_app(settings, capabilities=[metrics.CAPABILITY]), token=None) as client:
            admitted = await client.get("/metrics", headers={"authorization": f"Bearer {keys['RS256'].mint()}"})
            refused = await client.get("/metrics", headers={"authorization": "Bearer a.b.c"})
    assert admitted.status_code == 200 and refused.status_code == 401
    async with asgi_client(create_app(settings, capabilities=[metrics.CAPABILITY]), token=None) as client:
        down = await client.get("/metrics", headers={"authorization": f"Bearer {keys['RS256'].mint()}"})
    assert down.status_code == 503 and "JWKS (127.0.0.1)" in down.text and "retry-after" in down.headers


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_official_client_calls_tools_with_a_jwt_over_a_real_socket(
        tmp_path: Path, keys: dict[str, SigningKey], jwks: Jwks, mode: str) -> None:
    settings = oauth_settings(tmp_path, jwks_url=jwks.url, scopes=IDP_SCOPES, audience=["urn:mcp:test"])
    reader = keys["ES256"].mint(aud=["urn:mcp:test", "https://other.example/"], scope="mcp:read")
    with running_server(create_app(settings, capabilities=[])) as base:
        async with mcp_client(f"{base}/mcp", mode, token=reader) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            result = await client.call_tool("add", {"a": 2, "b": 3})
        async with httpx2.AsyncClient() as http:
            wrong = await http.post(f"{base}/mcp", headers={**JSON_HEADERS, "authorization": "Bearer x.y.z"}, json={})
            metadata = await http.get(f"{base}/.well-known/oauth-protected-resource/mcp")
    assert "add" in names and "write_thing" not in names
    assert result.is_error is False
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert metadata.json()["scopes_supported"] == list(IDP_SCOPES)
