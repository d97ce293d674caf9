"""The MCP authorization flow end to end, as a user of an OAuth-capable client lives it: the official `mcp` client's
`OAuthClientProvider` against a real uvicorn of our server in mode ["bearer", "oauth"] and a real authorization
server (oidc-provider), with the login and consent screens answered by `ConsentDriver`.

Discovery (401 -> RFC 9728 metadata -> the issuer's metadata) -> dynamic registration -> authorization code with
PKCE and a resource indicator -> JWT access token -> tools/list and tools/call, in both protocol eras; a named
bearer token works beside it; a read-only grant sees fewer tools and steps up on a write tool; a declined consent
is an error for the client, never a hang.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from mcp_platform.app import create_app
from tests.auth.authorization_server import (
    MCP_SCOPES,
    REDIRECT_URI,
    SCOPE_MAP,
    AuthorizationDenied,
    AuthorizationServer,
    ConsentDriver,
    issue_token,
)
from tests.support import JSON_HEADERS, free_port, make_settings, mcp_client, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.wire]

ERAS = ["legacy", "2026-07-28"]
READ_TOOLS = {"add", "echo"}
WRITE_TOOL, ADMIN_TOOL = "write_thing", "admin_thing"
FLOW_TIMEOUT = 60  # one whole sign-in: a dozen loopback requests and one RSA signature on each side


class MemoryTokenStorage:
    """The SDK's `TokenStorage`, in memory: what a client keeps between runs (tokens, its registration)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@pytest.fixture(scope="module")
