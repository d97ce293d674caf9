"""Configuration: the current settings, hot reload with a redacted diff, and the tools that show them.

`ConfigManager` owns the settings object the running server uses. A reload re-reads the file the settings came
from, validates all of it, and only when it is valid swaps the object and tells the `on_reload` callbacks (flag
declarations, rate limits, CORS...). An invalid file changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.to_thread
from pydantic import BaseModel, JsonValue

from mcp_platform.capabilities import Capability
from mcp_platform.context import Backends, ToolContext
from mcp_platform.errors import ConfigError
from mcp_platform.redact import diff_settings, redact_settings, redact_text
from mcp_platform.registry import tool
from mcp_platform.settings import Settings, load_settings

__all__ = ["CAPABILITY", "ConfigManager", "CorsConfig", "ReloadCallback", "ReloadReport", "ServerConfig",
           "SettingChange", "cors_config", "install_sighup", "reload_config", "server_config"]

logger = logging.getLogger(__name__)

ReloadCallback = Callable[[Settings], Awaitable[None]]
"""Told the new settings after a reload was applied."""

RESTART_FIELDS: tuple[str, ...] = ("http.host", "http.port", "http.path", "state.url", "database.url", "tools.dirs",
                                   "auth.mode")
"""Settings read once at start: a change to them is applied to the settings object but takes a restart to act."""


class SettingChange(BaseModel):
    field: str
    """Dotted path of the setting, e.g. `rate_limit.per_minute`."""
    old: JsonValue
    new: JsonValue


class ReloadReport(BaseModel):
    valid: bool
    """Whether the file was read and every setting in it is valid."""
    applied: bool
    """Whether the new settings are now in effect (never on a dry run or an invalid file)."""
    dry_run: bool
    config_file: str | None
    diff: list[SettingChange] = []
    """What differs from the settings in effect before this call; secrets show only as masks."""
    restart_required: list[str] = []
    """Changed settings that only take effect after a restart."""
    error: str | None = None
    """Why the file is invalid or could not be read; names the field and the problem."""
    warnings: list[str] = []


class ServerConfig(BaseModel):
    config_file: str | None
    """The file the settings were read from (environment variables may override it)."""
    settings: dict[str, JsonValue]
    """Every effective setting; secrets are replaced by `**********`, URL passwords by `***`."""


class CorsConfig(BaseModel):
    allow_origins: list[str]
    allow_methods: list[str]
    allow_headers: list[str]
    allow_credentials: bool
    max_age: int
    """Seconds a browser may cache a preflight answer."""


class ConfigManager:
    """Holds the settings in effect and reloads them from their file."""

    def __init__(
        self,
        settings: Settings,
        *,
        overrides: Mapping[str, Any] | None = None,
        loader: Callable[..., Settings] = load_settings,
        restart_fields: Sequence[str] = RESTART_FIELDS,
    ) -> None:
        self._settings = settings
        # Command-line overrides outrank the file, so a reload must apply them again.
        self._overrides = dict(overrides or {})
        self._loader = loader
        self._restart_fields = tuple(restart_fields)
        self._lock = anyio.Lock()
        self.on_reload: list[ReloadCallback] = []

    @property
    def current(self) -> Settings:
        return self._settings

    async def reload(self, dry_run: bool = False) -> ReloadReport:
        """Re-read and validate the config file; apply it unless `dry_run` or invalid. Never raises for a bad file."""
        async with self._lock:
            path = self._settings.config_file
            if path is None:
                return ReloadReport(
                    valid=False, applied=False, dry_run=dry_run, config_file=None,
                    error="There is no config file to reload: the server started without one (none was named with "
                          "--config or MCP_PLATFORM_CONFIG, and mcp-platform.toml did not exist). Restart it with a "
                          "config file to enable reloads.",
                )
            try:
                new = await anyio.to_thread.run_sync(lambda: self._loader(path, **self._overrides))
            except (ConfigError, OSError, ValueError) as exc:
                return ReloadReport(valid=False, applied=False, dry_run=dry_run, config_file=str(path),
                                    error=redact_text(str(exc)))
            changes = [SettingChange.model_validate(change) for change in diff_settings(self._settings, new)]
            report = ReloadReport(
                valid=True, applied=not dry_run, dry_run=dry_run, config_file=str(path), diff=changes,
                restart_required=[c.field for c in changes if _under(c.field, self._restart_fields)],
            )
            if dry_run:
                return report
            self._settings = new
            if changes:
                report.warnings = await self._notify(new)
            return report

    async def _notify(self, new: Settings) -> list[str]:
        warnings = []
        for callback in list(self.on_reload):
            try:
                await callback(new)
            except Exception as exc:
                name = getattr(callback, "__qualname__", repr(callback))
                logger.exception("config reload callback %s failed", name)
                warnings.append(f"applying the new settings in {name} failed: {redact_text(str(exc))}")
        return warnings


def _under(field: str, prefixes: Sequence[str]) -> bool:
    return any(field == prefix or field.startswith(prefix + ".") for prefix in prefixes)


def install_sighup(manager: ConfigManager) -> Callable[[], None]:
    """Reload the config on SIGHUP (Unix, main thread, running loop). Returns a function that uninstalls the
    handler; where signals are unsupported both are no-ops."""
    signum = getattr(signal, "SIGHUP", None)
    if signum is None:
        return lambda: None
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()  # a task with no reference may be garbage-collected mid-flight

    def on_signal() -> None:
        task = loop.create_task(_reload_and_log(manager))
        running.add(task)
        task.add_done_callback(running.discard)

    try:
        loop.add_signal_handler(signum, on_signal)
    except (NotImplementedError, RuntimeError, ValueError):
        logger.info("SIGHUP reloads are not available on this platform or thread")
        return lambda: None

    def uninstall() -> None:
        loop.remove_signal_handler(signum)

    return uninstall


async def _reload_and_log(manager: ConfigManager) -> None:
    try:
        report = await manager.reload(dry_run=False)
    except Exception:
        logger.exception("config reload on SIGHUP failed")
        return
    if report.applied:
        # Field names only: values could be secrets.
        logger.info("config reloaded from %s on SIGHUP: %d change(s) %s", report.config_file, len(report.diff),
                    ", ".join(change.field for change in report.diff))
        for warning in report.warnings:
            logger.warning("config reload: %s", warning)
    else:
        logger.error("config reload on SIGHUP failed, nothing changed: %s", report.error)


@tool(read_only=True, title="Server configuration")
async def server_config(ctx: ToolContext) -> ServerConfig:
    """Show the server's effective configuration (file, environment and defaults combined), with every secret
    redacted: tokens and secret-named values appear as `**********` and URL passwords as `***`."""
    manager = ctx.backend(ConfigManager)
    settings = manager.current
    path = settings.config_file
    return ServerConfig(config_file=str(path) if path is not None else None, settings=redact_settings(settings))


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


async def _start(settings: Settings, backends: Backends, stack: AsyncExitStack) -> None:
    # The app may have made its own manager (to pass command-line overrides); keep that one.
    manager = backends.find(ConfigManager)
    if manager is None:
        manager = ConfigManager(settings)
        backends.add(manager)

    async def publish(new: Settings) -> None:
        # Tools that look the settings up in the backends see the reloaded ones.
        if backends.find(Settings) is not None:
            backends.add(new, Settings)

    manager.on_reload.append(publish)


CAPABILITY = Capability(name="config", tools=[server_config, cors_config, reload_config], start=_start)
