"""A real OAuth authorization server for the auth tests, and the person at its login and consent screens.

`authorization_server(folder)` runs tests/auth/oidc_provider.mjs (oidc-provider from npm, on the Node 22 that
scripts/npm-clients.sh installs) on a loopback port the system picks, and stops it afterwards. Without the npm
install a test that needs it is skipped, and fails under `CI=true` (tests/onboarding/npm_clients.py).

`ConsentDriver` stands in for the browser the MCP SDK would open: its `redirect_handler` takes the authorization
URL, follows the redirects with cookies kept, signs in and answers the consent screen (granting the scopes the test
chose, or declining), and its `callback_handler` hands the SDK what arrived at the client's redirect URI.

`register_client`, `authorization_url` and `issue_token` are the same flow by hand, without the SDK: for tests of
the authorization server itself, and for tokens a test presents on its own (one for another resource, say).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import selectors
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import anyio
import httpx2
from mcp.shared.auth import AuthorizationCodeResult

from tests.onboarding.npm_clients import node, require_library
from tests.support import wait_served

SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
ACCOUNT = "test-user"
MCP_SCOPES = ("mcp:read", "mcp:write", "mcp:admin")
# The mapping our server's settings take from the identity provider's scope names to ours.
SCOPE_MAP = {"mcp:read": "read", "mcp:write": "write", "mcp:admin": "admin"}
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never connected to: the driver stops at the redirect
_MAX_HOPS = 20  # redirects and form posts in one authorization: a loop is a bug, not a slow server


@dataclass(frozen=True)
class AuthorizationServer:
    issuer: str
    password: str = field(repr=False)
    log: Path
    account: str = ACCOUNT

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"


@contextmanager
def authorization_server(folder: Path, *, port: int = 0, timeout: float = 20) -> Iterator[AuthorizationServer]:
    """oidc-provider on 127.0.0.1 (a fresh signing key and in-memory state per start), its log in `folder`; on
    `port`, or one the system picks."""
    modules = require_library("oidc-provider")
    password = secrets.token_urlsafe(16)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "oidc-provider.log"
    env = {"PATH": f"{node().parent}:/usr/bin:/bin", "HOME": str(folder), "NODE_ENV": "test",
           "OIDC_TEST_ACCOUNT": ACCOUNT, "OIDC_TEST_PASSWORD": password}
    with log.open("w") as err:
        process = subprocess.Popen([str(node()), str(SCRIPT), str(modules), str(port)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=err, env=env, cwd=folder)
    try:
        issuer = _announced_issuer(process, log, timeout)
        wait_served(process, issuer, log=log, path="/.well-known/openid-configuration", timeout=timeout)
        yield AuthorizationServer(issuer=issuer, password=password, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def _announced_issuer(process: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    """The issuer from the script's one stdout line, read within `timeout` (the port is the system's choice)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            if process.poll() is not None or time.monotonic() >= deadline:
                raise AssertionError(f"oidc-provider did not start:\n{log.read_text()}")
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=timeout)
        raise AssertionError(f"oidc-provider exited ({process.returncode}):\n{log.read_text()}")
    issuer: str = json.loads(line)["issuer"]
    return issuer


