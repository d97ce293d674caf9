"""Configuration tools: the current settings, the CORS policy, and hot reload with a redacted diff.

The settings in effect and their reload live in `ConfigManager` (mcp_platform/config_reload.py, core); these tools
show them and trigger a reload.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from urllib.parse import urlsplit

from pydantic import BaseModel, JsonValue

from mcp_platform.capabilities import Capability, Started
from mcp_platform.config_reload import ConfigManager, ReloadReport
from mcp_platform.context import ToolContext
from mcp_platform.core import Core
from mcp_platform.errors import ConfigError
from mcp_platform.protected_resource import resolve
from mcp_platform.redact import redact_settings
from mcp_platform.registry import tool
from mcp_platform.settings import Settings

__all__ = ["CAPABILITY", "AuthMethod", "CorsConfig", "ServerConfig", "cors_config", "describe_auth", "reload_config",
           "server_config"]


class AuthMethod(BaseModel):
    mode: str
    """An `auth.mode` entry, in the order credentials are tried."""
    details: dict[str, JsonValue]
    """What an operator checks of it: issuer, resource and metadata URL, where tokens are looked up, the auth
    service's URL (no query, no credentials). Never a secret, a key or a token."""


class ServerConfig(BaseModel):
    config_file: str | None
    """The file the settings were read from (environment variables may override it)."""
    authentication: list[AuthMethod]
    """The verifiers in effect, in order (empty: auth is off). Read at start: a reloaded change acts on restart."""
    settings: dict[str, JsonValue]
    """Every effective setting; secrets are replaced by `**********`, URL passwords by `***`."""


def _url(url: str | None) -> str | None:
    """A URL to show: no user info, no query, no fragment."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{netloc}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _oauth(settings: Settings) -> dict[str, JsonValue]:
    oauth = settings.auth.oauth
    try:
        resolved = resolve(settings)
    except ConfigError as exc:
        return {"problem": str(exc)}
    return {"issuer": resolved.issuer, "resource": resolved.resource, "metadata": resolved.metadata_url,
            "audience": list(resolved.audience), "authorization_servers": list(resolved.authorization_servers),
            "scopes_supported": list(resolved.scopes), "keys": oauth.key_source,
            "jwks_url": _url(oauth.jwks_url), "algorithms": list(oauth.algorithms)}


def describe_auth(settings: Settings) -> list[AuthMethod]:
    """`auth.mode` as an operator reads it, from the settings alone (no secret is among what is read)."""
    if settings.auth.off:
        return []
    auth = settings.auth
    details: dict[str, dict[str, JsonValue]] = {
        "bearer": {"tokens": "named tokens of `mcp-platform token` (hashes in the state database)",
                   "env_token": settings.token is not None},
        "redis": {"url": _url(auth.redis.url or settings.state.redis_url), "key_prefix": auth.redis.key_prefix,
                  "cache_seconds": auth.redis.cache_seconds},
        "forward": {"url": _url(auth.forward.url), "principal_header": auth.forward.principal_header,
                    "scopes_header": auth.forward.scopes_header, "cache_seconds": auth.forward.cache_seconds},
    }
    return [AuthMethod(mode=mode, details=_oauth(settings) if mode == "oauth" else details[mode])
            for mode in auth.mode]


class CorsConfig(BaseModel):
    allow_origins: list[str]
    allow_methods: list[str]
    allow_headers: list[str]
    allow_credentials: bool
    max_age: int
    """Seconds a browser may cache a preflight answer."""


@tool(read_only=True, title="Server configuration")
async def server_config(ctx: ToolContext) -> ServerConfig:
    """Show the server's effective configuration (file, environment and defaults combined), with every secret
    redacted: tokens and secret-named values appear as `**********` and URL passwords as `***`. `authentication`
    lists the verifiers credentials are tried against, in order, with what an operator checks of each."""
    manager = ctx.backend(ConfigManager)
    settings = manager.current
    path = settings.config_file
    return ServerConfig(config_file=str(path) if path is not None else None, authentication=describe_auth(settings),
                        settings=redact_settings(settings))


@tool(read_only=True, title="CORS policy")
async def cors_config(ctx: ToolContext) -> CorsConfig:
    """Show the CORS policy browsers get for the MCP endpoint: allowed origins, methods, headers, whether
    credentials are allowed, and how long a preflight answer may be cached. No origins means no CORS headers."""
    cors = ctx.backend(ConfigManager).current.http.cors
    return CorsConfig(allow_origins=list(cors.allow_origins), allow_methods=list(cors.allow_methods),
                      allow_headers=list(cors.allow_headers), allow_credentials=cors.allow_credentials,
                      max_age=cors.max_age)


@tool(read_only=False, destructive=False, idempotent=True, scope="admin", title="Reload configuration")
async def reload_config(ctx: ToolContext, dry_run: bool = False) -> ReloadReport:
    """Re-read the config file, validate all of it, and apply it if valid, reporting what changed (secrets
    redacted). An invalid file changes nothing and the report's `error` names each bad field and why. Some
    settings (listed in `restart_required`) only take effect after a restart.

    Args:
        dry_run: Only validate and show the diff; change nothing.
    """
    return await ctx.backend(ConfigManager).reload(dry_run=dry_run)


async def _start(core: Core, stack: AsyncExitStack) -> Started:
    # The reload manager is core (the app and other capabilities are told of reloads); these tools operate it.
    return Started(backends=[core.config])


CAPABILITY = Capability(name="config", tools=[server_config, cors_config, reload_config], start=_start)
