"""The verifier chain: `auth.mode` lists verifiers, each asked in turn about a presented bearer credential.

A verifier answers one of three things:

- a `Principal`: the credential is its own and valid;
- `None`: not its own, so the next verifier is asked;
- it raises `Unauthorized` (401 `invalid_token`, with why) when the credential is its own and invalid, or a
  `ServiceUnavailable` (503 naming what is down) when it cannot decide. Neither is ever "allow". A verifier that
  cannot decide lets the later ones try (the 503 stands only if none of them claims the credential), unless it
  knows the credential is its own (`CredentialUnverifiable`: a JWT while the JWKS is down), which goes no further.

A credential goes only to the verifiers of the chain, in order, and stops at the first that claims it: with `oauth`
on, a JWT (of any issuer: `oauth` claims every JWT) is never sent on to a forward-auth service, and no credential
ever goes to a tool or an upstream API (the MCP spec's "no token passthrough").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from mcp_platform.auth_types import Principal
from mcp_platform.errors import AuthServiceRefused, CredentialUnverifiable, ServiceUnavailable
from mcp_platform.hooks import Hooks

__all__ = ["Presented", "TokenVerifier", "VerifierChain", "chained"]


class Presented:
    """The request a credential came with, for verifiers that decide by more than the token (forward auth). Read
    lazily from the ASGI scope, so the bearer-only hot path builds nothing. `client` is the caller's address after
    `http.trusted_proxies`; `uri` is the path and query as sent."""

    __slots__ = ("_scope", "_headers", "_hooks")

    def __init__(self, scope: Mapping[str, Any], headers: Mapping[str, str], hooks: Hooks | None = None) -> None:
        self._scope = scope
        self._headers = headers
        self._hooks = hooks

    async def before_lookup(self) -> None:
        """A verifier that asks a service (Redis, an auth service) calls this before a lookup no cache answers: a
        client over the failed-auth limit gets its 429 here, rather than costing that service one request per
        made-up token. Tokens answered from memory (named tokens, known JWT keys, cached answers) never wait."""
        if self._hooks is not None:
            await self._hooks.check_auth_allowed(self.client)

    @property
    def authorization(self) -> str:
        return self._headers.get("authorization", "")

    @property
    def method(self) -> str:
        return str(self._scope.get("method", "POST"))

    @property
    def uri(self) -> str:
        path = self._scope.get("raw_path") or str(self._scope.get("path", "/")).encode()
        query = self._scope.get("query_string") or b""
        return (path + b"?" + query if query else path).decode("latin-1")

    @property
    def client(self) -> str:
        client = self._scope.get("client")
        return str(client[0]) if client else "unknown"

    @property
    def host(self) -> str:
        return self._headers.get("host", "")

    @property
    def scheme(self) -> str:
        return str(self._scope.get("scheme", "http"))


class TokenVerifier(Protocol):
    """One entry of `auth.mode`. `name` is the mode's name; `describe()` is what operators see of it (server_config,
    doctor): never a secret, a key or a token."""

    name: str

    async def verify(self, token: str, request: Presented) -> Principal | None: ...

    def describe(self) -> dict[str, Any]: ...


class VerifierChain:
    """Several verifiers, asked in `auth.mode` order until one claims the credential."""

    def __init__(self, verifiers: Sequence[TokenVerifier]) -> None:
        self.verifiers = tuple(verifiers)
        self.name = "+".join(verifier.name for verifier in self.verifiers)

    async def verify(self, token: str, request: Presented) -> Principal | None:
        # A verifier that cannot decide (its service is down) does not stop the others: Redis being out must not
        # lock out CI's named token, whatever the order. If no later verifier claims the credential, the outage
        # is the answer (503), never a 401 that would make a client drop a token that may be valid.
        outage: ServiceUnavailable | None = None
        for verifier in self.verifiers:
            try:
                principal = await verifier.verify(token, request)
            except CredentialUnverifiable:
                raise  # its own credential: handed to no one else, whatever the outage
            except ServiceUnavailable as exc:
                outage = outage or exc
                continue
            except AuthServiceRefused:
                # Forward auth refuses whatever it does not know, the token an earlier verifier could not check
                # included: that verifier's outage is the answer, not a 401 that makes a client drop the token.
                if outage is not None:
                    raise outage from None
                raise
            if principal is not None:
                return principal
        if outage is not None:
            raise outage
        return None

    def describe(self) -> dict[str, Any]:
        return {"verifiers": [verifier.describe() for verifier in self.verifiers]}


def chained(verifiers: Sequence[TokenVerifier]) -> TokenVerifier:
    """One verifier for the endpoint: the only one itself (no loop on the bearer-only hot path), or a chain."""
    if len(verifiers) == 1:
        return verifiers[0]
    return VerifierChain(verifiers)