class AuthorizationDenied(Exception):
    """The authorization server redirected to the client with an error instead of a code."""

    def __init__(self, error: str, description: str | None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error


@dataclass(frozen=True)
class ConsentScreen:
    """One consent screen the driver answered: what the client asked for and what the user gave."""
    requested: tuple[str, ...]
    resource: str | None
    granted: tuple[str, ...] | None  # None: declined


class ConsentDriver:
    """The user in front of the browser: signs in as the test account and, on each consent screen, grants the
    scopes in `grant` that were asked for (`grant = None` declines). Use as an async context manager."""

    def __init__(self, server: AuthorizationServer, grant: Iterable[str] | None = MCP_SCOPES, *,
                 timeout: float = 10) -> None:
        self.server = server
        self.grant: frozenset[str] | None = None if grant is None else frozenset(grant)
        self.screens: list[ConsentScreen] = []
        self.logins = 0
        self._timeout = timeout
        self._http = httpx2.AsyncClient(follow_redirects=False, timeout=timeout)  # keeps the session cookie
        self._outcome: AuthorizationCodeResult | AuthorizationDenied | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self._http.aclose()

    async def redirect_handler(self, authorization_url: str) -> None:
        """The SDK's `redirect_handler`: the user goes through the authorization server's screens."""
        try:
            self._outcome = await self.authorize(authorization_url)
        except AuthorizationDenied as denied:
            self._outcome = denied

    async def callback_handler(self) -> AuthorizationCodeResult:
        """The SDK's `callback_handler`: what reached the redirect URI (a declined consent raises there)."""
        outcome, self._outcome = self._outcome, None
        if outcome is None:
            raise AssertionError("callback_handler called before redirect_handler")
        if isinstance(outcome, AuthorizationDenied):
            raise outcome
        return outcome

    async def authorize(self, authorization_url: str) -> AuthorizationCodeResult:
        """Follows `authorization_url` to the client's redirect URI; returns its code, state and iss, or raises
        `AuthorizationDenied` when the server redirected with an error."""
        query = parse_qs(urlsplit(authorization_url).query)
        redirect_uri = query["redirect_uri"][0]
        with anyio.fail_after(self._timeout):
            response = await self._http.get(authorization_url)
            for _ in range(_MAX_HOPS):
                if response.is_redirect:
                    location = urljoin(str(response.url), response.headers["location"])
                    if location.split("?", 1)[0] == redirect_uri:
                        return _callback(location)
                    response = await self._http.get(location)
                    continue
                if response.status_code != 200:
                    raise AssertionError(f"the authorization server answered {response.status_code}: "
                                         f"{response.text[:500]}")
                response = await self._answer(response.json())
            raise AssertionError(f"more than {_MAX_HOPS} steps before reaching the redirect URI")

    async def _answer(self, screen: dict[str, Any]) -> httpx2.Response:
        base = f"{self.server.issuer}/interaction/{screen['uid']}"
        if screen["prompt"] == "login":
            self.logins += 1
            return await self._http.post(f"{base}/login", data={"login": self.server.account,
                                                                 "password": self.server.password})
        if screen["prompt"] != "consent":
            raise AssertionError(f"unexpected prompt {screen['prompt']!r}")
        requested = tuple(screen["scopes"])
        if self.grant is None:
            self.screens.append(ConsentScreen(requested, screen["resource"], None))
            return await self._http.post(f"{base}/abort")
        granted = tuple(scope for scope in requested if scope in self.grant)
        self.screens.append(ConsentScreen(requested, screen["resource"], granted))
        return await self._http.post(f"{base}/consent", data={"scope": " ".join(granted)})


def _callback(location: str) -> AuthorizationCodeResult:
    params = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    if "error" in params:
        raise AuthorizationDenied(params["error"], params.get("error_description"))
    return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))


async def register_client(http: httpx2.AsyncClient, server: AuthorizationServer, **metadata: Any) -> str:
    """Dynamic registration (RFC 7591) of a public client redirecting to `REDIRECT_URI`; returns its client_id."""
    response = await http.post(f"{server.issuer}/reg", json={
        "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"], **metadata})
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


def authorization_url(server: AuthorizationServer, client_id: str, *, scope: str, resource: str,
                      verifier: str | None, state: str = "state") -> str:
    """The authorization request an MCP client makes (PKCE S256 from `verifier`; None leaves PKCE out)."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "state": state,
              "scope": scope, "resource": resource, "prompt": "consent"}
    if verifier is not None:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return f"{server.issuer}/auth?{urlencode(params)}"


async def exchange_code(http: httpx2.AsyncClient, server: AuthorizationServer, client_id: str, code: str,
                        verifier: str, resource: str) -> httpx2.Response:
    return await http.post(f"{server.issuer}/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "client_id": client_id,
        "code_verifier": verifier, "resource": resource})


async def issue_token(server: AuthorizationServer, *, resource: str, scope: str = " ".join(MCP_SCOPES),
                      grant: Iterable[str] = MCP_SCOPES) -> str:
    """An access token for `resource`, through registration, consent (granting `grant`) and the code exchange."""
    async with httpx2.AsyncClient(timeout=10) as http, ConsentDriver(server, grant) as driver:
        client_id = await register_client(http, server)
        verifier = secrets.token_urlsafe(48)
        result = await driver.authorize(authorization_url(server, client_id, scope=scope, resource=resource,
                                                          verifier=verifier))
        response = await exchange_code(http, server, client_id, result.code, verifier, resource)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token
