"""Issue 3 end to end: the platform tools through the official client, in both eras, against a real server
with the full built-in catalogue."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from prometheus_client.parser import text_string_to_metric_families

from mcp_platform.app import create_app
from mcp_platform.context import Clock
from tests.support import TOKEN, TestClock, create_token, make_settings, mcp_client, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.wire]
MODES = ["legacy", "2026-07-28"]
FLAGS = {"maintenance_mode": {"default": False, "description": "Maintenance switch"},
         "beta": {"default": True, "description": "Beta features"}}


def _config(tmp: Path, extra: str = "") -> Path:
    config = tmp / "mcp-platform.toml"
    config.write_text('[flags.maintenance_mode]\ndefault = false\ndescription = "Maintenance switch"\n'
                      '[flags.beta]\ndefault = true\ndescription = "Beta features"\n' + extra)
    return config


def _settings(tmp: Path, **overrides: Any) -> Any:
    _config(tmp)
    return make_settings(tmp, **overrides)


class LogTrap(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_trap() -> Iterator[LogTrap]:
    trap = LogTrap()
    root = logging.getLogger()
    old = root.level
    root.addHandler(trap)
    root.setLevel(logging.DEBUG)
    yield trap
    root.removeHandler(trap)
    root.setLevel(old)


async def _structured(client: Any, tool: str, args: dict[str, Any] | None = None) -> Any:
    result = await client.call_tool(tool, args or {})
    assert result.is_error is False, result.content
    return result.structured_content


@pytest.mark.parametrize("mode", MODES)
async def test_every_platform_tool_answers(tmp_path: Path, mode: str, log_trap: LogTrap) -> None:
    settings = _settings(tmp_path, rate_limit={"per_minute": 6000, "burst": 1000})
    app = create_app(settings, clock=Clock(now=TestClock().now))
    with running_server(app) as base:
        async with mcp_client(base + "/mcp", mode) as client:
            config = await _structured(client, "server_config")
            assert config["settings"]["token"] == "**********"
            cors = await _structured(client, "cors_config")
            assert cors["allow_origins"] == []
            flags = await _structured(client, "feature_flags")
            assert {f["name"] for f in flags["flags"]} == {"beta", "maintenance_mode"}
            flipped = await _structured(client, "set_feature_flag", {"name": "maintenance_mode", "enabled": True})
            assert flipped["enabled"] is True
            unknown = await client.call_tool("set_feature_flag", {"name": "nope", "enabled": True})
            assert unknown.is_error and "maintenance_mode" in unknown.content[0].text  # type: ignore[union-attr]
            limits = await _structured(client, "rate_limit_config")
            assert limits["per_principal"]["burst"] == 1000
            first = await _structured(client, "check_rate_limit")
            second = await _structured(client, "check_rate_limit")
            assert first["remaining"] == second["remaining"]
            reload = await _structured(client, "reload_config", {"dry_run": True})
            assert reload["valid"] is True
            metrics = await _structured(client, "server_metrics")
            by_tool = {t["tool"]: t for t in metrics["tools"]}
            assert by_tool["set_feature_flag"]["calls"] >= 2 and by_tool["set_feature_flag"]["errors"] >= 1
            calls = await _structured(client, "recent_tool_calls", {"limit": 50})
            entries = calls["entries"]
            assert any(e["tool"] == "set_feature_flag" and e["principal"] == "env-token" for e in entries)
            assert "maintenance_mode" not in str(entries)  # a digest, never the argument values
        async with httpx2.AsyncClient() as http:
            scraped = await http.get(base + "/metrics", headers={"authorization": f"Bearer {TOKEN}"})
            assert (await http.get(base + "/metrics")).status_code == 401
    assert TOKEN not in str(config) and TOKEN not in scraped.text
    assert not any(TOKEN in line for line in log_trap.lines)


async def test_flag_survives_a_restart(tmp_path: Path) -> None:
    for expected_before, set_to in [(False, True), (True, None)]:
        app = create_app(_settings(tmp_path))
        with running_server(app) as base:
            async with mcp_client(base + "/mcp", "2026-07-28") as client:
                flags = {f["name"]: f for f in (await _structured(client, "feature_flags"))["flags"]}
                assert flags["maintenance_mode"]["enabled"] is expected_before
                if set_to is not None:
                    await _structured(client, "set_feature_flag", {"name": "maintenance_mode", "enabled": set_to})
                else:
                    assert flags["maintenance_mode"]["source"] == "store"


@pytest.mark.parametrize("mode", MODES)
async def test_burst_gets_429_and_recovers_when_time_moves(tmp_path: Path, mode: str) -> None:
    clock = TestClock()
    app = create_app(_settings(tmp_path, rate_limit={"per_minute": 60, "burst": 8}), clock=Clock(now=clock.now))
    with running_server(app) as base:
        async with mcp_client(base + "/mcp", mode) as client:
            refused = None
            for _ in range(12):
                try:
                    await client.call_tool("feature_flags", {})
                except MCPError as exc:
                    refused = exc
                    break
            assert refused is not None and refused.error.code == -32029
            assert refused.error.data["retryAfter"] >= 1
            budget = await _structured(client, "check_rate_limit")  # free: works while throttled
            assert budget["remaining"] < 1
            clock.advance(5)  # five seconds at one request per second
            assert (await client.call_tool("feature_flags", {})).is_error is False
        headers = {"authorization": f"Bearer {TOKEN}", "accept": "application/json, text/event-stream",
                   "content-type": "application/json"}
        async with httpx2.AsyncClient() as http:
            statuses = []
            for i in range(12):
                response = await http.post(base + "/mcp", headers=headers, json={
                    "jsonrpc": "2.0", "id": i, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}})
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert int(response.headers["retry-after"]) >= 1
                    break
            assert statuses[-1] == 429


async def test_read_only_token_sees_no_write_or_admin_tools(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    reader = await create_token(settings, "reader", ["read"])
    app = create_app(settings)
    with running_server(app) as base:
        for mode in MODES:
            async with mcp_client(base + "/mcp", mode, token=reader) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert "feature_flags" in names and "query_records" in names
                assert not names & {"set_feature_flag", "reload_config", "recent_tool_calls", "create_record",
                                    "update_record", "delete_record"}
                with pytest.raises(MCPError) as refused:
                    await client.call_tool("set_feature_flag", {"name": "beta", "enabled": False})
                assert refused.value.error.code == -32003
                assert "write" in refused.value.error.message


async def test_reload_reports_the_field_or_applies_the_diff(tmp_path: Path) -> None:
    config = _config(tmp_path)
    app = create_app(make_settings(tmp_path))
    with running_server(app) as base:
        async with mcp_client(base + "/mcp", "2026-07-28") as client:
            config.write_text(config.read_text() + "\n[tools]\npage_size = 'lots'\n")
            bad = await _structured(client, "reload_config", {})
            assert bad["valid"] is False and bad["applied"] is False and "tools.page_size" in bad["error"]
            config.write_text(config.read_text().replace("page_size = 'lots'", "page_size = 7"))
            good = await _structured(client, "reload_config", {})
            assert good["applied"] is True
            assert {"field": "tools.page_size", "old": 100, "new": 7} in good["diff"]
            page = await client.session.list_tools()
            assert len(page.tools) == 7 and page.next_cursor is not None


async def test_prometheus_series_match_server_metrics(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path))
    with running_server(app) as base:
        async with mcp_client(base + "/mcp", "2026-07-28") as client:
            for _ in range(3):
                await client.call_tool("feature_flags", {})
            await client.call_tool("set_feature_flag", {"name": "nope", "enabled": True})
            snapshot = await _structured(client, "server_metrics")
        async with httpx2.AsyncClient() as http:
            text = (await http.get(base + "/metrics", headers={"authorization": f"Bearer {TOKEN}"})).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    calls = {labels: value for (name, labels), value in samples.items() if name == "mcp_platform_tool_calls_total"}
    by_tool = {t["tool"]: t for t in snapshot["tools"]}
    assert calls[(("outcome", "ok"), ("tool", "feature_flags"))] == by_tool["feature_flags"]["calls"] == 3
    assert calls[(("outcome", "error"), ("tool", "set_feature_flag"))] == by_tool["set_feature_flag"]["errors"] == 1
