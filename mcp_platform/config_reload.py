"""Config reload: the settings in effect, re-read from their file on demand or on SIGHUP.

`ConfigManager` owns the settings object the running server uses. A reload re-reads the file the settings came
from, validates all of it, and only when it is valid swaps the object and tells the `on_reload` callbacks (flag
declarations, rate limits, CORS...). An invalid file changes nothing. This is core, not a capability: the app and
several capabilities hold the manager; the `reload_config` tool (capabilities/config.py) is one way in.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import anyio.to_thread
from pydantic import BaseModel, JsonValue

from mcp_platform.errors import ConfigError
from mcp_platform.redact import diff_settings, redact_text
from mcp_platform.settings import Settings, load_settings

__all__ = ["RESTART_FIELDS", "ConfigManager", "ReloadCallback", "ReloadReport", "SettingChange", "install_sighup"]

logger = logging.getLogger(__name__)

ReloadCallback = Callable[[Settings], Awaitable[None]]
"""Told the new settings after a reload was applied."""

RESTART_FIELDS: tuple[str, ...] = ("http.host", "http.port", "http.path", "state.url", "database.url", "tools.dirs",
                                   "auth.mode", "auth.oauth", "auth.redis", "auth.forward", "log_level", "log.format")
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
