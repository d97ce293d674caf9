"""`mcp-platform stdio` as a real subprocess, driven by the official client's stdio transport: the same tools as
over HTTP, progress before the result, the handshake-era ask-the-client round trip, and 2026-07-28 via discover."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from mcp_platform.cli import main
from tests.support import FIXTURE_TOOLS

pytestmark = pytest.mark.anyio


def _server(tmp_path: Path) -> StdioServerParameters:
    config = tmp_path / "mcp-platform.toml"
    config.write_text("\n".join([
        "[state]", f"url = {json.dumps(f'sqlite+aiosqlite:///{tmp_path}/state.db')}",
        "[database]", f"url = {json.dumps(f'sqlite+aiosqlite:///{tmp_path}/app.db')}",
        "[static]", f"root = {json.dumps(str(tmp_path / 'static'))}", ""]))
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_platform", "stdio", "--config", str(config), "--tools-dir", str(FIXTURE_TOOLS),
              "--log-level", "warning"],
        cwd=tmp_path, env={"PYTHONUNBUFFERED": "1"})


async def _accept_name(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada"})


async def test_stdio_lists_and_calls_the_same_tools(tmp_path: Path) -> None:
    async with Client(_server(tmp_path), mode="legacy") as client:
        listed = await client.list_tools()
        result = await client.call_tool("add", {"a": 2, "b": 40})
        invalid = await client.call_tool("add", {"a": "two", "b": 1})
    names = {t.name for t in listed.tools}
    assert {"add", "steps", "greet_asked"} <= names
    assert result.structured_content == {"total": 42}
    assert invalid.is_error is True


async def test_stdio_progress_arrives_before_the_result(tmp_path: Path) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(_server(tmp_path), mode="legacy") as client:
        result = await client.call_tool("steps", {"count": 3}, progress_callback=on_progress)
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert result.content[0].text == "did 3 steps"  # type: ignore[union-attr]


async def test_stdio_elicitation_round_trip(tmp_path: Path) -> None:
    async with Client(_server(tmp_path), mode="legacy", elicitation_callback=_accept_name) as client:
        result = await client.call_tool("greet_asked", {})
    # Handshake era: one run of the tool, which waited for the client's answer on stdin.
    assert result.content[0].text == "Hello, Ada! (rounds: 1)"  # type: ignore[union-attr]


async def test_stdio_auto_mode_speaks_2026_07_28_through_server_discover(tmp_path: Path) -> None:
    async with Client(_server(tmp_path), mode="auto", elicitation_callback=_accept_name) as client:
        version = client.protocol_version
        result = await client.call_tool("add", {"a": 1, "b": 2})
        greeted = await client.call_tool("greet_asked", {})
    assert version == "2026-07-28"
    assert result.structured_content == {"total": 3}
    # 2026-07-28: an input round (input_required, then a retry with the answer and the signed state).
    assert greeted.content[0].text == "Hello, Ada! (rounds: 2)"  # type: ignore[union-attr]


async def test_the_claude_desktop_config_starts_a_working_server_from_anywhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "project"
    shutil.copytree(FIXTURE_TOOLS, project / "tools")
    (project / "mcp-platform.toml").write_text('[database]\nurl = "sqlite+aiosqlite:///.mcp-platform/app.db"\n')
    monkeypatch.chdir(project)
    assert main(["connect", "claude-desktop", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["mcpServers"]["mcp-platform"]
    # Claude Desktop starts servers from its own working directory, with a minimal environment.
    server = StdioServerParameters(command=entry["command"], args=[*entry["args"], "--log-level", "warning"],
                                   cwd=tmp_path)
    async with Client(server, mode="legacy") as client:
        result = await client.call_tool("add", {"a": 20, "b": 22})
    assert result.structured_content == {"total": 42}
    assert (project / ".mcp-platform" / "state.db").is_file()  # state went to the project, not the client's cwd


def test_stdio_refuses_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stdio", "--directory", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
