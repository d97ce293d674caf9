"""Settings: the only place the environment and the config file are read.

Precedence, highest first: explicit overrides (CLI flags), `MCP_PLATFORM_*` environment variables (nested with
`__`, e.g. `MCP_PLATFORM_HTTP__PORT=9000`), the TOML file (`mcp-platform.toml`, or `--config` /
`MCP_PLATFORM_CONFIG`), then the defaults below. Every field is documented where it is declared.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mcp_platform.errors import ConfigError

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "AuditSettings",
    "AuthMode",
    "AuthSettings",
    "CorsSettings",
    "DatabaseSettings",
    "FeatureFlag",
    "ForwardAuthSettings",
    "HMAC_ALGORITHMS",
    "HttpSettings",
    "LogSettings",
    "OAuthSettings",
    "RateLimitSettings",
    "RedisTokenSettings",
    "SessionSettings",
    "Settings",
    "StateSettings",
    "StaticSettings",
    "TOOLSET_PREFIX",
    "ToolSettings",
    "TracingSettings",
    "load_settings",
]

DEFAULT_CONFIG_FILE = Path("mcp-platform.toml")
TOOLSET_PREFIX = "toolset:"
"""Marks a `tools.enabled` / `tools.disabled` entry that names a toolset rather than a tool."""
_TOOL_PATTERN = re.compile(r"(?:[A-Za-z0-9_.*?-]|\[!?[A-Za-z0-9_.-]+\])+")
"""A tool name (SEP-986 characters) or an fnmatch glob over them, every `[...]` class closed."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorsSettings(_Section):
    allow_origins: list[str] = []
    """Browser origins allowed to call `/mcp` (CORS). Empty: no CORS headers at all."""
    allow_methods: list[str] = ["GET", "POST", "DELETE"]
    allow_headers: list[str] = ["Authorization", "Content-Type", "Accept", "Mcp-Session-Id", "MCP-Protocol-Version",
                                "Mcp-Method", "Mcp-Name", "Last-Event-ID"]
    allow_credentials: bool = False
    max_age: int = 600
    """Seconds a browser may cache a preflight answer."""


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    """Address to bind. Loopback by default; anything else needs auth on."""
    port: int = Field(8000, ge=0, le=65535)
    path: str = "/mcp"
    """The MCP endpoint."""
    allowed_hosts: list[str] = []
    """Host header values accepted (DNS-rebinding protection), `host:port` or `host:*`. Empty: loopback names
    on any port, plus the bind address when it is not a wildcard."""
    allowed_origins: list[str] = []
    """Origin header values accepted (exact, or `scheme://host:*`). Empty: loopback origins only. A request
    without Origin (not from a browser) is always accepted."""
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    """Largest accepted request body; larger ones get 413 before any parsing."""
    sse_heartbeat_seconds: float = Field(15.0, gt=0)
    """Interval of keep-alive comments on quiet SSE streams, so proxies do not cut them."""
    max_header_bytes: int = Field(64 * 1024, ge=1024)
    """Largest request head (request line and headers); a bigger one gets 431 and the connection is closed before
    the HTTP parser sees more of it (an unbounded head costs event-loop time that grows with its square)."""
    max_headers: int = Field(100, ge=1)
    """Most header fields in one request; more get 431."""
    head_timeout_seconds: float = Field(10.0, gt=0)
    """A connection that has not sent a complete request head this long after it opened (or after it started the
    next request) is closed, so idle sockets cannot exhaust file descriptors."""
    body_timeout_seconds: float = Field(30.0, gt=0)
    """How long a request may take to send its whole body (after its head); a slower one gets 408 and its
    connection is closed, so a body trickled in a byte at a time cannot hold a request (and a connection) open."""
    drain_seconds: float = Field(20.0, gt=0)
    """After SIGTERM (`serve`), how long running calls may take to finish. The server keeps listening meanwhile:
    `/readyz` answers 503 at once and new sessions, calls and streams get 503 with `Retry-After`, so a load
    balancer moves them elsewhere. Calls still running then are cancelled (and audited as such)."""
    max_connections: int = Field(1000, ge=1)
    """Open connections at most; a request on a connection beyond that gets 503 (and the connection is closed).
    Keep it below the process's file-descriptor limit (`ulimit -n`)."""
    trusted_proxies: list[str] = []
    """Addresses (IPs or CIDR networks) of reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are
    believed: the client address (which the failed-auth limit counts by) is then the one the proxy reports. Empty:
    those headers are ignored from everyone, loopback included (uvicorn alone would trust them from 127.0.0.1)."""
    access_log: bool = False
    """Log one line per HTTP request (uvicorn's access log, at `info`, through the same formatter that masks
    secrets and drops query strings). Off by default: it costs about 15% of a small call's CPU."""
    cors: CorsSettings = CorsSettings()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy[:100]!r} is not an IP address or network (such as 10.0.0.0/8)") from None
        return proxies


