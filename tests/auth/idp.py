"""A stand-in identity provider for the oauth tests: signing keys made here, tokens minted with them, and a real
JWKS endpoint (a tiny Starlette app on uvicorn, loopback) that a test can slow down, break or take away."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_platform.settings import Settings
from tests.support import make_settings, running_server

ISSUER = "https://idp.example.test/"
RESOURCE = "http://127.0.0.1:8000/mcp"
"""What `asgi_client`'s base URL and the default `http` settings make this server's resource."""
HS_SECRET = "an-hs256-secret-of-at-least-32-bytes!"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: Any

    @property
    def public(self) -> Any:
        return self.private.public_key()

    def jwk(self) -> dict[str, Any]:
        family: Any = {"RS": RSAAlgorithm, "PS": RSAAlgorithm, "ES": ECAlgorithm, "Ed": OKPAlgorithm}[self.alg[:2]]
        jwk: dict[str, Any] = family.to_jwk(self.public, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> str:
        pem: bytes = self.public.public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        return pem.decode()

    def mint(self, *, headers: dict[str, Any] | None = None, now: float | None = None, **claims: Any) -> str:
        return jwt.encode(claims_with_defaults(now, **claims), self.private, algorithm=self.alg,
                          headers={"kid": self.kid, **(headers or {})})


def claims_with_defaults(now: float | None = None, **claims: Any) -> dict[str, Any]:
    """A valid access token's claims (alice, read), with `claims` replacing or (as None) removing any of them."""
    now = time.time() if now is None else now
    base: dict[str, Any] = {"iss": ISSUER, "aud": RESOURCE, "sub": "alice", "iat": int(now), "exp": int(now) + 300,
                            "scope": "read"}
    base.update(claims)
    return {name: value for name, value in base.items() if value is not None}


def make_keys() -> dict[str, SigningKey]:
    return {
        "RS256": SigningKey("rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "ES256": SigningKey("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1())),
        "EdDSA": SigningKey("ed-1", "EdDSA", ed25519.Ed25519PrivateKey.generate()),
    }


@dataclass
class Jwks:
    """The JWKS endpoint's state; the test changes it while the server runs (it answers from another thread)."""

    keys: list[dict[str, Any]]
    status: int = 200
    requests: int = 0
    hold: threading.Event | None = None
    """When set to an unset event, requests wait for it (a hanging identity provider)."""
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def jwks(request: Request) -> Response:
            with self._lock:
                self.requests += 1
            if self.hold is not None:
                import anyio.to_thread

                await anyio.to_thread.run_sync(self.hold.wait, 10)
            if self.status != 200:
                return JSONResponse({"error": "down"}, status_code=self.status)
            return JSONResponse({"keys": self.keys})

        return Starlette(routes=[Route("/jwks.json", jwks)])


@contextmanager
def jwks_server(keys: list[SigningKey]) -> Iterator[Jwks]:
    """A real JWKS endpoint on loopback serving `keys`; gone (connection refused) when the block ends."""
    state = Jwks([key.jwk() for key in keys])
    with running_server(state.app()) as base:
        state.url = f"{base}/jwks.json"
        yield state


def oauth_settings(tmp_path: Path, *, mode: list[str] | None = None, extra: dict[str, Any] | None = None,
                   **oauth: Any) -> Settings:
    """Settings with `oauth` on (after `bearer` unless `mode` says otherwise), issuer `ISSUER`, and `oauth` as
    `[auth.oauth]`; `extra` are more top-level settings."""
    return make_settings(tmp_path, auth={"mode": mode or ["bearer", "oauth"], "oauth": {"issuer": ISSUER, **oauth}},
                         **(extra or {}))
