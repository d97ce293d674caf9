"""The first-start banner shows the new token once, but the client entries it prints keep the token where the
README says it belongs: in an environment variable, referenced the way `mcp-platform connect` writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_platform.cli import _print_first_token
from mcp_platform.onboarding.connect import DEFAULT_TOKEN_ENV, client_config
from tests.support import make_settings

TOKEN = "mcpp_" + "x" * 43


def test_the_cursor_entry_in_the_banner_references_the_variable(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(tmp_path, http={"port": 8123})
    _print_first_token(TOKEN, settings)
    out = capsys.readouterr().out
    entries = [json.loads(line) for line in out.splitlines() if line.strip().startswith('{"mcpServers"')]
    assert len(entries) == 1, out
    cursor = entries[0]
    assert TOKEN not in json.dumps(cursor)
    assert cursor["mcpServers"]["mcp-platform"]["headers"] == {"Authorization": f"Bearer ${{env:{DEFAULT_TOKEN_ENV}}}"}
    expected = client_config("cursor", url="http://127.0.0.1:8123/mcp", project=tmp_path, home=tmp_path).document
    assert cursor == expected  # what `mcp-platform connect cursor` prints
    assert f"export {DEFAULT_TOKEN_ENV}={TOKEN}" in out  # how to put the token there
