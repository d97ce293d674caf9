"""`[auth.oauth]`: hostile values refused naming the field, start-up refusing an incomplete configuration with what
to set, and the RFC 9728 documents (served only in oauth mode)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mcp_platform.app import create_app
from mcp_platform.auth.oauth import OAuthVerifier
from mcp_platform.errors import ConfigError, Unauthorized
from mcp_platform.protected_resource import resolve
from mcp_platform.settings import load_settings
from tests.auth.idp import HS_SECRET, ISSUER, SigningKey, make_keys, oauth_settings
from tests.support import asgi_client, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return make_keys()


@pytest.mark.parametrize(("oauth", "problem"), [
    ({"issuer": "not a url"}, "issuer"),
    ({"issuer": "ftp://idp.example/"}, "http:// or https://"),
    ({"issuer": "https://"}, "issuer"),
    ({"issuer": "https://idp.example/#frag"}, "fragment"),
    ({"issuer": "https://idp.example/" + "a" * 3000}, "2048"),
    ({"jwks_url": "http://idp.example/keys"}, "https"),
    ({"jwks_url": "http://user@idp.example/keys"}, "https"),
    ({"jwks_url": "https://idp.example/keys", "hs256_secret": HS_SECRET}, "only one key source"),
    ({"hs256_secret": "short"}, "32 bytes"),
    ({"public_key": "-----BEGIN PRIVATE KEY-----\nMII...\n-----END PRIVATE KEY-----"}, "private key"),
    ({"public_key": "ssh-rsa AAAA"}, "PEM"),
    ({"algorithms": ["none"]}, "never accepted"),
    ({"algorithms": ["NONE"]}, "never accepted"),
    ({"algorithms": ["RS1"]}, "unknown algorithm"),
    ({"jwks_url": "https://idp.example/keys", "algorithms": ["RS256", "HS256"]}, "HMAC"),
    ({"public_key": "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----", "algorithms": ["HS256"]}, "HMAC"),
    ({"hs256_secret": HS_SECRET, "algorithms": ["RS256"]}, "only list HS"),
    ({"hs256_secret": HS_SECRET, "algorithms": ["HS256", "HS512"]}, "HS512 needs an hs256_secret of 64 bytes"),
    ({"scopes": {}}, "at least one"),
    ({"scopes": {"mcp read": "read"}}, "scope name"),
    ({"scopes": {'mcp"x': "read"}}, "scope name"),
    ({"scopes": {"mcp:read": "root"}}, "auth.oauth.scopes"),
    ({"principal_claim": ""}, "principal_claim"),
    ({"principal_claim": "a b"}, "principal_claim"),
    ({"leeway_seconds": -1}, "leeway_seconds"),
    ({"leeway_seconds": 86400}, "leeway_seconds"),
    ({"jwks_cache_seconds": 0}, "jwks_cache_seconds"),
    ({"jwks_min_refresh_seconds": 0}, "jwks_min_refresh_seconds"),
    ({"jwks_timeout_seconds": 0}, "jwks_timeout_seconds"),
    ({"jwks_timeout_seconds": 3600}, "jwks_timeout_seconds"),
    ({"max_token_bytes": 100}, "max_token_bytes"),
    ({"max_token_bytes": 10**9}, "max_token_bytes"),
    ({"audience": [""]}, "audience"),
    ({"authorization_servers": ["idp.example"]}, "authorization_servers"),
    ({"resource": "mcp.example.com/mcp"}, "resource"),
    ({"resource": "https://mcp.example.com:port/mcp"}, "resource"),
    ({"unknown": 1}, "unknown"),
])
def test_hostile_oauth_settings_are_refused_naming_the_field(tmp_path: Path, oauth: dict[str, Any],
                                                             problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as refused:
        make_settings(tmp_path, auth={"mode": ["oauth"], "oauth": oauth})
    assert HS_SECRET not in str(refused.value)


@pytest.mark.parametrize(("auth", "http", "to_set"), [
    ({"oauth": {"jwks_url": "https://idp.example/keys"}}, {}, "auth.oauth.issuer"),
    ({"oauth": {"issuer": ISSUER}}, {}, "auth.oauth.jwks_url"),
    ({"oauth": {"issuer": ISSUER, "hs256_secret": HS_SECRET}}, {"host": "0.0.0.0"}, "auth.oauth.resource"),
    ({"oauth": {"issuer": ISSUER, "hs256_secret": HS_SECRET}}, {"host": "::"}, "auth.oauth.resource"),
    ({"oauth": {"issuer": ISSUER, "hs256_secret": HS_SECRET}}, {"port": 0}, "auth.oauth.resource"),
])
def test_an_incomplete_oauth_configuration_is_refused_at_start_saying_what_to_set(
        tmp_path: Path, auth: dict[str, Any], http: dict[str, Any], to_set: str) -> None:
    settings = make_settings(tmp_path, auth={"mode": ["bearer", "oauth"], **auth}, http=http)
    with pytest.raises(ConfigError, match=to_set):
        create_app(settings)


@pytest.mark.parametrize("url", ["http://localhost/jwks", "http://127.0.0.1:8080/jwks", "http://[::1]:1/jwks",
                                 "https://idp.example/jwks"])
def test_jwks_url_may_be_plain_http_only_to_loopback(tmp_path: Path, url: str) -> None:
    assert make_settings(tmp_path, auth={"oauth": {"jwks_url": url}}).auth.oauth.jwks_url == url


def test_bearer_only_needs_no_oauth_settings(tmp_path: Path) -> None:
    create_app(make_settings(tmp_path, auth={"mode": ["bearer"], "oauth": {"jwks_url": "https://idp.example/k"}}))


async def test_a_public_key_that_fits_no_allowed_algorithm_is_refused_at_start(
        tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    settings = oauth_settings(tmp_path, public_key=keys["EdDSA"].public_pem(), algorithms=["RS256"])
    with pytest.raises(ConfigError, match="fits none of auth.oauth.algorithms"):
        async with asgi_client(create_app(settings, capabilities=[])):
            pass
    weak = SigningKey("weak", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(ConfigError, match="1024 bits"):
        async with asgi_client(create_app(oauth_settings(tmp_path, public_key=weak.public_pem()), capabilities=[])):
            pass
    broken = oauth_settings(tmp_path, public_key="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        async with asgi_client(create_app(broken, capabilities=[])):
            pass


def test_resource_defaults_to_the_bound_address_and_audience_to_the_resource(tmp_path: Path) -> None:
    resolved = resolve(make_settings(tmp_path, http={"host": "::1", "port": 9000, "path": "/tools/mcp"},
                                     auth={"mode": ["oauth"], "oauth": {"issuer": ISSUER, "hs256_secret": HS_SECRET}}))
    assert resolved.resource == "http://[::1]:9000/tools/mcp"
    assert resolved.audience == (resolved.resource,) and resolved.authorization_servers == (ISSUER,)
    assert resolved.metadata_url == "http://[::1]:9000/.well-known/oauth-protected-resource/tools/mcp"


def test_the_oauth_settings_come_from_the_file_and_the_environment(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mcp-platform.toml"
    config.write_text('[auth]\nmode = ["bearer", "oauth"]\n[auth.oauth]\nissuer = "https://idp.example/"\n'
                      'jwks_url = "https://idp.example/jwks"\nscopes = { "mcp:read" = "read", "mcp:all" = "admin" }\n')
    monkeypatch.setenv("MCP_PLATFORM_AUTH__OAUTH__AUDIENCE", '["api://mcp"]')
    oauth = load_settings(config).auth.oauth
    assert oauth.scopes == {"mcp:read": "read", "mcp:all": "admin"} and oauth.audience == ["api://mcp"]


def test_the_challenge_names_the_provider_scope_granting_least_beyond_ours(tmp_path: Path) -> None:
    settings = oauth_settings(tmp_path, hs256_secret=HS_SECRET, resource="https://mcp.example.com/mcp",
                              scopes={"mcp:read": "read", "mcp:admin": "admin", "everything": "admin"})
    challenge = resolve(settings).challenge()
    assert challenge.resource_metadata == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    assert dict(challenge.scope_names) == {"read": "mcp:read", "write": "mcp:admin", "admin": "mcp:admin"}
    assert challenge.login_scopes == ("mcp:read", "mcp:admin", "everything")


@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource",
                                  "/.well-known/oauth-protected-resource/mcp",
                                  "/.well-known/oauth-protected-resource/public/mcp"])
async def test_the_protected_resource_metadata_is_served_in_oauth_mode(tmp_path: Path, path: str) -> None:
    settings = oauth_settings(tmp_path, hs256_secret=HS_SECRET, resource="https://mcp.example.com/public/mcp",
                              scopes={"mcp:read": "read", "mcp:write": "write"},
                              authorization_servers=["https://login.example.com/"])
    async with asgi_client(create_app(settings, capabilities=[]), token=None) as client:
        response = await client.get(path, headers={"origin": "https://claude.ai"})
        preflight = await client.options(path, headers={"origin": "https://claude.ai",
                                                        "access-control-request-method": "GET",
                                                        "access-control-request-headers": "mcp-protocol-version"})
        other = await client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {"resource": "https://mcp.example.com/public/mcp",
                               "authorization_servers": ["https://login.example.com/"],
                               "scopes_supported": ["mcp:read", "mcp:write"],
                               "bearer_methods_supported": ["header"], "resource_name": "mcp-platform"}
    assert response.headers["access-control-allow-origin"] == "*"
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert other.status_code == 404  # this server is no authorization server


async def test_the_metadata_stays_open_to_every_origin_when_cors_is_narrowed_for_mcp(tmp_path: Path) -> None:
    settings = oauth_settings(tmp_path, hs256_secret=HS_SECRET,
                              extra={"http": {"cors": {"allow_origins": ["https://app.example"]}}})
    preflight = {"origin": "https://claude.ai", "access-control-request-method": "GET",
                 "access-control-request-headers": "mcp-protocol-version"}
    async with asgi_client(create_app(settings, capabilities=[]), token=None) as client:
        metadata = await client.options("/.well-known/oauth-protected-resource/mcp", headers=preflight)
        mcp = await client.options("/mcp", headers=preflight)
        posted = await client.post("/.well-known/oauth-protected-resource", json={})
        head = await client.head("/.well-known/oauth-protected-resource")
    assert metadata.status_code == 204 and metadata.headers["access-control-allow-origin"] == "*"
    assert mcp.status_code == 400  # /mcp keeps its own allow-list
    assert posted.status_code == 405 and posted.headers["allow"] == "GET, HEAD, OPTIONS"
    assert head.status_code == 200


async def test_bearer_only_mode_answers_404_on_every_well_known_path(tmp_path: Path) -> None:
    async with asgi_client(create_app(make_settings(tmp_path), capabilities=[])) as client:
        for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
                     "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
            assert (await client.get(path)).status_code == 404
        unauthorized = await client.post("/mcp", headers={"authorization": "Bearer wrong"}, json={})
    assert unauthorized.headers["www-authenticate"].startswith('Bearer realm="mcp-platform", error="invalid_token"')
    assert "resource_metadata" not in unauthorized.headers["www-authenticate"]


async def test_describe_shows_the_setup_and_never_a_secret_or_key(tmp_path: Path,
                                                                  keys: dict[str, SigningKey]) -> None:
    sources: list[tuple[dict[str, Any], str]] = [
        ({"hs256_secret": HS_SECRET}, "hs256_secret"), ({"public_key": keys["RS256"].public_pem()}, "public_key"),
        ({"jwks_url": "https://user:pw@idp.example/keys?secret=s3"}, "jwks_url")]
    for oauth, source in sources:
        app = create_app(oauth_settings(tmp_path, audience=["api://mcp"], **oauth), capabilities=[])
        async with asgi_client(app):
            described = app.state.mcp.endpoint.verifier.describe()
        oauth_part = described["verifiers"][1]
        assert oauth_part["mode"] == "oauth" and oauth_part["issuer"] == ISSUER
        assert oauth_part["key_source"] == source and oauth_part["audience"] == ["api://mcp"]
        text = repr(described)
        for secret in (HS_SECRET, "BEGIN PUBLIC KEY", "pw", "s3", keys["RS256"].public_pem()[30:60]):
            assert secret not in text
        if source == "jwks_url":
            assert oauth_part["jwks_host"] == "idp.example"


@pytest.mark.parametrize(("leeway", "exp_offset", "nbf_offset", "admitted"), [
    (30, -29, None, True), (30, -31, None, False), (0, -1, None, False), (0, 1, None, True),
    (30, 300, 29, True), (30, 300, 31, False), (0, 300, 1, False)])
async def test_exp_and_nbf_honour_the_leeway_on_the_injected_clock(
        tmp_path: Path, leeway: float, exp_offset: int, nbf_offset: int | None, admitted: bool) -> None:
    import jwt

    from mcp_platform.auth.jwks import StaticKey, VerificationKey

    now = time.time() + 10_000  # the verifier's clock, not the machine's
    settings = oauth_settings(tmp_path, hs256_secret=HS_SECRET, leeway_seconds=leeway)
    key = StaticKey(VerificationKey(HS_SECRET.encode(), ("HS256",)), "hs256_secret")
    verifier = OAuthVerifier(resolve(settings), settings.auth.oauth, key, ("HS256",), clock=lambda: now)
    claims = {"iss": ISSUER, "aud": "http://127.0.0.1:8000/mcp", "sub": "alice", "exp": now + exp_offset}
    if nbf_offset is not None:
        claims["nbf"] = now + nbf_offset
    token = jwt.encode(claims, HS_SECRET, algorithm="HS256")
    if admitted:
        assert await verifier.verify(token) is not None
    else:
        with pytest.raises(Unauthorized):
            await verifier.verify(token)


async def test_a_reload_that_changes_oauth_settings_says_it_takes_a_restart_and_shows_no_secret(
        tmp_path: Path) -> None:
    from mcp_platform.config_reload import ConfigManager

    config = tmp_path / "mcp-platform.toml"
    section = '[auth]\nmode = ["oauth"]\n[auth.oauth]\nissuer = "{issuer}"\nhs256_secret = "{secret}"\n'
    config.write_text(section.format(issuer=ISSUER, secret=HS_SECRET))
    manager = ConfigManager(load_settings(config))
    config.write_text(section.format(issuer="https://other.example/", secret=HS_SECRET[::-1]))
    report = await manager.reload(dry_run=True)
    assert report.restart_required == ["auth.oauth.hs256_secret", "auth.oauth.issuer"]
    assert HS_SECRET not in report.model_dump_json() and HS_SECRET[::-1] not in report.model_dump_json()
