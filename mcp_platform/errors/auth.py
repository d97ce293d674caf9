"""The auth refusals: 401 `invalid_token` with its reason and the RFC 9728 hints, 403 `insufficient_scope` for a
step-up, and what a verifier answers when its service cannot decide."""

from __future__ import annotations

from typing import Any

from mcp_platform.errors.tree import (
    FORBIDDEN,
    UNAUTHORIZED,
    Headers,
    McpPlatformError,
    ProtocolError,
    ServiceUnavailable,
    StoreUnavailable,
)


class Unauthorized(ProtocolError):
    """No valid bearer token. RFC 6750: the challenge names no error when no credentials were sent at all.

    A verifier that knows the credential and rejects it says why in `description` (expired, wrong audience...).
    The endpoint adds what the client should do next (`challenged`): the RFC 9728 metadata URL and the scopes to
    ask for, when OAuth is on."""

    code = UNAUTHORIZED
    http_status = 401

    def __init__(self, *, credentials_sent: bool, description: str = "The token is unknown, revoked or malformed",
                 resource_metadata: str | None = None, scope: str | None = None) -> None:
        super().__init__("Unauthorized: a valid bearer token is required")
        self.credentials_sent = credentials_sent
        self.description = description
        self.resource_metadata = resource_metadata
        self.scope = scope

    def challenged(self, *, credentials_sent: bool, resource_metadata: str | None,
                   scope: str | None) -> Unauthorized:
        return Unauthorized(credentials_sent=credentials_sent, description=self.description,
                            resource_metadata=resource_metadata, scope=scope)

    def wire_headers(self) -> Headers:
        challenge = 'Bearer realm="mcp-platform"'
        if self.resource_metadata is not None:
            challenge += f', resource_metadata="{self.resource_metadata}"'
        if self.scope:
            challenge += f', scope="{self.scope}"'
        if self.credentials_sent:
            challenge += f', error="invalid_token", error_description="{_quotable(self.description)}"'
        return [(b"www-authenticate", challenge.encode())]


class AuthServiceRefused(Unauthorized):
    """The forward-auth service's 401. It refuses every credential it does not accept, so unlike a verifier
    rejecting a token of its own, it does not show the token was no earlier verifier's: after an earlier verifier's
    outage, the chain answers with that outage (503) rather than this 401."""


def _quotable(text: str) -> str:
    """Text safe inside an RFC 7235 quoted-string and an HTTP header: printable ASCII, no quote or backslash."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)[:200]


class InsufficientScope(McpPlatformError):
    """The principal lacks a scope. `ask_for` is the scope's name at the identity provider (OAuth: what a client
    requests when it steps up); `resource_metadata` the RFC 9728 document, when OAuth is on."""

    code = FORBIDDEN
    http_status = 403

    def __init__(self, scope: str, what: str, *, ask_for: str | None = None,
                 resource_metadata: str | None = None) -> None:
        super().__init__(f"{what} needs the {scope!r} scope")
        self.scope = scope
        self.ask_for = ask_for or scope
        self.resource_metadata = resource_metadata

    @property
    def wire_message(self) -> str:
        return f"Forbidden: {self}"

    @property
    def wire_data(self) -> Any:
        return {"requiredScope": self.scope}

    def wire_headers(self) -> Headers:
        challenge = f'Bearer error="insufficient_scope", scope="{_quotable(self.ask_for)}"'
        if self.resource_metadata is not None:
            challenge += f', resource_metadata="{self.resource_metadata}"'
        challenge += f', error_description="{_quotable(str(self))}"'
        return [(b"www-authenticate", challenge.encode())]


class AuthServiceForbidden(McpPlatformError):
    """The forward-auth service knew the caller and forbade the request (its 403). Not `insufficient_scope`: no
    scope would help, so there is no challenge a client could step up with."""

    code = FORBIDDEN
    http_status = 403

    def __init__(self, message: str = "the auth service forbids this caller") -> None:
        super().__init__(message)

    @property
    def wire_message(self) -> str:
        return f"Forbidden: {self}"


class CredentialUnverifiable(StoreUnavailable):
    """A verifier knows the credential is its own (a JWT) but cannot check it now: the chain stops here with 503,
    and the credential goes to no other verifier (a JWT is never handed to a forward-auth service)."""


class AuthServiceUnavailable(ServiceUnavailable):
    """The forward-auth service gave no decision: unreachable, too slow, a 5xx, a redirect, or an answer it should
    not give (an admit without a principal). The message names the service (scheme, host, port and path only) and
    what went wrong; the request is refused, never allowed."""

    retry_after = 2.0

    def __init__(self, service: str, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"the auth service {service} {detail}", retry_after=retry_after)
        self.service = service
