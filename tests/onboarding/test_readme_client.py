"""The README's Python client example, run as written against a real server, in both eras: it cannot drift into
a form that does not send the token."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_platform.app import create_app
from tests.support import TOKEN, make_settings, running_server

pytestmark = pytest.mark.wire
README = Path(__file__).parents[2] / "README.md"
README_URL = "http://127.0.0.1:8000/mcp"


def _snippet() -> str:
    blocks: list[str] = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    clients = [block for block in blocks if "mcp.Client(" in block and "MCP_PLATFORM_TOKEN_VALUE" in block]
    assert len(clients) == 1, "the README should hold one Python client example"
    return clients[0]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_the_readme_python_client_example_works(tmp_path: Path, mode: str) -> None:
    code = _snippet()
    assert README_URL in code and 'mode="legacy"' in code
    with running_server(create_app(make_settings(tmp_path))) as base:
        code = code.replace(README_URL, f"{base}/mcp").replace('mode="legacy"', f'mode="{mode}"')
        env = {**os.environ, "MCP_PLATFORM_TOKEN_VALUE": TOKEN}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'server_config'" in done.stdout, done.stdout
