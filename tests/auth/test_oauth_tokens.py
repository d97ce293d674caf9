"""JWT access tokens on the wire: valid ones admitted with their principal and scopes, every hostile one a 401
`invalid_token` that says why, and a JWKS that rotates, floods or goes away."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest

from mcp_platform.app import create_app
from mcp_platform.context import Clock
from mcp_platform.errors import Unauthorized
from tests.auth.idp import HS_SECRET, Jwks, SigningKey, claims_with_defaults, jwks_server, make_keys, oauth_settings
from tests.support import TestClock, asgi_client, modern_headers, modern_request

pytestmark = pytest.mark.anyio

METADATA = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return make_keys()


@pytest.fixture
def jwks(keys: dict[str, SigningKey]) -> Iterator[Jwks]:
    with jwks_server(list(keys.values())) as server:
        yield server


def _b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _whoami_tools(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "tools"
    folder.mkdir(exist_ok=True)
    (folder / "whoami.py").write_text(
        "from mcp_platform import ToolContext, tool\n\n\n"
        "@tool(read_only=True, title='Who am I')\n"
        "async def whoami(ctx: ToolContext) -> str:\n"
        '    """The caller\'s principal name and scopes."""\n'
        "    return ctx.principal.name + ' ' + ','.join(sorted(ctx.principal.scopes))\n")
    return [folder]


async def _list(client: httpx2.AsyncClient, token: str) -> httpx2.Response:
    return await client.post("/mcp", headers=modern_headers("tools/list", token=token),
                             json=modern_request("tools/list"))


async def _whoami(client: httpx2.AsyncClient, token: str) -> str:
    response = await client.post("/mcp", headers=modern_headers("tools/call", name="whoami", token=token),
                                 json=modern_request("tools/call", {"name": "whoami", "arguments": {}}))
    assert response.status_code == 200, response.text
    text: str = response.json()["result"]["content"][0]["text"]
    return text


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_a_valid_jwt_of_each_asymmetric_algorithm_is_admitted_with_its_principal_and_scopes(
        tmp_path: Path, keys: dict[str, SigningKey], jwks: Jwks, alg: str) -> None:
    settings = oauth_settings(tmp_path, jwks_url=jwks.url, extra={"tools": {"dirs": _whoami_tools(tmp_path)}})
    async with asgi_client(create_app(settings, capabilities=[]), token=None) as client:
        assert await _whoami(client, keys[alg].mint(scope="write")) == "alice read,write"
        assert await _whoami(client, keys[alg].mint(sub="bob", scope="read")) == "bob read"
    assert jwks.requests == 1  # fetched once, then cached


async def test_hs256_and_a_static_public_key_need_no_jwks(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    hs_token = jwt.encode(claims_with_defaults(scope="admin"), HS_SECRET, algorithm="HS256")
    for oauth, token, expected in [({"hs256_secret": HS_SECRET}, hs_token, "alice admin,read,write"),
                                   ({"public_key": keys["ES256"].public_pem()}, keys["ES256"].mint(), "alice read")]:
        folder = tmp_path / hashlib.sha1(json.dumps(oauth).encode()).hexdigest()[:8]
        folder.mkdir()
        settings = oauth_settings(folder, mode=["oauth"], extra={"tools": {"dirs": _whoami_tools(folder)}}, **oauth)
        async with asgi_client(create_app(settings, capabilities=[]), token=None) as client:
            assert await _whoami(client, token) == expected


def _alg_none(keys: dict[str, SigningKey]) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims_with_defaults(scope='admin'))}."


def _hs256_with_the_public_key(keys: dict[str, SigningKey]) -> str:
    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'rsa-1'})}.{_b64(claims_with_defaults(scope='admin'))}"
    secret = keys["RS256"].public_pem().encode()
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _tampered(keys: dict[str, SigningKey]) -> str:
    header, _, signature = keys["RS256"].mint().split(".")
    return f"{header}.{_b64(claims_with_defaults(scope='admin'))}.{signature}"


