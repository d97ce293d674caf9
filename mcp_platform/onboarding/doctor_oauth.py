"""The doctor's OAuth checks, for a server whose 401 points at protected-resource metadata (RFC 9728).

A client that signs in through an identity provider follows the chain checked here: the 401's
`resource_metadata`, that document's `resource` (it must name the URL the client connects to, or the MCP SDKs stop)
and `authorization_servers`, then the authorization server's own metadata (RFC 8414, or OpenID discovery), which
must offer PKCE with S256 and, for clients that register themselves, a registration endpoint.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx2

__all__ = ["check_oauth", "challenge_params"]

_PARAM = re.compile(r'([A-Za-z_]+)="([^"]*)"')


class Add(Protocol):
    """The doctor's `add`: record one finding."""

    def __call__(self, status: Literal["PASS", "WARN", "FAIL"], check: str, message: str, fix: str = "") -> None: ...


def challenge_params(header: str) -> dict[str, str]:
    """The quoted parameters of a `WWW-Authenticate: Bearer ...` challenge."""
    return {name.lower(): value for name, value in _PARAM.findall(header[:4096])}


async def _json(http: httpx2.AsyncClient, url: str) -> tuple[dict[str, Any] | None, str]:
    try:
        response = await http.get(url, headers={"accept": "application/json"})
    except httpx2.HTTPError as exc:
        return None, f"cannot fetch {url}: {type(exc).__name__}"
    if response.status_code != 200:
        return None, f"{url} -> HTTP {response.status_code}"
    try:
        document = response.json()
    except ValueError:
        return None, f"{url} is not JSON"
    return (document, "") if isinstance(document, dict) else (None, f"{url} is not a JSON object")


def _as_metadata_urls(issuer: str) -> list[str]:
    """RFC 8414 first (path inserted after the well-known prefix), then OpenID Connect discovery."""
    parts = urlsplit(issuer)
    base, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
    return [f"{base}/.well-known/oauth-authorization-server{path}", f"{base}/.well-known/openid-configuration{path}",
            f"{issuer.rstrip('/')}/.well-known/openid-configuration"]


async def check_oauth(http: httpx2.AsyncClient, url: str, challenge: str, add: Add) -> None:
    params = challenge_params(challenge)
    metadata_url = params.get("resource_metadata", "")
    if params.get("scope"):
        add("PASS", "oauth", f"the 401 asks for scopes {params['scope']!r}")
    else:
        add("WARN", "oauth", "the 401 names no scope, so clients guess what to ask for",
            "set auth.oauth.scopes so the server can name the scopes in its challenge")
    prm, problem = await _json(http, metadata_url)
    here, there = urlsplit(url), urlsplit(metadata_url)
    if prm is None and (here.scheme, here.netloc) != (there.scheme, there.netloc):
        # The 401 points elsewhere (a resource URL set for another host): read the document here instead, to say
        # what is wrong rather than only that the other host does not answer.
        prm, _ = await _json(http, f"{here.scheme}://{here.netloc}{there.path}")
    if prm is None:
        add("FAIL", "oauth", f"protected-resource metadata unusable: {problem}",
            "serve /.well-known/oauth-protected-resource through the proxy unchanged (auth.mode has oauth)")
        return
    resource = str(prm.get("resource", ""))
    if resource.rstrip("/") != url.rstrip("/"):
        add("FAIL", "oauth", f"metadata resource {resource[:120]!r} is not the URL clients use ({url})",
            "set auth.oauth.resource to the public URL of /mcp (clients compare it and refuse a mismatch)")
    else:
        add("PASS", "oauth", f"protected-resource metadata at {metadata_url} names this URL")
    servers = prm.get("authorization_servers")
    if not isinstance(servers, list) or not servers or not all(isinstance(s, str) for s in servers):
        add("FAIL", "oauth", "the metadata lists no authorization server",
            "set auth.oauth.issuer (and authorization_servers if they differ)")
        return
    for issuer in servers[:3]:
        await _check_authorization_server(http, issuer, add)


async def _check_authorization_server(http: httpx2.AsyncClient, issuer: str, add: Add) -> None:
    problems = []
    for candidate in _as_metadata_urls(issuer):
        document, problem = await _json(http, candidate)
        if document is not None:
            break
        problems.append(problem)
    else:
        add("FAIL", "oauth", f"authorization server {issuer[:120]}: no metadata ({'; '.join(problems)[:200]})",
            "check auth.oauth.issuer: clients read /.well-known/oauth-authorization-server or "
            "openid-configuration there")
        return
    if document.get("issuer") != issuer:
        add("FAIL", "oauth", f"authorization server metadata says issuer {str(document.get('issuer'))[:120]!r}, "
                             f"not {issuer!r}", "use the issuer exactly as the identity provider spells it")
    methods = document.get("code_challenge_methods_supported")
    if not isinstance(methods, list) or "S256" not in methods:
        add("FAIL", "oauth", f"authorization server {issuer}: PKCE S256 not advertised",
            "MCP clients require PKCE with S256; enable it at the identity provider")
    else:
        add("PASS", "oauth", f"authorization server {issuer} offers the authorization code flow with PKCE")
    if not document.get("registration_endpoint") and not document.get("client_id_metadata_document_supported"):
        add("WARN", "oauth", f"authorization server {issuer}: no dynamic client registration",
            "clients that register themselves (Claude, VS Code, Cursor) need it; otherwise pre-register a client "
            "and give its id to each client")
