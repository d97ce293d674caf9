"""The keys JWTs are checked with: an identity provider's JWKS (fetched, cached, refetched on an unknown `kid` at a
bounded rate), or one static key. Imported only in `oauth` mode (it loads PyJWT and `cryptography`).

While the JWKS URL is down, the keys already fetched keep working until they are `cache_seconds` old; after that
(or with none fetched yet) a token gets 503 naming the JWKS, never "allow".
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx2
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK
from jwt.exceptions import PyJWKError, PyJWTError

from mcp_platform.errors import CredentialUnverifiable, Unauthorized

__all__ = ["JwksKeys", "KeySource", "StaticKey", "VerificationKey", "algorithms_for"]

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1024 * 1024
"""A provider's JWKS holds a handful of keys (a few kB); a bigger answer is not one."""

MIN_RSA_BITS = 2048
"""NIST SP 800-131A: shorter RSA keys are refused (PyJWT would refuse each token they signed)."""

_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_CURVES = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


@dataclass(frozen=True, slots=True)
class VerificationKey:
    key: Any
    """What PyJWT verifies with: a `cryptography` public key, or the HMAC secret's bytes."""
    algorithms: tuple[str, ...]
    """The `alg` values this key may verify (the key's family, within the configured allow-list)."""


class KeySource(Protocol):
    async def key(self, kid: str | None, alg: str) -> VerificationKey:
        """The key for a token's `kid` and `alg`; `Unauthorized` when there is none, `CredentialUnverifiable` (503)
        when the keys cannot be had."""
        ...

    def current(self) -> int | None:
        """Which key set is in use (it changes when the provider's keys change), or None while there is no fresh
        one: tokens verified under another set, or with none, are verified again."""
        ...

    def describe(self) -> dict[str, Any]: ...


def algorithms_for(key: Any, allowed: Iterable[str], declared: str | None = None) -> tuple[str, ...]:
    """The algorithms of `allowed` that `key` can verify: RS/PS for RSA, the curve's ES for EC, EdDSA for Ed25519
    and Ed448; only `declared` if the JWK names its `alg`."""
    family: tuple[str, ...] = ()
    if isinstance(key, RSAPublicKey):
        family = _RSA
    elif isinstance(key, EllipticCurvePublicKey) and key.curve.name in _EC_CURVES:
        family = (_EC_CURVES[key.curve.name],)
    elif isinstance(key, Ed25519PublicKey | Ed448PublicKey):
        family = ("EdDSA",)
    if declared is not None:
        family = tuple(alg for alg in family if alg == declared)
    allowed = set(allowed)
    return tuple(alg for alg in family if alg in allowed)


def _refused(description: str) -> Unauthorized:
    return Unauthorized(credentials_sent=True, description=description)


class StaticKey:
    """One configured key (`public_key` or `hs256_secret`); the token's `kid`, if any, is not consulted."""

    def __init__(self, key: VerificationKey, source: str) -> None:
        self._key = key
        self._source = source

    async def key(self, kid: str | None, alg: str) -> VerificationKey:
        if alg not in self._key.algorithms:
            raise _refused(f"alg {alg} does not fit the configured {self._source}")
        return self._key

    def current(self) -> int | None:
        return 0

    def describe(self) -> dict[str, Any]:
        return {"key_source": self._source}


