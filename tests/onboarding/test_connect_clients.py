"""What `mcp-platform connect --write` writes, read by the real clients from npm against a real server: Claude
Code's and Gemini CLI's `mcp list` health-check it and report it connected (and not with a wrong token, so the
token reference in the file is what authenticates), Codex CLI's `codex mcp list` reads its TOML back."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.onboarding.npm_clients import Served, client_env, require_tool, run_client, served

pytestmark = pytest.mark.wire
TOKEN_ENV = "MCP_PLATFORM_TOKEN_VALUE"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("served")) as running:
        yield running


def _project(tmp_path: Path) -> tuple[Path, Path]:
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    return project.resolve(), home.resolve()


def _connect(client: str, url: str, *, cwd: Path, env: dict[str, str]) -> None:
    """`mcp-platform connect CLIENT --write` as a user runs it, in the project folder."""
    done = subprocess.run([sys.executable, "-m", "mcp_platform", "connect", client, "--url", url, "--write"],
                          cwd=cwd, env=env, capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr


def test_claude_code_reports_the_written_server_connected(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    claude = require_tool("claude")
    live: Served = request.getfixturevalue("server")
    project, home = _project(tmp_path)
    _connect("claude-code", live.url, cwd=project, env=client_env(home))
    assert live.token not in (project / ".mcp.json").read_text()
    pending = run_client(claude, ["mcp", "list"], cwd=project, env=client_env(home, **{TOKEN_ENV: live.token}))
    assert "mcp-platform" in pending.stdout and "Pending approval" in pending.stdout, pending
    # What a user does when `claude` asks about the project's .mcp.json: approve the server by name.
    (home / ".claude").mkdir(exist_ok=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"enabledMcpjsonServers": ["mcp-platform"]}))
    listed = run_client(claude, ["mcp", "list"], cwd=project, env=client_env(home, **{TOKEN_ENV: live.token}))
    assert f"mcp-platform: {live.url} (HTTP) - ✔ Connected" in listed.stdout, (listed, live.log.read_text())
    wrong = run_client(claude, ["mcp", "list"], cwd=project, env=client_env(home, **{TOKEN_ENV: "mcpp_wrong"}))
    assert "Failed to connect" in wrong.stdout and "401" in wrong.stdout, wrong


def test_gemini_reports_the_written_server_connected(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    gemini = require_tool("gemini")
    live: Served = request.getfixturevalue("server")
    project, home = _project(tmp_path)
    _connect("gemini", live.url, cwd=project, env=client_env(home))
    assert live.token not in (project / ".gemini" / "settings.json").read_text()
    gemini_home = home / ".gemini"
    gemini_home.mkdir(exist_ok=True)
    # The user's own settings: no usage statistics; and the project trusted, as Gemini asks on its first start
    # in a folder (it starts no MCP server in an untrusted one).
    (gemini_home / "settings.json").write_text(json.dumps({"privacy": {"usageStatisticsEnabled": False},
                                                           "telemetry": {"enabled": False}}))
    (gemini_home / "trustedFolders.json").write_text(json.dumps({str(project): "TRUST_FOLDER"}))
    listed = run_client(gemini, ["mcp", "list"], cwd=project, env=client_env(home, **{TOKEN_ENV: live.token}))
    # Gemini prints the list on stderr.
    assert f"✓ mcp-platform: {live.url} (http) - Connected" in listed.stderr, (listed, live.log.read_text())
    wrong = run_client(gemini, ["mcp", "list"], cwd=project, env=client_env(home, **{TOKEN_ENV: "mcpp_wrong"}))
    assert f"✗ mcp-platform: {live.url} (http) - Disconnected" in wrong.stderr, wrong


def test_codex_reads_the_written_server_back_with_the_others(tmp_path: Path,
                                                             request: pytest.FixtureRequest) -> None:
    codex = require_tool("codex")
    live: Served = request.getfixturevalue("server")
    project, home = _project(tmp_path)
    config = home / ".codex" / "config.toml"
    config.parent.mkdir()
    config.write_text('# mine\n[mcp_servers.docs]\ncommand = "docs-server"\nargs = ["--stdio"]\n')
    _connect("codex", live.url, cwd=project, env=client_env(home))
    assert "# mine" in config.read_text() and live.token not in config.read_text()
    listed = run_client(codex, ["mcp", "list", "--json"], cwd=project, env=client_env(home, **{TOKEN_ENV: live.token}))
    assert listed.returncode == 0, listed
    servers = {entry["name"]: entry for entry in json.loads(listed.stdout)}
    assert set(servers) == {"docs", "mcp-platform"}
    assert servers["mcp-platform"]["enabled"] is True
    assert servers["mcp-platform"]["auth_status"] == "bearer_token"
    transport = servers["mcp-platform"]["transport"]
    assert (transport["type"], transport["url"], transport["bearer_token_env_var"]) == (
        "streamable_http", live.url, TOKEN_ENV)
    assert servers["docs"]["transport"]["command"] == "docs-server"
