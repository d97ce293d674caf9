"""The `oauth` verifier: this server as an OAuth 2.1 resource server, checking JWT access tokens with PyJWT.

A credential that is not JWT-shaped (three base64url segments, the first a JSON object) is not ours: the next
verifier of `auth.mode` may know it. A JWT is always ours: any failed check is a 401 `invalid_token` saying
which, so a JWT never reaches a forward-auth service. Checked, in order: size, `alg` against the allow-list
(never `none`, never HMAC with a public key), the key (`kid`), the signature, `iss`, `aud` (this server's
resource, RFC 8707), `exp` and `nbf` with a leeway. The principal is `principal_claim`; the scopes come from
`scope` or `scp`, mapped through `scopes`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from mcp_platform.auth.chain import Presented, TokenVerifier
from mcp_platform.auth.jwks import MIN_RSA_BITS, JwksKeys, KeySource, StaticKey, VerificationKey, algorithms_for
from mcp_platform.auth_types import Challenge, Principal, expand_scopes
from mcp_platform.core import Core
from mcp_platform.errors import ConfigError, Unauthorized
from mcp_platform.protected_resource import ProtectedResource, resolve
from mcp_platform.settings import ASYMMETRIC_ALGORITHMS, OAuthSettings, Settings

logger = logging.getLogger(__name__)

__all__ = ["OAuthVerifier", "challenge", "start"]

_SEGMENTS = re.compile(r"([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
"""Header, payload, and a signature that may be empty (as `alg: none` leaves it: still ours, to refuse)."""
_MAX_HEADER = 4096
_MAX_NAME = 256
_REMEMBERED = 4096
"""Verified tokens kept: a client sends the same access token with every request until it expires, and checking a
signature costs a few hundred microseconds (PyJWT's segment checks and the signature), looking one up about one."""
_REMEMBER_SECONDS = 60.0
"""At most this long (and never past `exp`): a token is checked in full again at least once a minute."""


def _header(token: str) -> dict[str, Any] | None:
    """The JOSE header of a JWT-shaped token, or None when the token is not a JWT."""
    shaped = _SEGMENTS.fullmatch(token)
    if shaped is None or len(shaped.group(1)) > _MAX_HEADER:
        return None
    segment = shaped.group(1)
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return None
    return header if isinstance(header, dict) else None


def _refused(description: str) -> Unauthorized:
    return Unauthorized(credentials_sent=True, description=description)


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _refused(f"the token's {name} claim is not a number")
    return float(value)


def _names(claims: dict[str, Any], claim: str) -> list[str]:
    value = claims.get(claim)
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise _refused(f"the token's {claim} claim is neither a string nor a list of strings")


class OAuthVerifier:
    """JWT access tokens of one issuer. `clock` is wall-clock time (`exp`, `nbf`); tests pass their own."""

    name = "oauth"

    def __init__(self, resource: ProtectedResource, settings: OAuthSettings, keys: KeySource,
                 algorithms: tuple[str, ...], *, clock: Callable[[], float] = time.time) -> None:
        self._resource = resource
        self._keys = keys
        self._algorithms = algorithms
        self._audience = list(resource.audience)
        self._claim = settings.principal_claim
        self._leeway = settings.leeway_seconds
        self._max_bytes = settings.max_token_bytes
        self._clock = clock
        self._options: Any = {"require": ["exp", "iss", "aud"], "verify_exp": False, "verify_nbf": False,
                              "verify_iat": False, "enforce_minimum_key_length": True}
        self._verified: dict[bytes, tuple[Principal, float, int]] = {}
        """SHA-256 of a token -> its principal, the wall-clock time it may be used until, and the key set it was
        checked with."""

    async def verify(self, token: str, request: Presented | None = None) -> Principal | None:
        digest = hashlib.sha256(token.encode()).digest()  # a token is not kept, even in memory
        remembered = self._verified.get(digest)
        if remembered is not None:
            if self._clock() < remembered[1] and remembered[2] == self._keys.current():
                return remembered[0]
            del self._verified[digest]
        checked = await self._check(token)
        if checked is None:
            return None
        principal, until = checked
        if (keys := self._keys.current()) is not None:
            if len(self._verified) >= _REMEMBERED:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[digest] = principal, until, keys
        return principal

    async def _check(self, token: str) -> tuple[Principal, float] | None:
        """The token's principal and until when it may be remembered; None when the token is no JWT."""
        header = _header(token)
        if header is None:
            return None  # not a JWT: another verifier's, or nobody's
        if len(token) > self._max_bytes:
            raise _refused(f"the token is longer than {self._max_bytes} bytes")
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms:
            shown = alg[:20] if isinstance(alg, str) else alg if alg is None else type(alg).__name__
            raise _refused(f"alg {shown!r} is not accepted; accepted: {', '.join(self._algorithms)}")
        if kid is not None and not isinstance(kid, str):
            raise _refused("the token's kid is not a string")
        key = await self._keys.key(kid, alg)
        claims = self._decode(token, key, alg)
        until = self._check_times(claims)
        return Principal(self._principal(claims), self._scopes(claims)), until

    def _decode(self, token: str, key: VerificationKey, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=[alg], audience=self._audience,
                                                issuer=self._resource.issuer, options=self._options)
        except jwt.InvalidSignatureError:
            raise _refused("the signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _refused(f"the token has no {exc.claim} claim") from None
        except jwt.InvalidAudienceError:
            raise _refused(f"the token is not for this server: aud must include {self._audience[0]}") from None
        except jwt.InvalidIssuerError:
            raise _refused(f"the token was not issued by {self._resource.issuer}") from None
        except jwt.InvalidKeyError:
            raise _refused("the signing key is not acceptable (too short?)") from None
        except jwt.DecodeError:
            raise _refused("the token is malformed") from None
        except jwt.InvalidTokenError as exc:
            raise _refused(f"the token is invalid ({type(exc).__name__})") from None
        return claims

    def _check_times(self, claims: dict[str, Any]) -> float:
        """Refuses an expired or not yet valid token; returns until when it may be remembered."""
        now = self._clock()
        expires = _number(claims, "exp")
        if expires is not None and now - self._leeway >= expires:
            raise _refused(f"the token expired {now - expires:.0f} s ago")

        not_before = _number(claims, "nbf")
        if not_before is not None and now + self._leeway < not_before:
            raise _refused(f"the token is not valid for another {not_before - now:.0f} s")
        return min(now + _REMEMBER_SECONDS, math.inf if expires is None else expires + self._leeway)

    def _principal(self, claims: dict[str, Any]) -> str:
        name = claims.get(self._claim)
        if name is None:
            raise _refused(f"the token has no {self._claim} claim")
        if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME or not name.isprintable():
            raise _refused(f"the token's {self._claim} claim is not a name of 1-{_MAX_NAME} printable characters")
        return name

    def _scopes(self, claims: dict[str, Any]) -> frozenset[str]:
        table = self._resource.scopes
        granted = {table[name] for claim in ("scope", "scp") for name in _names(claims, claim) if name in table}
        return expand_scopes(granted)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.name, "issuer": self._resource.issuer, **self._keys.describe(),
                "algorithms": list(self._algorithms), "audience": self._audience,
                "resource": self._resource.resource, "principal_claim": self._claim,
                "scopes": dict(self._resource.scopes)}


def _static_key(oauth: OAuthSettings) -> tuple[StaticKey, tuple[str, ...]]:
    if oauth.hs256_secret is not None:
        algorithms = tuple(oauth.algorithms) or ("HS256",)
        secret = VerificationKey(oauth.hs256_secret.get_secret_value().encode(), algorithms)
        return StaticKey(secret, "hs256_secret"), algorithms
    assert oauth.public_key is not None
    try:
        public = load_pem_public_key(oauth.public_key.encode())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"auth.oauth.public_key is not a PEM public key: {exc}") from None
    if isinstance(public, RSAPublicKey) and public.key_size < MIN_RSA_BITS:
        raise ConfigError(f"auth.oauth.public_key is an RSA key of {public.key_size} bits: use {MIN_RSA_BITS} or more")
    algorithms = algorithms_for(public, oauth.algorithms or ASYMMETRIC_ALGORITHMS)
    if not algorithms:
        raise ConfigError(f"auth.oauth.public_key ({type(public).__name__}) fits none of auth.oauth.algorithms "
                          f"{oauth.algorithms}: RSA keys take RS*/PS*, EC keys ES256/384/512 by curve, Ed25519 EdDSA")
    return StaticKey(VerificationKey(public, algorithms), "public_key"), algorithms


