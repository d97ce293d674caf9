"""`mcp-platform serve` as a new user runs it: the first start prints a token once with the lines to connect,
the token works, logs never contain it, and SIGTERM or Ctrl-C stop the server cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from tests.support import free_port, mcp_client, wait_until

pytestmark = pytest.mark.wire
REPO = Path(__file__).parents[1]


def _start(cwd: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_PLATFORM_")}
    return subprocess.Popen([sys.executable, "-m", "mcp_platform", "serve", "--port", str(port),
                             "--tools-dir", str(REPO / "tools")],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_healthy(port: int, process: subprocess.Popen[str]) -> None:
    def healthy() -> bool:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            return httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    wait_until(healthy, timeout=30, what="the server's start")


def _stop(process: subprocess.Popen[str], sig: int) -> tuple[str, str]:
    """Signal the server; it must finish its shutdown (lifespan included) and exit, by itself, in time."""
    process.send_signal(sig)
    out, err = process.communicate(timeout=20)
    assert "Application shutdown complete" in err, err
    # uvicorn re-raises the signal after a graceful shutdown, as Unix programs conventionally do.
    assert process.returncode in (0, -sig, 128 + sig), process.returncode
    return out, err


@pytest.mark.anyio
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_first_start_prints_a_working_token_once_and_stops_cleanly(tmp_path: Path, sig: int) -> None:
    port = free_port()
    first = _start(tmp_path, port)
    _wait_healthy(port, first)
    async with httpx2.AsyncClient() as http:  # auth is on by default: no token, no service
        refused = await http.post(f"http://127.0.0.1:{port}/mcp", json={},
                                  headers={"accept": "application/json, text/event-stream"})
    assert refused.status_code == 401
    out, err = _stop(first, sig)
    tokens = re.findall(r"mcpp_[A-Za-z0-9_-]{40,}", out)
    assert tokens and len(set(tokens)) == 1
    token = tokens[0]
    assert f"claude mcp add --transport http mcp-platform http://127.0.0.1:{port}/mcp" in out
    assert f'--header "Authorization: Bearer {token}"' in out
    assert '"mcpServers"' in out and f'"url": "http://127.0.0.1:{port}/mcp"' in out
    assert token not in err  # never in the logs

    second = _start(tmp_path, port)
    _wait_healthy(port, second)
    async with mcp_client(f"http://127.0.0.1:{port}/mcp", "legacy", token=token) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"server_config", "query_records", "site_status"} <= tools
        assert (await client.call_tool("site_status", {})).is_error is False
    out, err = _stop(second, sig)
    assert "mcpp_" not in out and token not in err  # shown once only