def _wrong_key_same_kid(keys: dict[str, SigningKey]) -> str:
    other = SigningKey("rsa-1", "RS256", make_keys()["RS256"].private)
    return other.mint()


HOSTILE: dict[str, tuple[Callable[[dict[str, SigningKey]], str], str]] = {
    "expired": (lambda k: k["RS256"].mint(exp=int(time.time()) - 3600), "expired"),
    "not yet valid": (lambda k: k["RS256"].mint(nbf=int(time.time()) + 3600), "not valid for another"),
    "wrong iss": (lambda k: k["RS256"].mint(iss="https://evil.example/"), "not issued by"),
    "wrong aud": (lambda k: k["ES256"].mint(aud="http://other.example/mcp"), "not for this server"),
    "no aud": (lambda k: k["ES256"].mint(aud=None), "no aud claim"),
    "no exp": (lambda k: k["EdDSA"].mint(exp=None), "no exp claim"),
    "exp not a number": (lambda k: k["EdDSA"].mint(exp="tomorrow"), "exp claim is not a number"),
    "no sub": (lambda k: k["RS256"].mint(sub=None), "no sub claim"),
    "sub not a string": (lambda k: k["RS256"].mint(sub=["alice"]), ""),
    "scope not a string": (lambda k: k["RS256"].mint(scope=7), "scope claim"),
    "alg none": (_alg_none, "alg 'none' is not accepted"),
    "HS256 with the RSA public key as secret": (_hs256_with_the_public_key, "alg 'HS256' is not accepted"),
    "tampered payload": (_tampered, "signature does not verify"),
    "another key under a known kid": (_wrong_key_same_kid, "signature does not verify"),
    "alg of another key family": (lambda k: k["ES256"].mint(headers={"kid": "rsa-1"}), "no ES256 key with kid"),
    "unknown kid": (lambda k: SigningKey("rotated-9", "RS256", k["RS256"].private).mint(), "kid 'rotated-9'"),
    "oversized": (lambda k: k["RS256"].mint(padding="x" * 9000), "longer than 8192 bytes"),
    "JWT-shaped garbage": (lambda k: f"{_b64({'alg': 'RS256', 'kid': 'rsa-1'})}.bm90IGpzb24.c2ln",
                           "signature does not verify"),
    "kid not a string": (lambda k: f"{_b64({'alg': 'RS256', 'kid': 5})}.{_b64(claims_with_defaults())}.c2ln",
                         "kid is not a string"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_every_hostile_jwt_is_a_401_invalid_token_saying_why(tmp_path: Path, keys: dict[str, SigningKey],
                                                                   jwks: Jwks, case: str) -> None:
    make, reason = HOSTILE[case]
    token = make(keys)
    settings = oauth_settings(tmp_path, jwks_url=jwks.url)
    async with asgi_client(create_app(settings, capabilities=[]), token=None) as client:
        response = await _list(client, token)
        handshake = await client.post("/mcp", headers={"accept": "application/json, text/event-stream",
                                                       "content-type": "application/json",
                                                       "authorization": f"Bearer {token}"},
                                      json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                                          "protocolVersion": "2025-11-25", "capabilities": {},
                                          "clientInfo": {"name": "t", "version": "1"}}})
    for answer in (response, handshake):
        assert answer.status_code == 401, answer.text
        challenge = answer.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge and reason in challenge, challenge
        assert f'resource_metadata="{METADATA}"' in challenge
        assert token not in answer.text and token[-20:] not in challenge
    assert response.headers["www-authenticate"] == handshake.headers["www-authenticate"]


