"""The `forward` verifier: an HTTP auth service decides, as behind nginx `auth_request` or Traefik `forwardAuth`.

For a credential no earlier verifier claimed, the service gets one request: the client's `Authorization` header as
sent and the `X-Forwarded-Method`/`-Uri`/`-For`/`-Host`/`-Proto` headers Traefik sends (plus `X-Original-Method`
and `X-Original-URL`, which nginx-style endpoints such as Authelia's `auth-request` read), and nothing else of the
client's request. It answers:

    2xx                 admitted: the principal from `principal_header`, the scopes from `scopes_header`
    401                 our 401 `invalid_token`
    403                 our 403 (the service forbids this caller)
    anything else       503 naming the service: 3xx (never followed), other 4xx, 5xx, no answer in time, no
                        connection, an admit without a valid principal. Never "allow".

Decisions (admits, 401s, 403s) are kept per token hash for `cache_seconds` (`cache.py`). The verifier claims
every credential it sees, so it goes last in `auth.mode`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2

from mcp_platform.auth.bearer import hash_token
from mcp_platform.auth.cache import AnswerCache, Missing
from mcp_platform.auth.chain import Presented, TokenVerifier
from mcp_platform.auth_types import SCOPES, Principal, expand_scopes
from mcp_platform.core import Core
from mcp_platform.errors import AuthServiceForbidden, AuthServiceRefused, AuthServiceUnavailable, ConfigError
from mcp_platform.settings import ForwardAuthSettings, Settings

__all__ = ["ForwardVerifier", "open_verifier", "public_url", "start"]

logger = logging.getLogger(__name__)

Decision = Principal | Literal[401, 403]
_PRINCIPAL = re.compile(rb"[A-Za-z0-9_.@+=:/-]{1,256}")
_SCOPES = re.compile(rb"[\x21-\x7e ]{0,4096}")
_SCOPE_SEPARATORS = re.compile(r"[ ,]+")
_MAX_BODY = 64 * 1024
"""The body of an answer is not used; this much is read (so the connection can be kept), more closes it."""


def public_url(url: str) -> str:
    """The service as operators and clients may see it: scheme, host, port and path; never a query string."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path or '/'}"