async def start(settings: Settings, core: Core, stack: AsyncExitStack) -> TokenVerifier:
    resource = resolve(settings)
    oauth = settings.auth.oauth
    logger.info("oauth: access tokens of %s for %s (%s); clients find how to sign in at %s", resource.issuer,
                resource.resource, oauth.key_source, resource.metadata_url)
    if oauth.jwks_url is None:
        keys, algorithms = _static_key(oauth)
        return OAuthVerifier(resource, oauth, keys, algorithms)
    algorithms = tuple(oauth.algorithms) or ASYMMETRIC_ALGORITHMS
    client = httpx2.AsyncClient(timeout=oauth.jwks_timeout_seconds, follow_redirects=False,
                                limits=httpx2.Limits(max_connections=4, max_keepalive_connections=2),
                                headers={"user-agent": "mcp-platform"})
    jwks = JwksKeys(oauth.jwks_url, client, algorithms, cache_seconds=oauth.jwks_cache_seconds,
                    min_refresh=oauth.jwks_min_refresh_seconds, timeout=oauth.jwks_timeout_seconds,
                    clock=core.clock.now)
    stack.push_async_callback(jwks.aclose)
    return OAuthVerifier(resource, oauth, jwks, algorithms)


def challenge(settings: Settings) -> Challenge:
    return resolve(settings).challenge()
