"""What `oauth` mode tells clients: the RFC 9728 protected-resource metadata, and the 401/403 challenge hints.

Resolved once from the settings (`resolve`), with the defaults filled in, and without PyJWT: the app builds its
metadata routes from it before any verifier starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mcp_platform.auth_types import SCOPES, Challenge, expand_scopes
from mcp_platform.errors import ConfigError
from mcp_platform.settings import Settings

__all__ = ["METADATA_PATH", "ProtectedResource", "resolve"]

METADATA_PATH = "/.well-known/oauth-protected-resource"
_WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True, slots=True)
class ProtectedResource:
    """`[auth.oauth]` with every default resolved."""

    issuer: str
    resource: str
    audience: tuple[str, ...]
    authorization_servers: tuple[str, ...]
    scopes: Mapping[str, str]
    """The provider's scope name -> ours."""
    resource_name: str

    @property
    def metadata_url(self) -> str:
        """The path-suffixed metadata document of `resource` (RFC 9728 section 3.1): the well-known path goes
        between the host and the resource's path."""
        parts = urlsplit(self.resource)
        suffix = parts.path.rstrip("/")
        return f"{parts.scheme}://{parts.netloc}{METADATA_PATH}{suffix}"

    def metadata_paths(self, http_path: str) -> tuple[str, ...]:
        """Where the document is served: the bare well-known path, its `http.path` form, and the form of
        `resource`'s own path (different behind a proxy that adds a prefix)."""
        paths = [METADATA_PATH]
        for suffix in (http_path.rstrip("/"), urlsplit(self.resource).path.rstrip("/")):
            if suffix and METADATA_PATH + suffix not in paths:
                paths.append(METADATA_PATH + suffix)
        return tuple(paths)

    def document(self) -> dict[str, Any]:
        return {"resource": self.resource, "authorization_servers": list(self.authorization_servers),
                "scopes_supported": list(self.scopes), "bearer_methods_supported": ["header"],
                "resource_name": self.resource_name}

    def challenge(self) -> Challenge:
        """For each of our scopes, the provider scope to request: the one mapped to exactly it, else the one that
        grants the least beyond it (`write` asked for as the provider's admin scope when nothing maps to write)."""
        names: dict[str, str] = {}
        for ours in SCOPES:
            granting = [(len(expand_scopes([mapped])), theirs) for theirs, mapped in self.scopes.items()
                        if ours in expand_scopes([mapped])]
            if granting:
                names[ours] = min(granting, key=lambda pair: pair[0])[1]
        return Challenge(resource_metadata=self.metadata_url, scope_names=names, login_scopes=tuple(self.scopes))


def resolve(settings: Settings) -> ProtectedResource:
    """The resolved `[auth.oauth]`, or `ConfigError` saying which setting to set."""
    oauth = settings.auth.oauth
    if oauth.issuer is None:
        raise ConfigError("auth.mode lists 'oauth': set auth.oauth.issuer to the identity provider's issuer URL "
                          "(the tokens' `iss` claim)")
    if oauth.key_source is None:
        raise ConfigError("auth.mode lists 'oauth': set one of auth.oauth.jwks_url (the identity provider's JWKS), "
                          "auth.oauth.public_key (PEM) or auth.oauth.hs256_secret")
    resource = oauth.resource
    if resource is None:
        http = settings.http
        if http.host in _WILDCARDS:
            raise ConfigError(f"auth.mode lists 'oauth' and http.host is {http.host!r}: set auth.oauth.resource "
                              "to this server's public URL as clients reach it, e.g. https://mcp.example.com/mcp")
        if http.port == 0:
            raise ConfigError("auth.mode lists 'oauth' and http.port is 0 (any free port): set auth.oauth.resource "
                              "to this server's URL as clients reach it")
        host = f"[{http.host}]" if ":" in http.host else http.host
        resource = f"http://{host}:{http.port}{http.path}"
    return ProtectedResource(
        issuer=oauth.issuer, resource=resource, audience=tuple(oauth.audience or [resource]),
        authorization_servers=tuple(oauth.authorization_servers or [oauth.issuer]), scopes=dict(oauth.scopes),
        resource_name=settings.name)
