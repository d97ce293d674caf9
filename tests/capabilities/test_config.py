from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_platform.capabilities.config import cors_config, reload_config, server_config
from mcp_platform.config_reload import ConfigManager, install_sighup
from mcp_platform.context import Backends
from mcp_platform.registry import Registry
from mcp_platform.settings import Settings, load_settings
from tests.capabilities.support import call, context, make_settings, principal, state_url, text

SECRET_PW = "pw-in-url-9f8e"


def _write(path: Path, port: int, *, extra: str = "") -> None:
    path.write_text(
        f'name = "test-server"\n{extra}\n'
        f'[http]\nport = {port}\n\n'
        f'[database]\nurl = "postgresql+asyncpg://app:{SECRET_PW}@db/app"\n\n'
        f'[state]\nurl = "{state_url(path.parent)}"\n\n'
        f'[static]\nroot = "{path.parent}"\n'
    )


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "mcp-platform.toml"
    _write(path, 8001)
    return path


def _backends(settings: Settings) -> tuple[ConfigManager, Backends]:
    manager = ConfigManager(settings)
    backends = Backends()
    backends.add(manager)
    return manager, backends


@pytest.mark.anyio
async def test_reload_with_a_valid_change_reports_the_diff_and_applies(config_file: Path) -> None:
    manager = ConfigManager(load_settings(config_file))
    seen: list[Settings] = []

    async def remember(new: Settings) -> None:
        seen.append(new)

    manager.on_reload.append(remember)
    _write(config_file, 9002, extra='instructions = "hello"')
    report = await manager.reload(dry_run=False)
    assert report.valid and report.applied and report.error is None
    assert [(c.field, c.old, c.new) for c in report.diff] == [("http.port", 8001, 9002),
                                                             ("instructions", None, "hello")]
    assert report.restart_required == ["http.port"]
    assert manager.current.http.port == 9002
    assert seen == [manager.current]
    assert SECRET_PW not in report.model_dump_json()


@pytest.mark.anyio
async def test_dry_run_reports_but_changes_nothing(config_file: Path) -> None:
    manager = ConfigManager(load_settings(config_file))
    before = manager.current
    _write(config_file, 9003)
    report = await manager.reload(dry_run=True)
    assert report.valid and not report.applied and report.dry_run
    assert [c.field for c in report.diff] == ["http.port"]
    assert manager.current is before


@pytest.mark.anyio
async def test_reload_of_an_invalid_file_changes_nothing_and_names_the_field(config_file: Path) -> None:
    manager = ConfigManager(load_settings(config_file))
    before = manager.current
    called: list[Settings] = []

    async def remember(new: Settings) -> None:
        called.append(new)

    manager.on_reload.append(remember)
    _write(config_file, 70000)  # out of range
    report = await manager.reload()
    assert not report.valid and not report.applied and report.diff == []
    assert report.error is not None and "http.port" in report.error
    assert manager.current is before and called == []

    config_file.write_text("this is = = not toml")
    report = await manager.reload()
    assert not report.valid and report.error and manager.current is before

    config_file.unlink()
    report = await manager.reload()
    assert not report.valid and report.error and "does not exist" in report.error


@pytest.mark.anyio
async def test_reload_without_a_config_file_says_so(tmp_path: Path) -> None:
    manager = ConfigManager(make_settings(tmp_path))
    report = await manager.reload()
    assert not report.valid and not report.applied
    assert report.error is not None and "no config file" in report.error


@pytest.mark.anyio
async def test_reload_reapplies_overrides(config_file: Path) -> None:
    manager = ConfigManager(load_settings(config_file, log_level="debug"), overrides={"log_level": "debug"})
    _write(config_file, 9004)
    report = await manager.reload()
    assert report.applied and manager.current.log_level == "debug"


@pytest.mark.anyio
async def test_a_failing_callback_is_reported_and_the_rest_still_run(config_file: Path) -> None:
    manager = ConfigManager(load_settings(config_file))
    ran: list[str] = []

    async def broken(new: Settings) -> None:
        raise RuntimeError(f"cannot use postgresql://u:{SECRET_PW}@h/db")

    async def fine(new: Settings) -> None:
        ran.append("fine")

    manager.on_reload.extend([broken, fine])
    _write(config_file, 9005)
    report = await manager.reload()
    assert report.applied and ran == ["fine"]
    assert len(report.warnings) == 1 and "broken" in report.warnings[0]
    assert SECRET_PW not in report.warnings[0]