def url(idp: AuthorizationServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Our server, protected by the identity provider and still taking the named bearer token `TOKEN`."""
    folder: Path = tmp_path_factory.mktemp("server")
    port = free_port()  # the resource URL is in the settings, so the port is chosen first
    resource = f"http://127.0.0.1:{port}/mcp"
    settings = make_settings(folder, auth={"mode": ["bearer", "oauth"], "oauth": {
        "issuer": idp.issuer, "jwks_url": idp.jwks_url, "resource": resource, "scopes": SCOPE_MAP}})
    with running_server(create_app(settings, capabilities=[]), port=port) as base:
        yield base + "/mcp"


def sdk_auth(url: str, driver: ConsentDriver, storage: MemoryTokenStorage | None = None) -> OAuthClientProvider:
    """The SDK's OAuth provider for a public client (no secret) that registers itself, as Claude's connectors and
    other OAuth-capable MCP clients do; `driver` is the user at the browser."""
    metadata = OAuthClientMetadata(client_name="mcp-platform tests", redirect_uris=[AnyUrl(REDIRECT_URI)],
                                   token_endpoint_auth_method="none",
                                   grant_types=["authorization_code", "refresh_token"], response_types=["code"])
    return OAuthClientProvider(url, metadata, storage or MemoryTokenStorage(), redirect_handler=driver.redirect_handler,
                               callback_handler=driver.callback_handler)


@asynccontextmanager
async def oauth_client(url: str, mode: str, driver: ConsentDriver, storage: MemoryTokenStorage | None = None,
                       seen: list[tuple[int, str]] | None = None,
                       auth: OAuthClientProvider | None = None) -> AsyncIterator[Client]:
    """The official client with the SDK's OAuth provider (`auth`, or a new `sdk_auth`) as its httpx2 auth. `seen`
    collects the status and WWW-Authenticate of every answer from our server, the auth flow's included."""
    async def note(response: httpx2.Response) -> None:
        if seen is not None and str(response.url) == url:
            seen.append((response.status_code, response.headers.get("www-authenticate", "")))

    async with (httpx2.AsyncClient(auth=auth or sdk_auth(url, driver, storage), timeout=httpx2.Timeout(30, read=60),
                                   event_hooks={"response": [note]}) as http,
                Client(streamable_http_client(url, http_client=http), mode=mode) as client):
        yield client


def _text(result: object) -> str:
    return result.content[0].text  # type: ignore[attr-defined, no-any-return]


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, the errors it groups, and their causes: where a failure inside the transport ends up."""
    yield error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _causes(inner)
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            yield from _causes(linked)


@pytest.mark.parametrize("mode", ERAS)
async def test_the_sdk_client_signs_in_through_the_identity_provider_and_calls_tools(
        idp: AuthorizationServer, url: str, mode: str) -> None:
    storage = MemoryTokenStorage()
    seen: list[tuple[int, str]] = []
    async with ConsentDriver(idp) as driver:
        with anyio.fail_after(FLOW_TIMEOUT):
            async with oauth_client(url, mode, driver, storage, seen) as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
                added = await client.call_tool("add", {"a": 2, "b": 3})
                wrote = await client.call_tool(WRITE_TOOL, {"value": "signed in"})
        # The first answer was the 401 that starts discovery; one sign-in then asked for every scope the 401
        # named (and offline_access, for a refresh token).
        assert seen[0][0] == 401 and "resource_metadata=" in seen[0][1]
        assert all(status in (200, 202) for status, _ in seen[1:]), seen  # 202: notifications/initialized
        assert driver.logins == 1 and len(driver.screens) == 1
        assert set(driver.screens[0].requested) == {*MCP_SCOPES, "offline_access"}
        assert driver.screens[0].resource == url
        assert {*READ_TOOLS, WRITE_TOOL, ADMIN_TOOL} <= names
        assert added.structured_content == {"total": 5}
        assert not wrote.is_error and _text(wrote) == "wrote signed in"

        # The token the client holds is the identity provider's JWT for this resource (RFC 8707).
        assert storage.tokens is not None and storage.tokens.refresh_token and storage.client_info is not None
        claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
        assert claims["iss"] == idp.issuer and claims["aud"] == url
        assert set(claims["scope"].split()) == set(MCP_SCOPES)

        # A client that kept its tokens and registration comes back without a new sign-in.
        with anyio.fail_after(FLOW_TIMEOUT):
            async with oauth_client(url, mode, driver, storage) as again:
                assert _text(await again.call_tool("echo", {"text": "back"})) == "back"
        assert driver.logins == 1 and len(driver.screens) == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_an_expired_access_token_is_refreshed_without_asking_the_user(
        idp: AuthorizationServer, url: str, mode: str) -> None:
    storage = MemoryTokenStorage()
    seen: list[tuple[int, str]] = []
    async with ConsentDriver(idp) as driver:
        auth = sdk_auth(url, driver, storage)
        with anyio.fail_after(FLOW_TIMEOUT):
            async with oauth_client(url, mode, driver, seen=seen, auth=auth) as client:
                assert _text(await client.call_tool("echo", {"text": "before"})) == "before"
                assert storage.tokens is not None
                first = storage.tokens.access_token
                auth.context.token_expiry_time = time.time() - 1  # the clock of the client's token, run out
                assert _text(await client.call_tool("echo", {"text": "after"})) == "after"
    assert storage.tokens.access_token != first
    assert len(driver.screens) == 1  # the refresh token did it: no second consent
    assert [status for status, _ in seen].count(401) == 1  # the first request's, which started the sign-in
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["aud"] == url and set(claims["scope"].split()) == set(MCP_SCOPES)


@pytest.mark.parametrize("mode", ERAS)
async def test_a_named_bearer_token_still_works_beside_oauth(url: str, mode: str) -> None:
    with anyio.fail_after(FLOW_TIMEOUT):
        async with mcp_client(url, mode) as client:  # CI's named token, no identity provider involved
            names = {tool.name for tool in (await client.list_tools()).tools}
            admin = await client.call_tool(ADMIN_TOOL, {})
    assert {*READ_TOOLS, WRITE_TOOL, ADMIN_TOOL} <= names
    assert _text(admin) == "admin ok"


async def test_an_unauthenticated_request_learns_where_to_sign_in(idp: AuthorizationServer, url: str) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        refused = await http.post(url, headers=JSON_HEADERS, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        metadata_url = url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
        metadata = (await http.get(metadata_url)).json()
        forged = jwt.encode({"iss": idp.issuer, "aud": url, "sub": "mallory", "scope": " ".join(MCP_SCOPES)},
                            "not-the-identity-providers-key-0123456789", algorithm="HS256")
        forged_refused = await http.post(url, headers={**JSON_HEADERS, "authorization": f"Bearer {forged}"},
                                         json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert refused.status_code == 401
    assert f'resource_metadata="{metadata_url}"' in refused.headers["www-authenticate"]
    assert metadata["resource"] == url and metadata["authorization_servers"] == [idp.issuer]
    assert set(metadata["scopes_supported"]) == set(MCP_SCOPES)
    assert forged_refused.status_code == 401
    assert 'error="invalid_token"' in forged_refused.headers["www-authenticate"]


async def test_a_token_the_identity_provider_issued_for_another_resource_is_refused(
        idp: AuthorizationServer, url: str) -> None:
    """RFC 8707: a genuine token, signed by the configured issuer, but minted for another MCP server."""
    elsewhere = await issue_token(idp, resource="http://127.0.0.1:9/mcp")
    here = await issue_token(idp, resource=url, grant=["mcp:read"])
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx2.AsyncClient(timeout=10) as http:
        refused = await http.post(url, headers={**JSON_HEADERS, "authorization": f"Bearer {elsewhere}"}, json=ping)
        admitted = await http.post(url, headers={**JSON_HEADERS, "authorization": f"Bearer {here}"}, json=ping)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert "aud" in refused.headers["www-authenticate"].partition("error_description=")[2]  # says why
    assert elsewhere not in refused.text and elsewhere not in refused.headers["www-authenticate"]
    assert admitted.status_code != 401, admitted.text  # the same issuer's token for this resource gets past auth


@pytest.mark.parametrize("mode", ERAS)
async def test_a_read_only_grant_filters_tools_and_steps_up_for_a_write(
        idp: AuthorizationServer, url: str, mode: str) -> None:
    seen: list[tuple[int, str]] = []
    async with ConsentDriver(idp, grant=["mcp:read"]) as driver:
        with anyio.fail_after(FLOW_TIMEOUT):
            async with oauth_client(url, mode, driver, seen=seen) as client:
                before = {tool.name for tool in (await client.list_tools()).tools}
                # The user now agrees to writing: the 403 insufficient_scope makes the SDK ask again, for more.
                driver.grant = frozenset({"mcp:read", "mcp:write"})
                wrote = await client.call_tool(WRITE_TOOL, {"value": "stepped up"})
                after = {tool.name for tool in (await client.list_tools()).tools}
    assert before >= READ_TOOLS and WRITE_TOOL not in before and ADMIN_TOOL not in before
    # The write was refused with the identity provider's name for the missing scope, then retried and served.
    refusals = [challenge for status, challenge in seen if status == 403]
    assert len(refusals) == 1
    assert 'error="insufficient_scope"' in refusals[0] and 'scope="mcp:write"' in refusals[0]
    assert seen[-1][0] == 200
    first, step_up = driver.screens
    assert first.granted == ("mcp:read",)
    # The step-up asks for the challenged scope by the identity provider's name, keeping what was granted.
    assert {"mcp:read", "mcp:write"} <= set(step_up.requested) and step_up.granted is not None
    assert set(step_up.granted) == {"mcp:read", "mcp:write"}
    assert driver.logins == 1  # the identity provider's session: the step-up is a consent, not a new login
    assert not wrote.is_error and _text(wrote) == "wrote stepped up"
    assert WRITE_TOOL in after and ADMIN_TOOL not in after


@pytest.mark.parametrize("mode", ERAS)
async def test_a_declined_consent_is_an_error_for_the_client(idp: AuthorizationServer, url: str, mode: str) -> None:
    async with ConsentDriver(idp, grant=None) as driver:
        with anyio.fail_after(FLOW_TIMEOUT), pytest.raises(Exception) as failed:
            async with oauth_client(url, mode, driver) as client:
                await client.list_tools()
    denied = [error for error in _causes(failed.value) if isinstance(error, AuthorizationDenied)]
    assert denied and denied[0].error == "access_denied", repr(failed.value)
    assert len(driver.screens) == 1 and driver.screens[0].granted is None