class ForwardVerifier:
    """Asks the auth service about each credential it has no fresh decision for; see the module docstring."""

    name = "forward"

    def __init__(self, settings: ForwardAuthSettings, client: httpx2.AsyncClient,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if settings.url is None:
            raise ConfigError("auth.forward.url is required when auth.mode has 'forward'")
        self._settings = settings
        self._url = settings.url
        self._client = client
        self.service = public_url(settings.url)
        self._principal_header = settings.principal_header.lower().encode()
        self._scopes_header = settings.scopes_header.lower().encode()
        self._scope_names: dict[str, str] = {**settings.scope_map, **{scope: scope for scope in SCOPES}}
        self._default_scopes = expand_scopes(tuple(settings.default_scopes))
        self._static = [(name.encode(), value.get_secret_value().encode()) for name, value in settings.headers.items()]
        self._decisions: AnswerCache[Decision] = AnswerCache(
            None, lambda decision: isinstance(decision, Principal), size=settings.cache_size,
            max_age=settings.cache_seconds, clock=clock)

    async def verify(self, token: str, request: Presented) -> Principal:
        key = hash_token(token)
        decision = self._decisions.fresh(key)
        if isinstance(decision, Missing):
            await request.before_lookup()
            decision = await self._decisions.get(key, lambda: self._ask(request))
        if decision == 401:
            raise AuthServiceRefused(credentials_sent=True, description="The auth service refused the token")
        if decision == 403:
            raise AuthServiceForbidden()
        assert isinstance(decision, Principal)
        return decision

    async def aclose(self) -> None:
        await self._decisions.close()

    def describe(self) -> dict[str, Any]:
        forward = self._settings
        return {"mode": self.name, "url": self.service, "method": forward.method,
                "timeout_seconds": forward.timeout_seconds, "principal_header": forward.principal_header,
                "scopes_header": forward.scopes_header, "default_scopes": sorted(self._default_scopes),
                "scope_map": dict(forward.scope_map), "static_headers": sorted(forward.headers),
                "cache_seconds": forward.cache_seconds, "cache_size": forward.cache_size,
                "cached_decisions": len(self._decisions), "max_connections": forward.max_connections}

    def _request_headers(self, request: Presented) -> list[tuple[bytes, bytes]]:
        # Bytes, as received: the client's headers are latin-1 on the wire, and a str header would be re-encoded
        # as ASCII (and refused for any other character).
        def raw(text: str) -> bytes:
            return text.encode("latin-1", "replace")

        method, uri, host, scheme = raw(request.method), raw(request.uri), raw(request.host), raw(request.scheme)
        headers = [(b"authorization", raw(request.authorization)), (b"x-forwarded-method", method),
                   (b"x-forwarded-proto", scheme), (b"x-forwarded-host", host), (b"x-forwarded-uri", uri),
                   (b"x-forwarded-for", raw(request.client)), (b"x-original-method", method),
                   (b"x-original-url", scheme + b"://" + host + uri)]
        return headers + self._static

    async def _ask(self, request: Presented) -> Decision:
        timeout = self._settings.timeout_seconds
        content = b"" if self._settings.method == "POST" else None
        try:
            async with asyncio.timeout(timeout), self._client.stream(
                    self._settings.method, self._url, headers=self._request_headers(request),
                    content=content) as response:
                status, answered = response.status_code, response.headers.raw
                received = 0
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    if received > _MAX_BODY:
                        break
        except (TimeoutError, httpx2.TimeoutException):
            raise self._unavailable(f"did not answer within {timeout:g} s") from None
        except httpx2.HTTPError as exc:
            raise self._unavailable(f"cannot be reached ({type(exc).__name__})") from None
        if 200 <= status < 300:
            return self._admitted(answered)
        if status in (401, 403):
            return 401 if status == 401 else 403
        if 300 <= status < 400:
            raise self._unavailable(f"answered {status}, a redirect (not followed: point auth.forward.url at an "
                                    "endpoint that answers 2xx, 401 or 403)")
        raise self._unavailable(f"answered {status}")

    def _admitted(self, answered: list[tuple[bytes, bytes]]) -> Principal:
        header = self._settings.principal_header
        names = [value.strip() for key, value in answered if key.lower() == self._principal_header]
        if not names or not names[0]:
            raise self._unavailable(f"admitted the caller without naming it in {header} "
                                    "(auth.forward.principal_header)")
        if len(names) > 1 or not _PRINCIPAL.fullmatch(names[0]):
            raise self._unavailable(f"sent an invalid {header} (one value, 1-256 of A-Z a-z 0-9 _ . @ + = : / -)")
        return Principal(names[0].decode("ascii"), self._scopes(answered))

    def _scopes(self, answered: list[tuple[bytes, bytes]]) -> frozenset[str]:
        values = [value for key, value in answered if key.lower() == self._scopes_header]
        if not values:
            return self._default_scopes
        joined = b",".join(values)
        if not _SCOPES.fullmatch(joined):
            raise self._unavailable(f"sent an invalid {self._settings.scopes_header} (at most 4096 printable "
                                    "ASCII characters)")
        names = [name for name in _SCOPE_SEPARATORS.split(joined.decode("ascii")) if name]
        granted = {self._scope_names[name] for name in names if name in self._scope_names}
        if not granted:
            logger.warning("the auth service granted none of %s in %s (%d other names; see auth.forward.scope_map)",
                           ", ".join(SCOPES), self._settings.scopes_header, len(names))
        return expand_scopes(granted)

    def _unavailable(self, detail: str) -> AuthServiceUnavailable:
        problem = AuthServiceUnavailable(self.service, detail)
        logger.warning("%s", problem)
        return problem


async def open_verifier(forward: ForwardAuthSettings, stack: AsyncExitStack,
                        clock: Callable[[], float] = time.monotonic) -> ForwardVerifier:
    """The verifier with its pooled client, both closed with `stack`."""
    timeout = forward.timeout_seconds
    client = httpx2.AsyncClient(
        # No cookie jar (a cookie one caller's answer set must never reach the service with another's request), no
        # redirects, no proxy or netrc from the environment: the request is exactly what the docstring says.
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        follow_redirects=False, trust_env=False, timeout=httpx2.Timeout(timeout, pool=timeout),
        limits=httpx2.Limits(max_connections=forward.max_connections,
                             max_keepalive_connections=min(forward.max_connections, 20)),
        headers={"user-agent": "mcp-platform forward-auth"})
    await stack.enter_async_context(client)
    verifier = ForwardVerifier(forward, client, clock=clock)
    stack.push_async_callback(verifier.aclose)  # before the client closes: the stack unwinds last-in first-out
    return verifier


async def start(settings: Settings, core: Core, stack: AsyncExitStack) -> TokenVerifier:
    return await open_verifier(settings.auth.forward, stack, clock=core.clock.now)