@pytest.mark.anyio
async def test_server_config_tool_redacts_secrets(config_file: Path) -> None:
    _, backends = _backends(load_settings(config_file))
    result = await call(server_config, {}, context(backends))
    assert not result.is_error
    assert result.structured["config_file"] == str(config_file)
    assert result.structured["settings"]["database"]["url"] == "postgresql+asyncpg://app:***@db/app"
    assert SECRET_PW not in json.dumps(result.structured) and SECRET_PW not in text(result)


@pytest.mark.anyio
async def test_cors_config_tool(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, http={"cors": {"allow_origins": ["https://app.example"], "max_age": 60}})
    _, backends = _backends(settings)
    result = await call(cors_config, {}, context(backends))
    assert result.structured == {
        "allow_origins": ["https://app.example"], "allow_methods": ["GET", "POST", "DELETE"],
        "allow_headers": settings.http.cors.allow_headers, "allow_credentials": False, "max_age": 60,
    }


@pytest.mark.anyio
async def test_reload_config_tool(config_file: Path) -> None:
    manager, backends = _backends(load_settings(config_file))
    _write(config_file, 9006)
    ctx = context(backends, principal("root", "admin"))
    dry = await call(reload_config, {"dry_run": True}, ctx)
    assert dry.structured["applied"] is False and manager.current.http.port == 8001
    applied = await call(reload_config, {}, ctx)
    assert applied.structured["applied"] is True and applied.structured["diff"][0]["field"] == "http.port"
    assert manager.current.http.port == 9006


@pytest.mark.anyio
@pytest.mark.parametrize("arguments", [{"dry_run": "perhaps"}, {"dry_run": None}, {"dry_run": [True]},
                                       {"dry_run": "x" * 100_000}, {"unknown": 1}])
async def test_reload_config_rejects_hostile_arguments(config_file: Path, arguments: dict[str, object]) -> None:
    manager, backends = _backends(load_settings(config_file))
    before = manager.current
    result = await call(reload_config, arguments, context(backends, principal("root", "admin")))
    assert result.is_error and manager.current is before


@pytest.mark.anyio
@pytest.mark.parametrize("fn", [server_config, cors_config])
async def test_argumentless_tools_reject_arguments(tmp_path: Path, fn: Callable[..., Any]) -> None:
    _, backends = _backends(make_settings(tmp_path))
    result = await call(fn, {"surprise": "x" * 10_000}, context(backends))
    assert result.is_error and len(text(result)) < 1000


def test_tool_definitions_match_the_catalogue() -> None:
    registry = Registry()
    for fn in (server_config, cors_config):
        built = registry.add(fn)
        assert built.spec.scope == "read" and built.definition["annotations"]["readOnlyHint"] is True
        assert built.input_schema["properties"] == {}
    reload_tool = registry.add(reload_config)
    assert reload_tool.spec.scope == "admin"
    annotations = reload_tool.definition["annotations"]
    assert (annotations["readOnlyHint"], annotations["destructiveHint"], annotations["idempotentHint"]) == (
        False, False, True)
    assert reload_tool.input_schema["properties"]["dry_run"]["default"] is False


class _Signalled(logging.Handler):
    """Sets an event when the config logger writes, so the test waits for the outcome without polling."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.event = anyio.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.event.set()


@pytest.mark.anyio
@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
async def test_sighup_reloads_and_logs_no_secret(config_file: Path) -> None:
    manager = ConfigManager(load_settings(config_file))
    config_logger = logging.getLogger("mcp_platform.config_reload")
    handler = _Signalled()
    config_logger.addHandler(handler)
    old_level = config_logger.level
    config_logger.setLevel(logging.INFO)
    uninstall = install_sighup(manager)
    try:
        _write(config_file, 9007)
        with anyio.fail_after(5):
            os.kill(os.getpid(), signal.SIGHUP)
            await handler.event.wait()
    finally:
        uninstall()
        config_logger.removeHandler(handler)
        config_logger.setLevel(old_level)
    assert manager.current.http.port == 9007
    logged = "\n".join(handler.messages)
    assert "reloaded" in logged and "http.port" in logged and SECRET_PW not in logged
