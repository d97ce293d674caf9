"""The five platform capabilities started in order, as the app's lifespan does, and wired to the core."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from mcp_platform.capabilities import audit, config, flags, metrics, ratelimit, start_capabilities
from mcp_platform.capabilities.audit import AuditLog
from mcp_platform.capabilities.flags import FlagStore
from mcp_platform.capabilities.metrics import Metrics
from mcp_platform.capabilities.ratelimit import RateLimiter
from mcp_platform.config_reload import ConfigManager
from mcp_platform.context import ToolContext
from mcp_platform.errors import RateLimited
from mcp_platform.hooks import Hooks, ToolCallRecord
from mcp_platform.settings import Settings, load_settings
from mcp_platform.stores.sql import StateDB
from mcp_platform.tool_registry import Registry
from tests.capabilities.support import host, principal
from tests.support import state_url

ORDER = (config, flags, metrics, ratelimit, audit)


def _write(path: Path, *, burst: int, retention: int, flag: str) -> None:
    path.write_text(
        f'[state]\nurl = "{state_url(path.parent)}"\n[static]\nroot = "{path.parent}"\n'
        f'[rate_limit]\nburst = {burst}\nper_tool = {{ slow_tool = 1 }}\n[audit]\nretention = {retention}\n'
        f'[flags.{flag}]\ndefault = true\ndescription = "a flag"\n'
    )


def test_capability_names_and_tools_match_the_catalogue() -> None:
    registry = Registry()
    for module in ORDER:
        registry.add_all(module.CAPABILITY.tools)
    assert [t.name for t in registry.all()] == sorted([
        "check_rate_limit", "cors_config", "feature_flags", "rate_limit_config", "recent_tool_calls",
        "reload_config", "server_config", "server_metrics", "set_feature_flag"])
    assert [m.CAPABILITY.name for m in ORDER] == ["config", "flags", "metrics", "ratelimit", "audit"]


@pytest.mark.anyio
async def test_started_capabilities_observe_calls_and_follow_reloads(tmp_path: Path) -> None:
    path = tmp_path / "mcp-platform.toml"
    _write(path, burst=3, retention=50, flag="beta")
    settings = load_settings(path)
    db = StateDB(settings.state.url)
    await db.start()
    core = host(settings=settings, state_db=db)
    hooks, backends = core.hooks, core.backends
    core.registry.add_all(flags.CAPABILITY.tools)
    try:
        async with AsyncExitStack() as stack:
            await start_capabilities([module.CAPABILITY for module in ORDER], core, stack)
            for tool_name in ("feature_flags", "not_registered"):
                await hooks.emit_tool_call(
                    ToolCallRecord("alice", tool_name, {"x": 1}, "ok", 0.01, 1_700_000_000.0, 1))
            hooks.emit_http_response(200)
            assert [(t.tool, t.calls) for t in backends.get(Metrics).snapshot().tools] == [
                ("feature_flags", 1), ("other", 1)]
            assert backends.get(Metrics).snapshot().requests_by_status == {"200": 1}
            assert [e.tool for e in await backends.get(AuditLog).recent(5)] == ["not_registered", "feature_flags"]

            limiter = backends.get(RateLimiter)
            await hooks.check_tool_call("alice", "slow_tool")
            with pytest.raises(RateLimited):
                await hooks.check_tool_call("alice", "slow_tool")
            for _ in range(3):
                await hooks.check_request("alice")
            with pytest.raises(RateLimited):
                await hooks.check_request("alice")
            for _ in range(settings.auth.failed_auth_per_minute):
                await hooks.check_auth_allowed("10.0.0.9")
                await hooks.note_auth_failure("10.0.0.9")
            with pytest.raises(RateLimited):
                await hooks.check_auth_allowed("10.0.0.9")
            assert backends.get(Metrics).snapshot().rate_limited_total == 3

            _write(path, burst=7, retention=9, flag="gamma")
            report = await backends.get(ConfigManager).reload()
            assert report.applied and not report.warnings
            assert limiter.describe()["per_principal"]["burst"] == 7
            assert backends.get(AuditLog).retention == 9
            assert [f.name for f in await backends.get(FlagStore).values()] == ["gamma"]
            ctx = ToolContext(principal=principal(), tool_name="t", request_id=1, protocol_version="2025-11-25",
                              core=core)
            assert ctx.settings is ctx.backend(Settings) is backends.get(ConfigManager).current
            assert ctx.settings.audit.retention == 9 and ctx.flag("gamma") is True
        assert hooks == Hooks()  # every callback removed at shutdown
    finally:
        await db.close()


@pytest.mark.anyio
async def test_config_tools_operate_the_manager_the_app_made(tmp_path: Path) -> None:
    path = tmp_path / "mcp-platform.toml"
    _write(path, burst=3, retention=50, flag="beta")
    made = ConfigManager(load_settings(path), overrides={"log_level": "debug"})
    core = host(config=made)
    async with AsyncExitStack() as stack:
        await start_capabilities([config.CAPABILITY], core, stack)
    assert core.backends.get(ConfigManager) is made
