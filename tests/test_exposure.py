"""Choosing what a deployment exposes: `tools.enabled` / `tools.disabled` / `tools.read_only`, at start, over the
wire, on reload, and in `mcp-platform tools`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_platform.app import AppState, create_app
from mcp_platform.cli import main
from mcp_platform.errors import ConfigError
from mcp_platform.exposure import Exposure
from mcp_platform.onboarding.llms import build_registry
from tests.support import FIXTURE_TOOLS, asgi_client, make_settings, modern_headers, modern_request

pytestmark = pytest.mark.anyio

DEMO = [FIXTURE_TOOLS]
"""The fixture tools: their toolset is `demo` (tests/fixtures/tools/demo.py)."""


def _registry(**rules: Any) -> tuple[set[str], dict[str, str]]:
    registry, failures = build_registry(Path.cwd(), dirs=DEMO, exposure=Exposure(**rules))
    assert failures == {}
    return {t.name for t in registry.all()}, {t.name: why for t, why in registry.hidden()}


@pytest.mark.parametrize("entry", ["", "[", "[a", "a]", "toolset:", "a" * 129, "a" * 10_000, "é", "add\n", " add",
                                   "toolset:or m", "tool\x00", "../x", "*_récord", "toolset:[", "[]"])
def test_a_malformed_entry_is_a_config_error_naming_the_setting(tmp_path: Path, entry: str) -> None:
    for field in ("enabled", "disabled"):
        with pytest.raises(ConfigError) as refused:
            make_settings(tmp_path, tools={"dirs": DEMO, field: [entry]})
        assert f"tools.{field}" in str(refused.value)
        assert len(str(refused.value)) < 600  # a huge entry is not echoed whole


@pytest.mark.parametrize("entry", ["*", "add", "*_record", "get_?ecord", "[cd]*", "[!x]*", "toolset:orm",
                                   "toolset:*", "a" * 128, "server.v2-x"])
def test_names_globs_and_toolsets_are_accepted(tmp_path: Path, entry: str) -> None:
    settings = make_settings(tmp_path, tools={"dirs": DEMO, "enabled": [entry], "disabled": [entry]})
    assert settings.tools.enabled == [entry] and settings.tools.disabled == [entry]


def test_everything_is_exposed_by_default() -> None:
    exposed, hidden = _registry()
    assert hidden == {} and {"add", "write_thing", "query_records", "recent_tool_calls"} <= exposed


def test_disabled_wins_over_enabled() -> None:
    exposed, hidden = _registry(enabled=("add", "echo"), disabled=("echo",))
    assert exposed == {"add"}
    assert hidden["echo"] == "disabled by 'echo'"
    assert hidden["query_records"] == "matched by no tools.enabled entry"


def test_toolsets_are_the_capabilities_and_the_tool_modules() -> None:
    exposed, hidden = _registry(enabled=("toolset:orm", "toolset:demo", "toolset:static"), disabled=("toolset:flags",))
    assert {"query_records", "delete_record", "add", "admin_thing", "read_static_file"} <= exposed
    assert not exposed & {"server_config", "feature_flags", "recent_tool_calls", "server_metrics", "check_rate_limit"}
    assert hidden["set_feature_flag"] == "disabled by 'toolset:flags'"
    exposed, _ = _registry(enabled=("toolset:config", "toolset:metrics", "toolset:ratelimit", "toolset:audit"))
    assert exposed == {"server_config", "cors_config", "reload_config", "server_metrics", "rate_limit_config",
                       "check_rate_limit", "recent_tool_calls"}


def test_globs_match_tool_names_and_toolset_names() -> None:
    exposed, _ = _registry(enabled=("*_record", "toolset:rate*"), disabled=("delete_*",))
    assert exposed == {"get_record", "create_record", "update_record", "check_rate_limit", "rate_limit_config"}


def test_read_only_overrides_an_explicit_enable() -> None:
    exposed, hidden = _registry(enabled=("write_thing", "add", "delete_record"), disabled=("add",), read_only=True)
    assert exposed == set()
    assert hidden["write_thing"] == "writes, and the server is read-only"
    assert hidden["add"] == "disabled by 'add'"
    assert hidden["delete_record"] == "writes, and the server is read-only"


def test_entries_that_match_nothing_are_reported_not_refused() -> None:
    registry, _ = build_registry(Path.cwd(), dirs=DEMO,
                                 exposure=Exposure(enabled=("add", "toolset:nope", "typo_*"), disabled=("gone",)))
    assert registry.unmatched_entries() == ["toolset:nope", "typo_*", "gone"]
    assert [t.name for t in registry.all()] == ["add"]


async def _post(client: httpx2.AsyncClient, method: str, params: dict[str, Any] | None = None,
                name: str | None = None) -> dict[str, Any]:
    response = await client.post("/mcp", headers=modern_headers(method, name=name),
                                 json=modern_request(method, params))
    body: dict[str, Any] = response.json()
    return body


async def _listed(client: httpx2.AsyncClient) -> set[str]:
    return {t["name"] for t in (await _post(client, "tools/list"))["result"]["tools"]}


async def _call(client: httpx2.AsyncClient, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return await _post(client, "tools/call", {"name": name, "arguments": arguments}, name=name)


async def test_a_disabled_tool_is_absent_from_the_list_and_unknown_to_calls(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, tools={"dirs": DEMO, "disabled": ["echo", "toolset:orm"]})
    async with asgi_client(create_app(settings)) as client:
        names = await _listed(client)
        assert "add" in names and "echo" not in names and "query_records" not in names
        unknown = await _call(client, "no_such_tool", {"text": "x"})
        for hidden in ("echo", "query_records"):
            refused = await _call(client, hidden, {"text": "x"})
            assert refused["error"]["code"] == unknown["error"]["code"] == -32602
            assert "result" not in refused
        assert (await _call(client, "add", {"a": 1, "b": 2}))["result"]["structuredContent"] == {"total": 3}
        served = (await client.get("/llms-full.txt")).text  # the server's own reference: what it serves
        assert "\n### add\n" in served and "\n### echo\n" not in served and "\n### query_records\n" not in served
        assert "- `toolset:orm`" not in served and "- `toolset:demo`: " in served


async def test_a_reload_that_changes_the_filter_shows_and_hides_tools_and_announces_it(tmp_path: Path) -> None:
    config = tmp_path / "mcp-platform.toml"
    config.write_text('[tools]\ndisabled = ["echo"]\n')
    settings = make_settings(tmp_path, tools={"dirs": DEMO})
    assert settings.tools.disabled == ["echo"]  # from the file: make_settings passes only `dirs`
    app = create_app(settings)
    async with asgi_client(app) as client:
        state: AppState = app.state.mcp
        announced = anyio.Event()

        async def on_change() -> None:
            announced.set()

        state.registry.on_change.append(on_change)
        assert "echo" not in await _listed(client)
        config.write_text('[tools]\ndisabled = ["add"]\n')
        report = await _call(client, "reload_config", {})
        assert report["result"]["structuredContent"]["applied"] is True
        with anyio.fail_after(5):
            await announced.wait()
        names = await _listed(client)
        assert "echo" in names and "add" not in names
        assert (await _call(client, "add", {"a": 1, "b": 2}))["error"]["code"] == -32602
        assert (await _call(client, "echo", {"text": "back"}))["result"]["structuredContent"] == {"result": "back"}


async def test_read_only_still_hides_writing_tool_modules_after_a_reload(tmp_path: Path) -> None:
    config = tmp_path / "mcp-platform.toml"
    config.write_text("[tools]\npage_size = 50\n")
    # As `serve --read-only` starts it: the override applied, and kept for every reload.
    app = create_app(make_settings(tmp_path, tools={"dirs": DEMO, "read_only": True}),
                     overrides={"tools": {"dirs": DEMO, "read_only": True}})
    async with asgi_client(app) as client:
        assert "write_thing" not in await _listed(client)
        config.write_text("[tools]\npage_size = 40\n")  # any change: the reload re-scans the tool folders
        report = await app.state.mcp.core.config.reload()
        assert report.applied and report.diff
        names = await _listed(client)
        assert "add" in names and "write_thing" not in names and "admin_thing" not in names
        assert (await _call(client, "write_thing", {"value": "x"}))["error"]["code"] == -32602


def test_the_tools_command_shows_what_a_configuration_exposes_and_why_the_rest_is_hidden(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "support.toml"
    config.write_text('[tools]\nenabled = ["toolset:demo", "*_record", "typo"]\ndisabled = ["echo", "delete_*"]\n')
    args = ["tools", "--config", str(config), "--tools-dir", str(FIXTURE_TOOLS)]
    assert main(args) == 0
    shown = capsys.readouterr()
    rows = {line.split()[0]: line for line in shown.out.splitlines() if line.strip()}
    assert "add" in rows and "demo" in rows["add"] and "get_record" in rows and "orm" in rows["get_record"]
    assert "echo" not in rows and "delete_record" not in rows and "server_config" not in rows
    assert "(--all lists them)" in shown.out
    assert "'typo' matches no tool and no toolset" in shown.err

    assert main([*args, "--all"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "HIDDEN: disabled by 'echo'" in rows["echo"]
    assert "HIDDEN: disabled by 'delete_*'" in rows["delete_record"]
    assert "HIDDEN: matched by no tools.enabled entry" in rows["server_config"]

    assert main([*args, "--all", "--read-only"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "HIDDEN: writes, and the server is read-only" in rows["create_record"]
    assert "HIDDEN: disabled by 'delete_*'; writes, and the server is read-only" in rows["delete_record"]
    assert "HIDDEN" not in rows["add"]


def test_a_malformed_entry_stops_the_tools_command_with_the_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[tools]\ndisabled = ["[oops"]\n')
    assert main(["tools", "--config", str(config)]) != 0
    assert "tools.disabled" in capsys.readouterr().err


async def test_an_entry_that_matches_nothing_is_a_startup_warning(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path, tools={"dirs": DEMO, "enabled": ["*"], "disabled": ["toolset:gone", "ad"]})
    with caplog.at_level("WARNING", logger="mcp_platform.app"):
        async with asgi_client(create_app(settings)) as client:
            assert "add" in await _listed(client)
    warned = [r.getMessage() for r in caplog.records if "matches no tool" in r.getMessage()]
    assert warned == ["tools.enabled/disabled entry 'toolset:gone' matches no tool and no toolset",
                      "tools.enabled/disabled entry 'ad' matches no tool and no toolset"]
