"""`mcp-platform doctor` against a server in OAuth mode and a real authorization server (oidc-provider): it follows
the chain a signing-in client follows (401 -> RFC 9728 metadata -> the issuer's metadata) and names what breaks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_platform.app import create_app
from mcp_platform.onboarding.doctor import Finding, diagnose
from mcp_platform.onboarding.doctor_oauth import challenge_params
from tests.auth.authorization_server import SCOPE_MAP, AuthorizationServer
from tests.support import free_port, make_settings, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.wire]


def _serve(folder: Path, idp: AuthorizationServer, *, resource: str | None = None,
           issuer: str | None = None) -> Iterator[str]:
    port = free_port()
    settings = make_settings(folder, auth={"mode": ["oauth"], "oauth": {
        "issuer": issuer or idp.issuer, "jwks_url": idp.jwks_url,
        "resource": resource or f"http://127.0.0.1:{port}/mcp", "scopes": SCOPE_MAP}})
    with running_server(create_app(settings, capabilities=[]), port=port) as base:
        yield base + "/mcp"


@pytest.fixture
def oauth_url(idp: AuthorizationServer, tmp_path: Path) -> Iterator[str]:
    yield from _serve(tmp_path, idp)


def _oauth(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.check == "oauth"]


async def test_doctor_follows_the_oauth_chain_of_a_correct_deployment(oauth_url: str) -> None:
    findings = await diagnose(oauth_url)
    oauth = _oauth(findings)
    assert [f.status for f in oauth] == ["PASS", "PASS", "PASS"], oauth
    assert "mcp:read" in oauth[0].message and "names this URL" in oauth[1].message and "PKCE" in oauth[2].message
    auth = next(f for f in findings if f.check == "auth")
    assert auth.status == "PASS"
    assert not any(f.status == "FAIL" for f in findings), findings


async def test_doctor_fails_a_metadata_resource_that_is_not_the_url_clients_use(idp: AuthorizationServer,
                                                                                tmp_path: Path) -> None:
    for url in _serve(tmp_path, idp, resource="https://mcp.example.com/mcp"):
        oauth = _oauth(await diagnose(url))
        wrong = next(f for f in oauth if f.status == "FAIL")
        assert "https://mcp.example.com/mcp" in wrong.message and "auth.oauth.resource" in wrong.fix


async def test_doctor_fails_an_issuer_that_serves_no_metadata(idp: AuthorizationServer, tmp_path: Path) -> None:
    for url in _serve(tmp_path, idp, issuer=idp.issuer + "/nowhere"):
        oauth = _oauth(await diagnose(url))
        assert any(f.status == "FAIL" and "no metadata" in f.message and "auth.oauth.issuer" in f.fix for f in oauth)


@pytest.mark.parametrize(("header", "expected"), [
    ('Bearer realm="x", resource_metadata="https://a/b", scope="mcp:read mcp:write"',
     {"realm": "x", "resource_metadata": "https://a/b", "scope": "mcp:read mcp:write"}),
    ("Bearer", {}), ('Bearer error="invalid_token' + "x" * 10_000, {}), ("\x00\r\n", {}),
])
def test_the_challenge_parser_takes_quoted_parameters_and_survives_junk(header: str,
                                                                        expected: dict[str, str]) -> None:
    assert challenge_params(header) == expected