AuthMode = Literal["bearer", "oauth", "redis", "forward", "none"]


HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
"""An RFC 6749 scope token: printable ASCII without space, quote or backslash (it goes into a quoted header)."""


def _http_url(url: str, what: str) -> str:
    """`url` if it is an absolute http(s) URL with a host and no fragment, or ValueError saying what is wrong."""
    if len(url) > 2048 or any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError(f"{what} must be a URL of at most 2048 printable characters without spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is no number
    except ValueError:
        raise ValueError(f"{what} is not a URL: {url[:100]!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.fragment or "#" in url:
        raise ValueError(f"{what} must be an absolute http:// or https:// URL without a fragment, got {url[:100]!r}")
    return url


class OAuthSettings(_Section):
    """`auth.mode` entry `oauth`: this server as an OAuth 2.1 resource server, validating JWT access tokens.

    Set `issuer` and exactly one key source: `jwks_url` (most identity providers), `public_key` or
    `hs256_secret`. A JWT that fails any check is refused with 401 `invalid_token` saying why; it is never passed
    on to a later verifier of `auth.mode`. Anything that is not JWT-shaped is left to the other verifiers."""

    issuer: str | None = None
    """The identity provider's issuer (the `iss` claim, compared exactly), e.g. `https://example.eu.auth0.com/`,
    `https://sso.example.com/realms/platform` (Keycloak), `https://login.microsoftonline.com/<tenant id>/v2.0`
    (Entra ID, v2 tokens) or `https://example.okta.com/oauth2/default` (Okta). Required when `auth.mode` lists
    `oauth`."""
    jwks_url: str | None = None
    """Where the provider publishes its signing keys (JWKS, the `jwks_uri` of its discovery document), e.g.
    `https://example.eu.auth0.com/.well-known/jwks.json`,
    `https://sso.example.com/realms/platform/protocol/openid-connect/certs` (Keycloak),
    `https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys` (Entra ID) or
    `https://example.okta.com/oauth2/default/v1/keys` (Okta). https, or http to a loopback host. Keys are cached
    (`jwks_cache_seconds`) and fetched again when a token names an unknown `kid`."""
    public_key: str | None = None
    """A static PEM public key (`-----BEGIN PUBLIC KEY-----`), RSA, EC (P-256/384/521) or Ed25519, instead of a
    JWKS URL."""
    hs256_secret: SecretStr | None = None
    """A shared HMAC secret (32 bytes at least) instead of a public key, for a token service of your own."""
    algorithms: list[str] = []
    """The `alg` values accepted. Empty: those of the key source (every RSA, EC and EdDSA algorithm for a JWKS,
    the key type's for `public_key`, HS256 for `hs256_secret`). `none` is never accepted, nor HMAC algorithms with
    a public key source (the HS256-signed-with-the-public-key confusion)."""
    resource: str | None = None
    """This server's canonical resource URL (RFC 8707), as clients reach it: the public URL of `http.path` behind a
    proxy, e.g. `https://mcp.example.com/mcp`. Empty: `http://{http.host}:{http.port}{http.path}`, which is
    refused when `http.host` is a wildcard such as 0.0.0.0."""
    audience: list[str] = []
    """The `aud` values accepted (a token must carry one of them). Empty: `[resource]`. List what your provider
    puts there if it is not the resource URL: Entra ID the application's client ID (v2 tokens) or its
    application ID URI (v1), Okta's `default` server `api://default`."""
    authorization_servers: list[str] = []
    """The authorization servers named in the protected-resource metadata (RFC 9728). Empty: `[issuer]`."""
    principal_claim: str = "sub"
    """The claim that names the caller (audit log, rate limits, sessions), e.g. `sub`, `email`, `azp`."""
    scopes: dict[str, Literal["read", "write", "admin"]] = {"read": "read", "write": "write", "admin": "admin"}
    """The provider's scope names -> our scopes (`read`, `write`, `admin`), read from the `scope` (space-separated)
    or `scp` (list or string) claim; names not listed are ignored. E.g. `{"mcp:read" = "read", "mcp:write" =
    "write"}`. The provider's names are what clients are told to request (401 and 403 challenges, metadata)."""
    leeway_seconds: float = Field(30.0, ge=0, le=300)
    """Clock skew tolerated on `exp` and `nbf`."""
    jwks_cache_seconds: float = Field(3600.0, ge=1, le=7 * 86400)
    """How long fetched keys are used before they are fetched again. While the JWKS URL is down, cached keys keep
    working until they are this old; then tokens get 503 naming the JWKS."""
    jwks_min_refresh_seconds: float = Field(30.0, ge=1, le=3600)
    """Least time between two fetches of the JWKS (a token with an unknown `kid` triggers one; a flood of made-up
    `kid`s cannot make the server hammer the identity provider)."""
    jwks_timeout_seconds: float = Field(5.0, gt=0, le=60)
    """Longest a JWKS fetch may take, all of it; a request waits at most this long for keys."""
    max_token_bytes: int = Field(8192, ge=1024, le=16384)
    """Longer JWTs are refused (401) before any decoding."""

    @field_validator("issuer", "jwks_url", "resource")
    @classmethod
    def _urls(cls, url: str | None, info: ValidationInfo) -> str | None:
        if url is None:
            return None
        _http_url(url, str(info.field_name))
        plain = not url.lower().startswith("https://")
        if info.field_name == "jwks_url" and plain and urlsplit(url).hostname not in LOOPBACK_HOSTS:
            raise ValueError("jwks_url must be https (plain http only to a loopback host): keys fetched in the "
                             "clear could be swapped on the way")
        return url

    @field_validator("audience", "authorization_servers")
    @classmethod
    def _url_lists(cls, urls: list[str], info: ValidationInfo) -> list[str]:
        for url in urls:
            if info.field_name == "authorization_servers":
                _http_url(url, "authorization_servers entry")
            elif not url or len(url) > 2048 or not url.isprintable():
                raise ValueError("audience entries must be 1-2048 printable characters")
        return urls

    @field_validator("public_key")
    @classmethod
    def _pem(cls, pem: str | None) -> str | None:
        if pem is None:
            return None
        if "PRIVATE KEY" in pem:
            raise ValueError("public_key holds a private key: give only the public key (openssl pkey -pubout)")
        if "-----BEGIN PUBLIC KEY-----" not in pem and "-----BEGIN RSA PUBLIC KEY-----" not in pem:
            raise ValueError("public_key must be PEM text starting with -----BEGIN PUBLIC KEY-----")
        return pem

    @field_validator("hs256_secret")
    @classmethod
    def _secret_length(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value().encode()) < 32:
            raise ValueError("hs256_secret must be at least 32 bytes")
        return secret

    @field_validator("algorithms")
    @classmethod
    def _known_algorithms(cls, algorithms: list[str]) -> list[str]:
        for alg in algorithms:
            if alg.lower() == "none":
                raise ValueError("'none' is never accepted: unsigned tokens prove nothing")
            if alg not in HMAC_ALGORITHMS + ASYMMETRIC_ALGORITHMS:
                raise ValueError(f"unknown algorithm {alg[:20]!r}; known: "
                                 f"{', '.join(HMAC_ALGORITHMS + ASYMMETRIC_ALGORITHMS)}")
        return algorithms

    @field_validator("principal_claim")
    @classmethod
    def _claim_name(cls, claim: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.:/-]{1,64}", claim):
            raise ValueError("principal_claim must be a claim name of 1-64 letters, digits and _ . : / -")
        return claim

    @field_validator("scopes")
    @classmethod
    def _scope_table(cls, scopes: dict[str, str]) -> dict[str, str]:
        if not scopes:
            raise ValueError("map at least one identity-provider scope to read, write or admin")
        for name in scopes:
            if not _SCOPE_TOKEN.fullmatch(name):
                raise ValueError(f"scope name {name[:50]!r} must be 1-128 printable ASCII characters without "
                                 "space, quote or backslash")
        return scopes

    @model_validator(mode="after")
    def _one_key_source(self) -> OAuthSettings:
        sources = [name for name in ("jwks_url", "public_key", "hs256_secret") if getattr(self, name) is not None]
        if len(sources) > 1:
            raise ValueError(f"set only one key source, not {' and '.join(sources)}")
        hmac = [alg for alg in self.algorithms if alg in HMAC_ALGORITHMS]
        if self.hs256_secret is not None and len(hmac) != len(self.algorithms):
            raise ValueError("with hs256_secret, algorithms may only list HS256, HS384, HS512")
        if self.hs256_secret is not None:
            size = len(self.hs256_secret.get_secret_value().encode())
            for alg in hmac:
                if size < int(alg[2:]) // 8:  # RFC 7518 3.2: a key at least as long as the hash
                    raise ValueError(f"{alg} needs an hs256_secret of {int(alg[2:]) // 8} bytes at least")
        if sources and self.hs256_secret is None and hmac:
            raise ValueError(f"{', '.join(hmac)} cannot be used with {sources[0]}: an HMAC algorithm with a public "
                             "key lets anyone sign tokens with that key")
        return self

    @property
    def key_source(self) -> str | None:
        """`jwks_url`, `public_key` or `hs256_secret`: the one set, or None."""
        for name in ("jwks_url", "public_key", "hs256_secret"):
            if getattr(self, name) is not None:
                return name
        return None


class RedisTokenSettings(_Section):
    """`auth.mode` entry `redis`: tokens the platform's own service keeps in Redis, looked up by hash.

    The service writes `{key_prefix}{sha256 hex of the token}` as a JSON string `{"name": "alice", "scopes":
    ["read"], "expires_at": 1798761600}` (`expires_at`: Unix seconds, or null for never), or as a hash with the
    same fields (`scopes` comma- or space-separated). Deleting the key revokes the token on every instance within
    `cache_seconds`. Read at start: a change takes a restart."""

    url: str | None = None
    """The Redis holding the tokens (`redis://[:password@]host:6379/0`, `rediss://...` or `unix:///path`). Unset:
    `state.redis_url`. The lookups get a connection pool of their own either way, with `timeout_seconds`."""
    key_prefix: str = "mcp-platform:token:"
    """Put before the token's SHA-256 hex to make its key (1-200 printable ASCII characters, no spaces). The CLI
    keeps its name index at `{key_prefix}names`."""
    cache_size: int = Field(10_000, ge=1, le=10_000_000)
    """Answers kept in each instance's memory at most: admitted tokens and refused or unknown ones are counted
    apart, so a flood of random tokens cannot push the admitted ones out."""
    cache_seconds: float = Field(5.0, ge=0, le=3600)
    """How long an answer (admitted, refused or unknown) is reused without asking Redis: a deleted key stops
    working on every instance within this, a new one starts. 0: ask Redis every time."""
    timeout_seconds: float = Field(2.0, gt=0, le=60)
    """The longest one lookup may take, connecting and retrying included; a slower or unreachable Redis gets 503
    naming Redis (never an admission). Answers still in the cache keep being used until they age out."""

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None and not re.fullmatch(r"(rediss?|unix)://\S+", url):
            raise ValueError("use a redis://host:port/db, rediss://... or unix:///path URL")
        return url

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        if not re.fullmatch(r"[\x21-\x7e]{1,200}", prefix):
            raise ValueError("use 1-200 printable ASCII characters without spaces, such as 'mcp-platform:token:'")
        return prefix


_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
"""An HTTP header name (RFC 9110 token), bounded."""
_FORWARDED_HEADERS = frozenset({"authorization", "host", "content-length", "transfer-encoding", "connection",
                                "x-forwarded-method", "x-forwarded-uri", "x-forwarded-for", "x-forwarded-host",
                                "x-forwarded-proto", "x-original-method", "x-original-url"})
"""What the forward verifier sets itself on its request to the auth service; `auth.forward.headers` may not."""


class ForwardAuthSettings(_Section):
    """`auth.mode` entry `forward`: each credential no earlier verifier claimed is decided by an HTTP auth service,
    the way nginx `auth_request` and Traefik `forwardAuth` ask oauth2-proxy, Authelia or a service of your own. It
    claims every credential that reaches it, so it goes last in `auth.mode`."""

    url: str | None = None
    """The auth service's endpoint, `http://` or `https://` (required when `auth.mode` has `forward`), e.g.
    `http://oauth2-proxy:4180/oauth2/auth` or `http://authelia:9091/api/authz/forward-auth`. It receives the
    client's `Authorization` header as sent plus `X-Forwarded-Method`, `-Uri`, `-For`, `-Host`, `-Proto` (and
    `X-Original-Method`/`-URL` for nginx-style endpoints); nothing else of the request, no body, no cookies. 2xx
    admits; 401 is our 401 `invalid_token`; 403 our 403; anything else (3xx, other 4xx, 5xx, a timeout, no
    connection) is 503 naming the auth service, never "allow". Redirects are not followed. No credentials in the
    URL: put them in `headers`."""
    method: Literal["GET", "HEAD", "POST"] = "GET"
    """The HTTP method of the request to the auth service (POST sends an empty body)."""
    timeout_seconds: float = Field(2.0, gt=0, le=60)
    """Longest wait for the auth service's answer, connecting included; then 503."""
    principal_header: str = "X-Auth-Request-User"
    """The response header naming the caller on a 2xx (oauth2-proxy with `--set-xauthrequest`:
    `X-Auth-Request-User`; Authelia: `Remote-User`). 1-256 of `A-Z a-z 0-9 _ . @ + = : / -`. A 2xx without it is a
    misconfiguration, answered 503, never "allow"."""
    scopes_header: str = "X-Auth-Request-Scopes"
    """The response header with the caller's scopes, separated by spaces or commas: `read`, `write`, `admin`, or
    names `scope_map` translates; other names are ignored (a groups header lists more than ours). Absent:
    `default_scopes`."""
    default_scopes: list[Literal["read", "write", "admin"]] = ["read"]
    """The scopes of an admitted caller whose answer has no `scopes_header`."""
    scope_map: dict[str, Literal["read", "write", "admin"]] = {}
    """The auth service's scope or group names -> ours, e.g. `{ "mcp-admins" = "admin" }` with
    `scopes_header = "Remote-Groups"` (Authelia)."""
    headers: dict[str, SecretStr] = {}
    """Static headers added to every request to the auth service, e.g. a shared secret that tells it the request
    is ours. Values are secrets: never logged or shown. Cannot replace the headers the verifier sets."""
    cache_seconds: float = Field(5.0, ge=0, le=3600)
    """How long a decision (admit, 401, 403; never a 503) is reused for the same token, on this instance. A token the
    auth service revokes stops working within this time. 0: ask on every request."""
    cache_size: int = Field(10_000, ge=1, le=1_000_000)
    """Decisions kept at most; the oldest go first."""
    max_connections: int = Field(100, ge=1, le=10_000)
    """Connections to the auth service at most (pooled, kept alive); requests beyond wait, within the timeout."""

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (raises on a malformed port)
        except ValueError:
            raise ValueError("is not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("may not hold credentials; put them in auth.forward.headers")
        if parts.fragment or len(url) > 2048 or any(not "!" <= c <= "~" for c in url):
            raise ValueError("must be at most 2048 printable ASCII characters, without a #fragment")
        return url

    @field_validator("principal_header", "scopes_header")
    @classmethod
    def _header_name(cls, name: str) -> str:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError("must be an HTTP header name (1-64 of A-Z a-z 0-9 and !#$%&'*+.^_`|~-)")
        return name

    @field_validator("scope_map")
    @classmethod
    def _scope_names(cls, table: dict[str, str]) -> dict[str, str]:
        for name in table:
            if not 1 <= len(name) <= 128 or any(not "!" <= c <= "~" or c == "," for c in name):
                raise ValueError(f"{name[:60]!r}: a scope or group name is 1-128 printable ASCII characters, no "
                                 "space or comma")
        return table

    @field_validator("headers")
    @classmethod
    def _static_headers(cls, headers: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name[:60]!r} is not an HTTP header name")
            if name.lower() in _FORWARDED_HEADERS:
                raise ValueError(f"{name} is set by the forward verifier itself")
            text = value.get_secret_value()
            if len(text) > 4096 or any(not (" " <= c <= "~" or c == "\t") for c in text):
                raise ValueError(f"the value of {name} must be at most 4096 printable ASCII characters")
        return headers


class AuthSettings(_Section):
    mode: Annotated[list[AuthMode], NoDecode] = ["bearer"]
    """The verifiers a bearer credential is tried against, in order; the first that knows it decides (valid, or
    401 `invalid_token`), one that does not passes it to the next. One that cannot decide (its service is down)
    lets the later ones try; if none claims the credential the answer is 503 naming what is down, never "allow"
    (a JWT whose JWKS is down gets that 503 at once). `forward` claims every credential, so it must be last.
    `bearer`: the named tokens of
    `mcp-platform token`. `oauth`: JWT access tokens of an identity provider (`[auth.oauth]`). `redis`: tokens
    the platform keeps in Redis (`[auth.redis]`). `forward`: an HTTP auth service decides (`[auth.forward]`).
    `none` (alone): no auth, refused unless bound to loopback. A list, or one name or comma-separated names in
    `MCP_PLATFORM_AUTH__MODE`, e.g. `bearer,oauth`."""
    metrics_requires_token: bool = True
    """Whether `/metrics` needs a token (any scope)."""
    failed_auth_per_minute: int = Field(30, ge=1)
    """Failed authentications one client IP may make per minute before its further failures get 429. Only failures
    are limited: a valid token is admitted from any address. The IP is the socket's, or the forwarded one when
    the connection comes from one of `http.trusted_proxies`."""
    oauth: OAuthSettings = OAuthSettings()
    redis: RedisTokenSettings = RedisTokenSettings()
    forward: ForwardAuthSettings = ForwardAuthSettings()

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_list(cls, mode: Any) -> Any:
        if isinstance(mode, str):
            return [part.strip() for part in mode.split(",") if part.strip()]
        return mode

    @field_validator("mode")
    @classmethod
    def _mode_entries(cls, mode: list[AuthMode]) -> list[AuthMode]:
        if not mode:
            raise ValueError("name at least one verifier: bearer, oauth, redis, forward (or none)")
        if len(set(mode)) != len(mode):
            raise ValueError("each verifier may appear once")
        if "none" in mode and len(mode) > 1:
            raise ValueError("'none' turns auth off and cannot be combined with a verifier")
        if "forward" in mode and mode[-1] != "forward":
            raise ValueError("'forward' claims every credential it is asked about, so it must come last")
        return mode

    @model_validator(mode="after")
    def _forward_url(self) -> AuthSettings:
        if "forward" in self.mode and self.forward.url is None:
            raise ValueError("auth.forward.url is required when auth.mode has 'forward'")
        return self

    @property
    def off(self) -> bool:
        """Auth is off (`mode = "none"`): every caller is the anonymous principal with every scope."""
        return self.mode == ["none"]


class SessionSettings(_Section):
    ttl_seconds: float = Field(1800.0, gt=0)
    """Idle time after which a handshake-era session expires (then 404)."""
    max_sessions: int = Field(10_000, ge=1)
    """Open sessions at most. At the cap, `initialize` evicts the least recently used session of the token holding
    the most sessions; only when every token holds a single session does it get 503."""
    max_per_principal: int = Field(100, ge=1)
    """Open sessions one token may hold; its next `initialize` evicts its least recently used session (which then
    gets 404), so one caller cannot fill the session table and lock every other token out."""


class ToolSettings(_Section):
    dirs: list[Path] = [Path("tools")]
    """Folders whose `*.py` modules are imported at start to find `@tool` functions."""
    page_size: int = Field(100, ge=1, le=1000)
    """Tools (and prompts, resources) per page of a list result."""
    default_timeout_seconds: float = Field(60.0, gt=0)
    """How long a tool call may run unless the tool sets its own timeout."""
    read_only: bool = False
    """Remove every tool that is not read-only (overrides `enabled`)."""
    enabled: list[str] = ["*"]
    """The tools this deployment exposes: tool names, fnmatch globs over them (`*_record`) or toolsets
    (`toolset:orm`; a toolset is a built-in capability, `config flags metrics ratelimit audit static orm`, or a
    module of the tool folders, `tools/shop.py` -> `shop`). Hidden tools are absent from `tools/list` and unknown
    to `tools/call`, whatever the token. An entry that matches nothing is logged as a warning."""
    disabled: list[str] = []
    """Tools hidden even when `enabled` matches them (disabled wins); same entries as `enabled`."""
    max_result_bytes: int = Field(80_000, ge=1024)
    """Largest serialised tool result; bigger results become an error that asks for a smaller request (Claude Code
    refuses results above about 25k tokens)."""

    @field_validator("enabled", "disabled")
    @classmethod
    def _patterns(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            body = entry.removeprefix(TOOLSET_PREFIX)
            if not body or len(body) > 128 or not _TOOL_PATTERN.fullmatch(body):
                shown = entry if len(entry) <= 60 else entry[:60] + "..."
                raise ValueError(f"{shown!r} is neither a tool name nor a glob over tool names (1-128 of A-Z a-z "
                                 "0-9 _ . - and the wildcards * ? [...]), optionally after 'toolset:'")
        return entries


class StateSettings(_Section):
    url: str = "sqlite+aiosqlite:///.mcp-platform/state.db"
    """Where tokens, feature flags and the audit log are kept (SQLAlchemy async URL: SQLite, or
    `postgresql+asyncpg://...` when several instances share it)."""
    redis_url: str | None = None
    """`redis://host:6379/0` to share sessions, stream events, rate-limit counters and change notifications
    between instances. Unset: kept in this process (one instance)."""


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///.mcp-platform/app.db"
    """The application database the ORM tools read (SQLAlchemy async URL)."""
    reflect: bool = False
    """Also expose every table found in the database, read-only."""
    statement_timeout_seconds: float = Field(10.0, gt=0)
    max_rows: int = Field(500, ge=1)
    """Rows per page at most, whatever `limit` asks."""
    max_result_bytes: int = Field(30_000, ge=1024)
    """A page is cut (with a cursor to continue) before its JSON grows past this. The reply carries the page twice
    (structured, and as text for older clients), so keep it under half of `tools.max_result_bytes`."""


class StaticSettings(_Section):
    root: Path = Path("static")
    """Folder the static-file tools and resources serve; nothing outside it is reachable."""
    allow_hidden: bool = False
    """Serve dot-files and dot-folders."""
    max_read_bytes: int = Field(1024 * 1024, ge=1)
    """Most bytes one read returns."""
    watch_seconds: float = Field(2.0, ge=0)
    """How often the root is checked for changes to tell listening clients (0 turns watching off)."""


class RateLimitSettings(_Section):
    enabled: bool = True
    per_minute: float = Field(600.0, gt=0)
    """Sustained requests per minute for one principal (token)."""
    burst: int = Field(60, ge=1)
    """Requests one principal may make at once before the rate applies."""
    per_tool: dict[str, float] = {}
    """Optional per-tool limits, calls per minute per principal."""


class AuditSettings(_Section):
    retention: int = Field(10_000, ge=1)
    """Audit entries kept; older ones are deleted."""
    max_pending: int = Field(10_000, ge=1)
    """Entries that may wait to be written; beyond that, new tool calls wait before they run (in arrival order)."""
    admit_timeout_seconds: float = Field(5.0, gt=0)
    """How long a tool call waits for room in a full audit queue before it is refused with 503 and Retry-After;
    also the longest a writing call's reply waits for its audit entry to be committed."""


class LogSettings(_Section):
    format: Literal["text", "json"] = "text"
    """`text`: one readable line per record. `json`: one JSON object per line with time, level, logger, message and,
    for records written while a request is handled, request_id, principal, method, tool and trace_id (from a W3C
    `traceparent` in `params._meta` or the HTTP header). Secrets are masked in both; argument values never appear.
    The level stays the top-level `log_level`. Read at start: a change takes a restart."""
    tool_calls: bool | None = None
    """One INFO record per finished tool call (tool, principal, outcome, duration_ms, request_id; never the
    arguments). Unset: on with the `json` format, off with `text`."""


class TracingSettings(_Section):
    otlp_endpoint: str | None = None
    """OTLP/HTTP traces URL (e.g. `http://127.0.0.1:4318/v1/traces`): one server span per MCP request, after the
    MCP semantic conventions (refused ones and `initialize` included), with child spans for the SQL statements,
    Redis commands and static-file reads it causes, batched and exported there; the
    `mcp.server.operation.duration` and `mcp.server.session.duration` histograms go to the same collector's
    `/v1/metrics`. Needs the `otel` extra (`pip install 'mcp-platform[otel]'`). Unset: nothing is traced or
    instrumented, unless an OpenTelemetry SDK the operator set up (e.g. `opentelemetry-instrument`) is already the
    global tracer provider. Read at start."""
    record_arguments: bool = False
    """Put tool arguments and result content on spans (`gen_ai.tool.call.arguments`/`.result`), and the path of a
    static-file read (`file.path`). Off: they never leave the server; they may hold personal data or secrets."""
    service_name: str = "mcp-platform"
    """The `service.name` resource attribute of exported spans."""


class FeatureFlag(_Section):
    default: bool = False
    description: str = ""


class Settings(BaseSettings):
    """Everything the server reads. Build one with `load_settings()`; pass it down, never import it globally."""

    model_config = SettingsConfigDict(
        env_prefix="MCP_PLATFORM_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    name: str = "mcp-platform"
    """Server name reported to clients."""
    instructions: str | None = None
    """Optional instructions sent to clients in `initialize` and `server/discover`."""
    token: SecretStr | None = None
    """A token with every scope, from `MCP_PLATFORM_TOKEN`; named tokens live in the state store."""
    secret_key: SecretStr | None = None
    """Signs 2026-07-28 request state and cursors (32+ characters). Unset: a random key per process, so set the
    same value on every instance behind a load balancer."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """The lowest level of record written to stderr, in either `log.format`."""
    log: LogSettings = LogSettings()
    http: HttpSettings = HttpSettings()
    auth: AuthSettings = AuthSettings()
    sessions: SessionSettings = SessionSettings()
    tools: ToolSettings = ToolSettings()
    state: StateSettings = StateSettings()
    database: DatabaseSettings = DatabaseSettings()
    static: StaticSettings = StaticSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    audit: AuditSettings = AuditSettings()
    tracing: TracingSettings = TracingSettings()
    flags: dict[str, FeatureFlag] = {}
    """Feature flags: name -> default and description. Their current values live in the state store."""

    config_file: Path | None = Field(None, exclude=True)
    """The TOML file these settings were read from, if any (kept for reloads)."""

    @field_validator("flags")
    @classmethod
    def _flag_names(cls, flags: dict[str, FeatureFlag]) -> dict[str, FeatureFlag]:
        for name in flags:
            if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
                raise ValueError(f"flag name {name!r} may only hold letters, digits, '_', '-' and '.'")
        return flags

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    @property
    def is_loopback(self) -> bool:
        return self.http.host in LOOPBACK_HOSTS


def _config_path(config_file: Path | str | None) -> tuple[Path, bool]:
    if config_file is not None:
        return Path(config_file), True
    env = os.environ.get("MCP_PLATFORM_CONFIG")
    if env:
        return Path(env), True
    return DEFAULT_CONFIG_FILE, False


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Read settings from the TOML file, the environment and `overrides`.

    An explicitly named config file must exist. Invalid values raise `ConfigError` naming each field and why.
    """
    path, explicit = _config_path(config_file)
    if explicit and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path if path.is_file() else None)

    try:
        loaded = _FromFile(**overrides, config_file=path if path.is_file() else None)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, path)) from None
    except ValueError as exc:  # malformed TOML
        raise ConfigError(f"{path}: {exc}") from None
    # Hand back the plain class, so that equality and reload diffs compare like with like.
    return Settings.model_construct(**{name: getattr(loaded, name) for name in Settings.model_fields})


def describe_validation_error(exc: ValidationError, path: Path) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"])
        problems.append(f"{field}: {err['msg']}")
    return f"invalid settings (file {path}): " + "; ".join(problems)