async def test_a_non_jwt_credential_is_left_to_the_other_verifiers(tmp_path: Path, keys: dict[str, SigningKey],
                                                                   jwks: Jwks) -> None:
    settings = oauth_settings(tmp_path, jwks_url=jwks.url)
    async with asgi_client(create_app(settings, capabilities=[]), token=None) as client:
        unknown = await _list(client, "mcpp_not-a-jwt-and-not-a-known-token")
        named = await _list(client, "test-token-with-all-scopes")  # make_settings' env token, a bearer one
        jwt_token = await _list(client, keys["RS256"].mint())
    assert unknown.status_code == 401
    assert "error_description" in unknown.headers["www-authenticate"]
    assert "alg" not in unknown.headers["www-authenticate"]  # oauth never looked at it
    assert named.status_code == 200 and jwt_token.status_code == 200
    assert jwks.requests == 1  # the bearer tokens cost the identity provider nothing


async def test_an_unknown_kid_costs_one_refetch_then_401_and_refetches_are_rate_bounded(
        tmp_path: Path, keys: dict[str, SigningKey], jwks: Jwks) -> None:
    clock = TestClock()
    settings = oauth_settings(tmp_path, jwks_url=jwks.url, jwks_min_refresh_seconds=30)
    rotated = SigningKey("rotated-2", "RS256", make_keys()["RS256"].private)
    async with asgi_client(create_app(settings, capabilities=[], clock=Clock(now=clock.now)), token=None) as client:
        assert (await _list(client, keys["RS256"].mint())).status_code == 200
        assert jwks.requests == 1
        clock.advance(31)
        assert (await _list(client, rotated.mint())).status_code == 401
        assert jwks.requests == 2  # exactly one refetch for the unknown kid
        for _ in range(5):  # a flood of made-up kids within the window: no more fetches
            assert (await _list(client, rotated.mint())).status_code == 401
        assert jwks.requests == 2
        jwks.keys.append(rotated.jwk())  # the provider rotates its keys
        assert (await _list(client, rotated.mint())).status_code == 401  # still within the window
        clock.advance(31)
        assert (await _list(client, rotated.mint())).status_code == 200
        assert jwks.requests == 3
        assert (await _list(client, keys["RS256"].mint())).status_code == 200


