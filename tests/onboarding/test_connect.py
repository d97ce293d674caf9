"""`mcp-platform connect`: each client's documented format, token references instead of tokens, and `--write`
merging into existing files without losing anything (and refusing files it cannot read as JSON)."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mcp_platform.cli import main
from mcp_platform.onboarding.connect import CLIENTS, ConnectError, client_config, merge_document
from mcp_platform.onboarding.toml_config import render_toml

URL = "https://mcp.example.com/mcp"
SECRET = "mcpp_secret-token-value-123456"


def _connect(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["connect", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(capsys: pytest.CaptureFixture[str], client: str, *args: str) -> dict[str, Any]:
    code, out, _ = _connect(capsys, client, "--url", URL, "--json", *args)
    assert code == 0
    document: dict[str, Any] = json.loads(out)
    return document


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test in its own project folder and home, with the token set the way a user would."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("CODEX_HOME", raising=False)
    monkeypatch.setenv("MCP_PLATFORM_TOKEN_VALUE", SECRET)


def test_claude_code_gets_the_cli_line_and_a_project_mcp_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _connect(capsys, "claude-code", "--url", URL)
    document = _json(capsys, "claude-code")
    assert code == 0
    assert ('claude mcp add --transport http mcp-platform https://mcp.example.com/mcp '
            '--header "Authorization: Bearer ${MCP_PLATFORM_TOKEN_VALUE}"') in out.splitlines()
    assert document == {"mcpServers": {"mcp-platform": {
        "type": "http", "url": URL, "headers": {"Authorization": "Bearer ${MCP_PLATFORM_TOKEN_VALUE}"}}}}
    assert SECRET not in out


def test_cursor_and_windsurf_use_their_own_keys_and_env_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    cursor = _json(capsys, "cursor", "--token-env", "MY_TOKEN", "--name", "platform")
    windsurf = _json(capsys, "windsurf")
    assert cursor == {"mcpServers": {"platform": {"url": URL, "headers": {"Authorization": "Bearer ${env:MY_TOKEN}"}}}}
    assert windsurf == {"mcpServers": {"mcp-platform": {
        "serverUrl": URL, "headers": {"Authorization": "Bearer ${env:MCP_PLATFORM_TOKEN_VALUE}"}}}}


def test_vscode_prompts_for_the_token_as_a_password_input(capsys: pytest.CaptureFixture[str]) -> None:
    document = _json(capsys, "vscode")
    assert set(document) == {"inputs", "servers"}
    assert document["inputs"] == [{"type": "promptString", "id": "mcp-platform-token",
                                   "description": "mcp-platform bearer token", "password": True}]
    assert document["servers"]["mcp-platform"] == {
        "type": "http", "url": URL, "headers": {"Authorization": "Bearer ${input:mcp-platform-token}"}}


def test_claude_desktop_launches_stdio_by_absolute_path_in_the_project(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    entry = _json(capsys, "claude-desktop")["mcpServers"]["mcp-platform"]
    assert set(entry) == {"command", "args"}
    assert Path(entry["command"]).is_absolute() and Path(entry["command"]).exists()
    assert entry["args"][-3:] == ["stdio", "--directory", str(tmp_path)]
    assert "headers" not in entry and SECRET not in json.dumps(entry)


@pytest.mark.parametrize("client", CLIENTS)
def test_every_client_prints_parseable_json_with_its_documented_top_key(
        client: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _connect(capsys, client, "--url", URL)
    document = _json(capsys, client)
    assert code == 0
    assert list(document)[-1] == {"vscode": "servers", "codex": "mcp_servers"}.get(client, "mcpServers")
    # The human output shows the same document, in the file's own format.
    shown = render_toml(document).rstrip("\n") if client == "codex" else json.dumps(document, indent=2)
    assert shown in out
    assert SECRET not in out


@pytest.mark.parametrize(("client", "default"), [
    ("claude-code", ".mcp.json"), ("cursor", ".cursor/mcp.json"), ("vscode", ".vscode/mcp.json"),
    ("windsurf", "home/.codeium/windsurf/mcp_config.json"), ("gemini", ".gemini/settings.json")])
def test_write_goes_to_the_clients_default_file(client: str, default: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _connect(capsys, client, "--url", URL, "--write")
    assert code == 0 and f"added 'mcp-platform' in {tmp_path / default}" in out
    assert json.loads((tmp_path / default).read_text()) == _json(capsys, client)


def test_claude_desktop_default_file_follows_the_platform(tmp_path: Path) -> None:
    def path(platform: str) -> Path:
        return client_config("claude-desktop", url="", project=tmp_path, home=Path("/h"), platform=platform,
                             command=("/bin/mcp-platform", [])).default_file

    assert path("darwin") == Path("/h/Library/Application Support/Claude/claude_desktop_config.json")
    assert path("linux") == Path("/h/.config/Claude/claude_desktop_config.json")


def test_write_merges_without_losing_other_servers_or_keys(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "cfg" / "mcp.json"
    target.parent.mkdir()
    existing = {"theme": "dark", "mcpServers": {"other": {"command": "other-server", "args": ["--x"]},
                                               "mcp-platform": {"url": "http://old.example/mcp"}}}
    target.write_text(json.dumps(existing))
    target.chmod(0o640)
    code, out, _ = _connect(capsys, "cursor", "--url", URL, "--write", "--file", str(target))
    written = json.loads(target.read_text())
    assert code == 0 and "updated 'mcp-platform'" in out
    assert written["theme"] == "dark"
    assert written["mcpServers"]["other"] == existing["mcpServers"]["other"]  # type: ignore[index]
    assert written["mcpServers"]["mcp-platform"]["url"] == URL
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the file keeps its permissions
    assert [p.name for p in target.parent.iterdir()] == ["mcp.json"]  # no temp file left behind


def test_vscode_write_keeps_other_inputs_and_replaces_its_own(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / ".vscode" / "mcp.json"
    target.parent.mkdir()
    target.write_text(json.dumps({"inputs": [{"type": "promptString", "id": "github-pat", "password": True},
                                             {"type": "promptString", "id": "mcp-platform-token"}],
                                  "servers": {"github": {"type": "http", "url": "https://api.example/mcp"}}}))
    assert _connect(capsys, "vscode", "--url", URL, "--write")[0] == 0
    written = json.loads(target.read_text())
    assert [i["id"] for i in written["inputs"]] == ["github-pat", "mcp-platform-token"]
    assert written["inputs"][1]["password"] is True
    assert set(written["servers"]) == {"github", "mcp-platform"}


@pytest.mark.parametrize("content", ['{"mcpServers": {', "// comment\n{}", "[1, 2]", '{"mcpServers": []}',
                                     '"just a string"', "\xff\xfe garbage"])
def test_a_file_that_cannot_be_merged_is_refused_and_left_untouched(content: str, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "mcp.json"
    target.write_text(content, encoding="latin-1")
    before = target.read_bytes()
    code, out, err = _connect(capsys, "cursor", "--url", URL, "--write", "--file", str(target))
    assert code == 2 and "left untouched" in err
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["mcp.json"]


def test_write_follows_a_symlink_to_its_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "dotfiles" / "mcp.json"
    real.parent.mkdir()
    real.write_text('{"mcpServers": {"keep": {"url": "https://keep.example/mcp"}}}')
    link = tmp_path / "mcp.json"
    link.symlink_to(real)
    assert _connect(capsys, "cursor", "--url", URL, "--write", "--file", str(link))[0] == 0
    assert link.is_symlink()
    assert set(json.loads(real.read_text())["mcpServers"]) == {"keep", "mcp-platform"}


def test_a_token_is_written_only_when_asked_and_then_privately(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "mcp.json"
    code, out, err = _connect(capsys, "cursor", "--url", URL, "--token-literal")
    assert code == 2 and "--write" in err and SECRET not in out + err
    code, out, err = _connect(capsys, "cursor", "--url", URL, "--write", "--token-literal", "--file", str(target))
    assert code == 0 and SECRET not in out + err
    assert json.loads(target.read_text())["mcpServers"]["mcp-platform"]["headers"] == {
        "Authorization": f"Bearer {SECRET}"}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    vscode = tmp_path / "vscode.json"
    assert _connect(capsys, "vscode", "--url", URL, "--write", "--token-literal", "--file", str(vscode))[0] == 0
    assert "inputs" not in json.loads(vscode.read_text())


def test_token_literal_needs_the_variable_set(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MCP_PLATFORM_TOKEN_VALUE")
    code, _, err = _connect(capsys, "cursor", "--url", URL, "--write", "--token-literal")
    assert code == 2 and "MCP_PLATFORM_TOKEN_VALUE, which is not set" in err
    assert not Path(".cursor").exists()


@pytest.mark.parametrize("args", [
    ["--url", "ftp://example.com/mcp"], ["--url", "https://user:pw@example.com/mcp"], ["--url", "not a url"],
    ["--url", "https://example.com/mcp\nX-Evil: 1"], ["--name", "bad name"], ["--name=-rf"], ["--name", "x" * 65],
    ["--name", "a/../b"], ["--token-env", "NOT-AN-ENV"], ["--token-env", "1ABC"], ["--token-env", "A B"]])
def test_hostile_arguments_are_refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    base = [] if "--url" in args else ["--url", URL]
    code, out, err = _connect(capsys, "cursor", *base, *args, "--write")
    assert code == 2 and err.startswith("mcp-platform connect: ")
    assert "pw@" not in err and out == ""
    assert not Path(".cursor").exists()


def test_the_default_url_comes_from_the_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mcp-platform.toml").write_text('[http]\nhost = "0.0.0.0"\nport = 9123\npath = "/tools-mcp"\n')
    document = json.loads(_connect(capsys, "cursor", "--json")[1])
    assert document["mcpServers"]["mcp-platform"]["url"] == "http://127.0.0.1:9123/tools-mcp"


def test_merge_document_keeps_order_and_reports_replacement() -> None:
    document, replaced = merge_document('{"a": 1, "mcpServers": {"x": {}}}', {"mcpServers": {"y": {"url": "u"}}},
                                        "f")
    assert list(document) == ["a", "mcpServers"] and list(document["mcpServers"]) == ["x", "y"] and not replaced
    with pytest.raises(ConnectError, match="not an object"):
        merge_document('{"mcpServers": 3}', {"mcpServers": {"y": {}}}, "f")


def test_write_creates_missing_folders_with_the_users_umask(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    old = os.umask(0o027)
    try:
        assert _connect(capsys, "windsurf", "--url", URL, "--write")[0] == 0
    finally:
        os.umask(old)
    target = tmp_path / "home" / ".codeium" / "windsurf" / "mcp_config.json"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_the_connect_list_names_seven_clients(capsys: pytest.CaptureFixture[str]) -> None:
    assert CLIENTS == ("claude-code", "cursor", "vscode", "windsurf", "claude-desktop", "codex", "gemini")
    with pytest.raises(SystemExit):
        main(["connect", "--help"])
    assert "{claude-code,cursor,vscode,windsurf,claude-desktop,codex,gemini}" in capsys.readouterr().out


def test_codex_gets_its_command_and_a_table_naming_the_token_variable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _connect(capsys, "codex", "--url", URL)
    assert code == 0
    assert ("codex mcp add mcp-platform --url https://mcp.example.com/mcp "
            "--bearer-token-env-var MCP_PLATFORM_TOKEN_VALUE") in out.splitlines()
    assert ('[mcp_servers.mcp-platform]\nurl = "https://mcp.example.com/mcp"\n'
            'bearer_token_env_var = "MCP_PLATFORM_TOKEN_VALUE"\n') in out
    assert _json(capsys, "codex", "--name", "platform", "--token-env", "MY_TOKEN") == {
        "mcp_servers": {"platform": {"url": URL, "bearer_token_env_var": "MY_TOKEN"}}}
    assert SECRET not in out


def test_gemini_gets_the_shape_gemini_mcp_add_writes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _connect(capsys, "gemini", "--url", URL)
    assert code == 0
    # Single quotes: the shell must not expand the variable, Gemini does when it starts.
    assert ("gemini mcp add --transport http mcp-platform https://mcp.example.com/mcp "
            "--header 'Authorization: Bearer ${MCP_PLATFORM_TOKEN_VALUE}'") in out.splitlines()
    document = _json(capsys, "gemini")
    assert document == {"mcpServers": {"mcp-platform": {
        "url": URL, "type": "http", "headers": {"Authorization": "Bearer ${MCP_PLATFORM_TOKEN_VALUE}"}}}}
    assert list(document["mcpServers"]["mcp-platform"]) == ["url", "type", "headers"]
    assert SECRET not in out


def test_codex_writes_to_codex_home_or_the_users_codex_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _connect(capsys, "codex", "--url", URL, "--write")
    target = tmp_path / "home" / ".codex" / "config.toml"
    assert code == 0 and f"added 'mcp-platform' in {target}" in out
    assert tomllib.loads(target.read_text()) == _json(capsys, "codex")
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    assert _connect(capsys, "codex", "--url", URL, "--write")[0] == 0
    assert (tmp_path / "codex-home" / "config.toml").is_file()


CODEX_CONFIG = '''# my Codex settings
model = "o3"  # the one I like

[mcp_servers.docs]
command = "npx"
args = ["-y", "docs-server"]

[mcp_servers.docs.env]
DOCS_TOKEN_FILE = "/run/secrets/docs"

[mcp_servers.mcp-platform]
url = "http://old.example/mcp"
startup_timeout_sec = 5

[profiles.fast]
model = "mini"
'''


def test_codex_write_merges_into_toml_keeping_comments_tables_and_other_servers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "home" / ".codex" / "config.toml"
    target.parent.mkdir(parents=True)
    target.write_text(CODEX_CONFIG)
    target.chmod(0o640)
    code, out, _ = _connect(capsys, "codex", "--url", URL, "--write")
    text = target.read_text()
    written = tomllib.loads(text)
    assert code == 0 and "updated 'mcp-platform'" in out
    assert "# my Codex settings" in text and '# the one I like' in text
    assert written["model"] == "o3" and written["profiles"] == {"fast": {"model": "mini"}}
    assert written["mcp_servers"]["docs"] == {"command": "npx", "args": ["-y", "docs-server"],
                                              "env": {"DOCS_TOKEN_FILE": "/run/secrets/docs"}}
    # The entry is replaced whole, as the JSON clients' entries are.
    assert written["mcp_servers"]["mcp-platform"] == {"url": URL, "bearer_token_env_var": "MCP_PLATFORM_TOKEN_VALUE"}
    assert text.index("[mcp_servers.docs]") < text.index("[mcp_servers.mcp-platform]") < text.index("[profiles")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["config.toml"]


def test_codex_write_adds_to_an_inline_or_dotted_servers_table(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    for text in ('mcp_servers = { docs = { command = "docs" } }\n', 'mcp_servers.docs.command = "docs"\n'):
        target = tmp_path / "config.toml"
        target.write_text(text)
        assert _connect(capsys, "codex", "--url", URL, "--write", "--file", str(target))[0] == 0
        assert tomllib.loads(target.read_text())["mcp_servers"] == {
            "docs": {"command": "docs"},
            "mcp-platform": {"url": URL, "bearer_token_env_var": "MCP_PLATFORM_TOKEN_VALUE"}}


@pytest.mark.parametrize("content", ["[mcp_servers", "mcp_servers = 3", "mcp_servers = [1, 2]",
                                     'a = 1\na = 2', "not toml at all", "\xff\xfe garbage"])
def test_a_toml_file_that_cannot_be_merged_is_refused_and_left_untouched(content: str, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "config.toml"
    target.write_text(content, encoding="latin-1")
    before = target.read_bytes()
    code, out, err = _connect(capsys, "codex", "--url", URL, "--write", "--file", str(target))
    assert code == 2 and "left untouched" in err and out == ""
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_codex_takes_a_literal_token_only_when_asked_and_then_privately(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "config.toml"
    code, out, err = _connect(capsys, "codex", "--url", URL, "--write", "--token-literal", "--file", str(target))
    assert code == 0 and SECRET not in out + err
    assert tomllib.loads(target.read_text())["mcp_servers"]["mcp-platform"] == {
        "url": URL, "http_headers": {"Authorization": f"Bearer {SECRET}"}}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_gemini_write_keeps_the_other_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / ".gemini" / "settings.json"
    target.parent.mkdir()
    target.write_text(json.dumps({"ui": {"theme": "GitHub"}, "mcpServers": {
        "docs": {"command": "docs-server", "args": ["--stdio"]}}}))
    assert _connect(capsys, "gemini", "--url", URL, "--write")[0] == 0
    written = json.loads(target.read_text())
    assert written["ui"] == {"theme": "GitHub"}
    assert written["mcpServers"]["docs"] == {"command": "docs-server", "args": ["--stdio"]}
    assert written["mcpServers"]["mcp-platform"]["headers"] == {
        "Authorization": "Bearer ${MCP_PLATFORM_TOKEN_VALUE}"}


@pytest.mark.parametrize("client", [c for c in CLIENTS if c != "claude-desktop"])
def test_with_oauth_every_remote_client_gets_the_url_and_no_token_reference(
        client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "client-config"
    code, out, _ = _connect(capsys, client, "--url", URL, "--auth", "oauth", "--write", "--file", str(target))
    assert code == 0 and "sign" in out  # the note says where the user signs in
    text = target.read_text()
    document = tomllib.loads(text) if client == "codex" else json.loads(text)
    entry = next(iter(next(v for k, v in document.items() if k != "inputs").values()))
    assert URL in entry.values()
    for absent in ("headers", "http_headers", "bearer_token_env_var", "Authorization", "MCP_PLATFORM_TOKEN_VALUE",
                   "inputs", SECRET):
        assert absent not in text


def test_the_auth_mode_of_the_config_decides_what_connect_writes(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "mcp-platform.toml"
    config.write_text('[auth]\nmode = ["oauth"]\n')
    oauth = _json(capsys, "cursor", "--config", str(config))
    assert oauth == {"mcpServers": {"mcp-platform": {"url": URL}}}
    config.write_text('[auth]\nmode = ["redis", "oauth"]\n')
    code, out, _ = _connect(capsys, "cursor", "--url", URL, "--config", str(config))
    assert code == 0 and "Bearer ${env:MCP_PLATFORM_TOKEN_VALUE}" in out and "--store redis" in out
    assert _json(capsys, "cursor", "--config", str(config), "--auth", "oauth") == oauth  # the flag wins


def test_a_literal_token_and_oauth_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _connect(capsys, "cursor", "--url", URL, "--auth", "oauth", "--write", "--token-literal")
    assert code == 2 and "exclude each other" in err
    with pytest.raises(SystemExit):  # argparse: an unknown choice is a usage error
        main(["connect", "cursor", "--auth", "password"])
