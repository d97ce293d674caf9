"""The test authorization server itself, driven by hand (registration, PKCE, consent, token, refresh): what the
end-to-end tests rely on it to do, checked without our server in the way."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest

from tests.auth.authorization_server import (
    ACCOUNT,
    REDIRECT_URI,
    SCRIPT,
    AuthorizationDenied,
    AuthorizationServer,
    ConsentDriver,
    authorization_server,
    authorization_url,
    exchange_code,
    issue_token,
    register_client,
)
from tests.onboarding.npm_clients import node, require_library
from tests.support import free_port

pytestmark = pytest.mark.anyio

RESOURCE = "http://127.0.0.1:9/mcp"  # nothing listens there: the authorization server never calls a resource


def _authorization_url(idp: AuthorizationServer, client_id: str, scope: str, verifier: str | None,
                       state: str) -> str:
    return authorization_url(idp, client_id, scope=scope, resource=RESOURCE, verifier=verifier, state=state)


async def _claims(http: httpx2.AsyncClient, idp: AuthorizationServer, token: str) -> dict[str, Any]:
    keys = jwt.PyJWKSet.from_dict((await http.get(idp.jwks_url)).json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    claims: dict[str, Any] = jwt.decode(token, key=key, algorithms=["RS256"], audience=RESOURCE, issuer=idp.issuer)
    return claims


async def test_discovery_names_the_issuer_exactly_and_what_an_mcp_client_needs(idp: AuthorizationServer) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        metadata = (await http.get(idp.metadata_url)).json()
    assert metadata["issuer"] == idp.issuer and not idp.issuer.endswith("/")
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["registration_endpoint"] == f"{idp.issuer}/reg"
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert {"mcp:read", "mcp:write", "mcp:admin", "offline_access"} <= set(metadata["scopes_supported"])


async def test_the_access_token_is_a_jwt_for_the_resource_with_only_the_granted_scopes(
        idp: AuthorizationServer) -> None:
    async with httpx2.AsyncClient(timeout=10) as http, ConsentDriver(idp, grant=["mcp:read"]) as driver:
        client_id = await register_client(http, idp)
        verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        url = _authorization_url(idp, client_id, "mcp:read mcp:write offline_access", verifier, state)
        result = await driver.authorize(url)
        assert result.state == state and result.iss == idp.issuer
        assert driver.logins == 1
        assert driver.screens[0].requested == ("mcp:read", "mcp:write", "offline_access")
        assert driver.screens[0].resource == RESOURCE

        token = await exchange_code(http, idp, client_id, result.code, verifier, RESOURCE)
        assert token.status_code == 200, token.text
        body = token.json()
        assert body["token_type"] == "Bearer" and body["scope"] == "mcp:read" and body["refresh_token"]
        assert jwt.get_unverified_header(body["access_token"])["alg"] == "RS256"
        claims = await _claims(http, idp, body["access_token"])
        assert claims["aud"] == RESOURCE and claims["scope"] == "mcp:read" and claims["sub"] == ACCOUNT
        assert claims["client_id"] == client_id and claims["exp"] > claims["iat"]

        refreshed = await http.post(f"{idp.issuer}/token", data={
            "grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": client_id,
            "resource": RESOURCE})
        assert refreshed.status_code == 200, refreshed.text
        again = await _claims(http, idp, refreshed.json()["access_token"])
        assert again["aud"] == RESOURCE and again["scope"] == "mcp:read" and again["jti"] != claims["jti"]


async def test_the_code_is_bound_to_the_pkce_verifier(idp: AuthorizationServer) -> None:
    async with httpx2.AsyncClient(timeout=10) as http, ConsentDriver(idp) as driver:
        client_id = await register_client(http, idp)
        verifier = secrets.token_urlsafe(48)
        result = await driver.authorize(_authorization_url(idp, client_id, "mcp:read", verifier, "s"))
        token = await exchange_code(http, idp, client_id, result.code, secrets.token_urlsafe(48), RESOURCE)
        assert token.status_code == 400 and token.json()["error"] == "invalid_grant"


async def test_an_authorization_without_pkce_is_refused(idp: AuthorizationServer) -> None:
    async with httpx2.AsyncClient(timeout=10) as http, ConsentDriver(idp) as driver:
        client_id = await register_client(http, idp)
        with pytest.raises(AuthorizationDenied) as refused:
            await driver.authorize(_authorization_url(idp, client_id, "mcp:read", None, "s"))
        assert refused.value.error == "invalid_request"
        assert driver.screens == []


async def test_a_declined_consent_reaches_the_client_as_access_denied(idp: AuthorizationServer) -> None:
    async with httpx2.AsyncClient(timeout=10) as http, ConsentDriver(idp, grant=None) as driver:
        client_id = await register_client(http, idp)
        await driver.redirect_handler(_authorization_url(idp, client_id, "mcp:read", secrets.token_urlsafe(48), "s"))
        with pytest.raises(AuthorizationDenied) as denied:
            await driver.callback_handler()
        assert denied.value.error == "access_denied"
        assert driver.screens[0].granted is None


async def test_a_wrong_password_is_refused_and_interactions_need_their_cookie(idp: AuthorizationServer) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        client_id = await register_client(http, idp)
        url = _authorization_url(idp, client_id, "mcp:read", secrets.token_urlsafe(48), "s")
        screen = await http.get(idp.issuer + (await http.get(url)).headers["location"])
        assert screen.json()["prompt"] == "login"
        base = f"{idp.issuer}/interaction/{screen.json()['uid']}"
        wrong = await http.post(f"{base}/login", data={"login": ACCOUNT, "password": "not-it"})
        assert wrong.status_code == 401
        assert (await http.post(f"{base}/consent", data={"scope": "mcp:read"})).status_code == 400
        async with httpx2.AsyncClient(timeout=10) as stranger:  # no interaction cookie
            assert (await stranger.get(base)).status_code == 400
        oversized = await http.post(f"{base}/login", content=b"login=" + b"x" * 100_000,
                                    headers={"content-type": "application/x-www-form-urlencoded"})
        assert oversized.status_code == 400


async def test_registration_refuses_a_scope_the_server_does_not_know(idp: AuthorizationServer) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(f"{idp.issuer}/reg", json={"redirect_uris": [REDIRECT_URI],
                                                              "token_endpoint_auth_method": "none",
                                                              "scope": "mcp:read mcp:root"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_client_metadata"


async def test_a_scope_refused_once_can_be_granted_on_a_later_screen(idp: AuthorizationServer) -> None:
    async with httpx2.AsyncClient(timeout=10) as http, ConsentDriver(idp, grant=["mcp:read"]) as driver:
        client_id = await register_client(http, idp)
        scopes = []
        for grant in (["mcp:read"], ["mcp:read", "mcp:write"]):  # a step-up: the same user, the same session
            driver.grant = frozenset(grant)
            verifier = secrets.token_urlsafe(48)
            result = await driver.authorize(_authorization_url(idp, client_id, "mcp:read mcp:write", verifier, "s"))
            token = await exchange_code(http, idp, client_id, result.code, verifier, RESOURCE)
            scopes.append((await _claims(http, idp, token.json()["access_token"]))["scope"])
    assert scopes == ["mcp:read", "mcp:read mcp:write"]
    assert driver.logins == 1


async def test_issue_token_gives_a_token_for_the_named_resource(idp: AuthorizationServer) -> None:
    token = await issue_token(idp, resource=RESOURCE, grant=["mcp:read", "mcp:admin"])
    async with httpx2.AsyncClient(timeout=10) as http:
        claims = await _claims(http, idp, token)
    assert claims["aud"] == RESOURCE and claims["scope"] == "mcp:read mcp:admin"


@pytest.mark.parametrize(("args", "env", "says"), [
    ([], {"OIDC_TEST_PASSWORD": "pw"}, "usage"),
    (["MODULES"], {}, "OIDC_TEST_PASSWORD must be set"),
    (["MODULES", "not-a-port"], {"OIDC_TEST_PASSWORD": "pw"}, "PORT must be a number"),
    (["MODULES", "70000"], {"OIDC_TEST_PASSWORD": "pw"}, "PORT must be a number"),
])
def test_the_script_refuses_bad_arguments(args: list[str], env: dict[str, str], says: str) -> None:
    modules = require_library("oidc-provider")
    argv = [str(modules) if arg == "MODULES" else arg for arg in args]
    done = subprocess.run([str(node()), str(SCRIPT), *argv], env={"PATH": "/usr/bin:/bin", **env},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert says in done.stderr


def test_the_script_listens_on_a_port_it_is_given(tmp_path: Path) -> None:
    port = free_port()
    with authorization_server(tmp_path, port=port) as server:
        assert server.issuer == f"http://127.0.0.1:{port}"
        assert httpx2.get(server.metadata_url, timeout=10).json()["issuer"] == server.issuer