async def test_jwks_down_is_503_naming_it_while_cached_keys_work_until_they_age_out(
        tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    clock = TestClock()
    with jwks_server(list(keys.values())) as jwks:
        settings = oauth_settings(tmp_path, jwks_url=jwks.url, jwks_cache_seconds=600)
        app = create_app(settings, capabilities=[], clock=Clock(now=clock.now))
        async with asgi_client(app, token=None) as client:
            assert (await _list(client, keys["RS256"].mint())).status_code == 200
            jwks.status = 500
            clock.advance(60)
            assert (await _list(client, keys["ES256"].mint())).status_code == 200  # cached
            unknown = await _list(client, SigningKey("new", "RS256", keys["RS256"].private).mint())
            assert unknown.status_code == 503 and "JWKS (127.0.0.1)" in unknown.text and "HTTP 500" in unknown.text
            clock.advance(600)
            aged = await _list(client, keys["RS256"].mint())
            assert aged.status_code == 503 and "Retry-After" in aged.headers or "retry-after" in aged.headers
            assert "the identity provider's JWKS (127.0.0.1) is unavailable" in aged.text
            jwks.status = 200
            clock.advance(31)
            assert (await _list(client, keys["RS256"].mint())).status_code == 200  # back, nothing restarted
        app = create_app(settings, capabilities=[], clock=Clock(now=clock.now))
    async with asgi_client(app, token=None) as client:  # the endpoint is gone: connection refused
        gone = await _list(client, keys["RS256"].mint())
        bearer = await _list(client, "test-token-with-all-scopes")
    assert gone.status_code == 503 and "JWKS (127.0.0.1) is unavailable: ConnectError" in gone.text
    assert bearer.status_code == 200  # a named token does not depend on the identity provider


async def test_a_hanging_jwks_is_cut_off_at_its_timeout_and_waiters_share_one_fetch(
        tmp_path: Path, keys: dict[str, SigningKey], jwks: Jwks) -> None:
    import threading

    jwks.hold = threading.Event()
    settings = oauth_settings(tmp_path, jwks_url=jwks.url, jwks_timeout_seconds=0.5)
    statuses: list[int] = []
    async with asgi_client(create_app(settings, capabilities=[]), token=None) as client:
        async def one() -> None:
            statuses.append((await _list(client, keys["RS256"].mint())).status_code)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                for _ in range(8):
                    group.start_soon(one)
        jwks.hold.set()
    assert statuses == [503] * 8
    assert jwks.requests == 1


@pytest.mark.parametrize(("body", "problem"), [(b"not json", "not JSON"), (b'{"keys": 1}', "not a JWKS"),
                                               (b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "no signing key"),
                                               (b"[" * 100_000, "not JSON")])
def test_a_broken_jwks_document_is_refused_naming_the_problem(body: bytes, problem: str) -> None:
    from mcp_platform.auth.jwks import parse_jwks

    with pytest.raises(ValueError, match=problem):
        parse_jwks(body, ["RS256"])


async def test_a_remembered_token_still_expires_and_is_checked_again_after_a_minute(tmp_path: Path) -> None:
    from mcp_platform.auth.jwks import StaticKey, VerificationKey
    from mcp_platform.auth.oauth import OAuthVerifier
    from mcp_platform.protected_resource import resolve

    now = [time.time()]
    settings = oauth_settings(tmp_path, hs256_secret=HS_SECRET, leeway_seconds=0)
    key = StaticKey(VerificationKey(HS_SECRET.encode(), ("HS256",)), "hs256_secret")
    verifier = OAuthVerifier(resolve(settings), settings.auth.oauth, key, ("HS256",), clock=lambda: now[0])
    short = jwt.encode(claims_with_defaults(now[0], exp=int(now[0]) + 30), HS_SECRET, algorithm="HS256")
    assert await verifier.verify(short) is not None
    now[0] += 31
    with pytest.raises(Unauthorized) as expired:
        await verifier.verify(short)
    assert "expired" in expired.value.description


async def test_a_key_the_provider_withdrew_stops_admitting_tokens_it_signed(
        tmp_path: Path, keys: dict[str, SigningKey], jwks: Jwks) -> None:
    clock = TestClock()
    settings = oauth_settings(tmp_path, jwks_url=jwks.url)
    token = keys["RS256"].mint()
    replacement = SigningKey("rsa-2", "RS256", make_keys()["RS256"].private)
    async with asgi_client(create_app(settings, capabilities=[], clock=Clock(now=clock.now)), token=None) as client:
        assert (await _list(client, token)).status_code == 200
        assert (await _list(client, token)).status_code == 200  # remembered: no second signature check
        jwks.keys = [replacement.jwk()]  # rsa-1 withdrawn (compromised, say)
        clock.advance(31)
        assert (await _list(client, replacement.mint())).status_code == 200  # its unknown kid fetched the new set
        withdrawn = await _list(client, token)
    assert withdrawn.status_code == 401 and "kid 'rsa-1'" in withdrawn.headers["www-authenticate"]


def test_a_jwks_keeps_only_usable_signing_keys(keys: dict[str, SigningKey]) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    from mcp_platform.auth.jwks import parse_jwks

    weak = SigningKey("weak", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    private_parts: dict[str, Any] = {**json.loads(RSAAlgorithm.to_jwk(keys["RS256"].private)), "kid": "leaky"}
    document = {"keys": [weak.jwk(), {**keys["ES256"].jwk(), "use": "enc", "kid": "enc"}, private_parts,
                         {**keys["EdDSA"].jwk(), "alg": "RS256", "kid": "mislabelled"}, {"kty": "RSA", "kid": "junk"},
                         "not a key", {**keys["ES256"].jwk(), "kid": 7}, keys["ES256"].jwk()]}
    parsed = parse_jwks(json.dumps(document).encode(), ["RS256", "ES256", "EdDSA"])
    assert sorted(kid for kid in parsed if kid is not None) == ["ec-1", "leaky"]
    assert parsed["ec-1"][0].algorithms == ("ES256",)
    assert not hasattr(parsed["leaky"][0].key, "private_numbers")  # only the public half is kept