def parse_jwks(body: bytes, allowed: Iterable[str]) -> dict[str | None, list[VerificationKey]]:
    """The signing keys of a JWKS document by `kid`; symmetric keys, encryption keys and keys of no allowed
    algorithm are left out. `ValueError` when nothing usable is left."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ValueError("the answer is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('the answer is not a JWKS (no "keys" list)')
    allowed = tuple(allowed)
    keys: dict[str | None, list[VerificationKey]] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
            continue
        kid, declared = entry.get("kid"), entry.get("alg")
        if (kid is not None and not isinstance(kid, str)) or (declared is not None and not isinstance(declared, str)):
            continue
        try:
            public = PyJWK(entry).key
        except (PyJWKError, PyJWTError, ValueError, TypeError):
            logger.debug("JWKS key %r skipped: not a usable public key", kid)
            continue
        if hasattr(public, "public_key"):  # a JWKS that (wrongly) carries private parts: use only the public one
            public = public.public_key()
        if isinstance(public, RSAPublicKey) and public.key_size < MIN_RSA_BITS:
            logger.warning("JWKS key %r skipped: RSA keys of %d bits are too weak", kid, public.key_size)
            continue
        algorithms = algorithms_for(public, allowed, declared)
        if algorithms:
            keys.setdefault(kid, []).append(VerificationKey(public, algorithms))
    if not keys:
        raise ValueError(f"the JWKS holds no signing key for {', '.join(allowed)}")
    return keys


RETRY_AFTER_FAILURE = 2.0
"""Seconds after a failed fetch before the next one (at most; `min_refresh` when that is shorter)."""


class JwksKeys:
    """The keys at a JWKS URL. Requests that need a fetch at the same time share one; a fetch is bounded by
    `timeout` in all (connect, headers and body together), and fetches are at least `min_refresh` apart, so
    tokens with made-up `kid`s cost the identity provider at most one request per `min_refresh` seconds."""

    def __init__(self, url: str, client: httpx2.AsyncClient, allowed: Iterable[str], *, cache_seconds: float,
                 min_refresh: float, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self._client = client
        self._allowed = tuple(allowed)
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh
        self._timeout = timeout
        self._clock = clock
        self._keys: dict[str | None, list[VerificationKey]] = {}
        self._body = b""
        self._generation = 0
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._problem: str | None = None
        """Why the last fetch failed (None: it did not)."""
        self._inflight: asyncio.Task[None] | None = None
        self.service = f"the identity provider's JWKS ({urlsplit(url).hostname})"
        self.fetches = 0
        """Fetches started (operators see it in `describe()`; tests count refetches with it)."""

    async def key(self, kid: str | None, alg: str) -> VerificationKey:
        now = self._clock()
        if now - self._fetched_at < self._cache_seconds:
            found = self._find(kid, alg)
            if found is not None:
                return found
            if now - self._attempted_at < self._min_refresh:
                raise self._unknown(kid, alg)
        elif now - self._attempted_at < min(self._min_refresh, RETRY_AFTER_FAILURE) and self._problem is not None:
            # It failed moments ago: say so without asking the provider again. Soon, though: with no keys every
            # JWT is refused, so a provider back from a blip must not wait out the unknown-kid bound.
            raise CredentialUnverifiable(self.service, self._problem)
        await self._refresh()
        found = self._find(kid, alg)
        if found is None:
            raise self._unknown(kid, alg)
        return found

    def current(self) -> int | None:
        return self._generation if self._clock() - self._fetched_at < self._cache_seconds else None

    def _find(self, kid: str | None, alg: str) -> VerificationKey | None:
        if kid is None:
            candidates = [key for keys in self._keys.values() for key in keys]
            if len(candidates) != 1:  # which one is meant is not ours to guess
                return None
        else:
            candidates = self._keys.get(kid, [])
        return next((key for key in candidates if alg in key.algorithms), None)

    def _unknown(self, kid: str | None, alg: str) -> Unauthorized:
        if kid is None:
            return _refused(f"the token names no kid and the JWKS holds {sum(map(len, self._keys.values()))} keys")
        return _refused(f"no {alg} key with kid {kid[:64]!r} in the identity provider's JWKS")

    async def _refresh(self) -> None:
        if self._inflight is None:
            self._attempted_at = self._clock()
            self.fetches += 1
            self._inflight = asyncio.get_running_loop().create_task(self._fetch())
            self._inflight.add_done_callback(self._landed)
        # Shielded: a client that hangs up must not cancel the fetch the other waiting requests share.
        await asyncio.shield(self._inflight)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved here too, so a fetch nobody waits for any more logs no warning

    async def _fetch(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                body = await self._download()
            keys = parse_jwks(body, self._allowed)
        except TimeoutError:
            raise self._down(f"no answer within {self._timeout:g} s") from None
        except httpx2.HTTPError as exc:
            raise self._down(type(exc).__name__) from None
        except ValueError as exc:
            raise self._down(str(exc)) from None
        if body != self._body:
            self._generation += 1
        self._keys, self._body, self._fetched_at, self._problem = keys, body, self._clock(), None
        logger.info("fetched %d signing key(s) from %s", sum(map(len, keys.values())), self.service)

    async def _download(self) -> bytes:
        async with self._client.stream("GET", self._url, headers={"accept": "application/json"}) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError(f"the answer is larger than {MAX_JWKS_BYTES} bytes")
            return bytes(body)

    def _down(self, detail: str) -> CredentialUnverifiable:
        self._problem = detail
        problem = CredentialUnverifiable(self.service, detail)
        logger.warning("%s; %s", problem, "keeping the cached keys" if self._keys else "no keys yet")
        return problem

    async def aclose(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
            await asyncio.wait({self._inflight})
        await self._client.aclose()

    def describe(self) -> dict[str, Any]:
        return {"key_source": "jwks_url", "jwks_host": urlsplit(self._url).hostname,
                "keys": sum(map(len, self._keys.values())), "fetches": self.fetches}
