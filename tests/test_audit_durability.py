"""A writing call's audit entry is committed before its reply: a real `mcp-platform serve` killed with SIGKILL
right after the replies to ten writing calls keeps all ten entries (SQLite's WAL survives a process crash)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.support import free_port, modern_headers, modern_request

pytestmark = [pytest.mark.wire, pytest.mark.anyio]
REPO = Path(__file__).parents[1]
TOKEN = "durability-test-token-with-all-scopes"
CONFIG = """
[flags.beta]
default = false
description = "A flag to flip."
"""


def _serve(cwd: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_PLATFORM_")}
    env["MCP_PLATFORM_TOKEN"] = TOKEN
    return subprocess.Popen([sys.executable, "-m", "mcp_platform", "serve", "--port", str(port),
                             "--tools-dir", str(REPO / "tools"), "--log-level", "warning"],
                            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_healthy(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("server did not start")


def _entries(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT tool, outcome FROM audit_log WHERE tool IN ('set_feature_flag', "
                            "'create_record') ORDER BY id").fetchall()


async def test_writing_calls_audit_entries_survive_sigkill_right_after_the_reply(tmp_path: Path) -> None:
    (tmp_path / "mcp-platform.toml").write_text(CONFIG)
    port = free_port()
    server = _serve(tmp_path, port)
    try:
        _wait_healthy(port, server)
        calls = [("set_feature_flag", {"name": "beta", "enabled": n % 2 == 0}) for n in range(5)]
        calls += [("create_record", {"model": "Customer", "values": {"email": f"c{n}@example.com", "name": f"C{n}"}})
                  for n in range(5)]
        replies: list[dict[str, object]] = []
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:

            async def call(name: str, arguments: dict[str, object], msg_id: int) -> None:
                response = await http.post("/mcp", headers=modern_headers("tools/call", name, token=TOKEN),
                                           json=modern_request("tools/call", {"name": name, "arguments": arguments},
                                                               msg_id=msg_id))
                replies.append(response.json()["result"])

            with anyio.fail_after(30):
                async with anyio.create_task_group() as group:  # concurrently, as a busy client would
                    for n, (name, arguments) in enumerate(calls):
                        group.start_soon(call, name, arguments, n + 1)
        server.kill()  # SIGKILL: no shutdown, no flush
        server.wait(timeout=10)
        assert len(replies) == 10 and not any(reply.get("isError") for reply in replies), replies
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
        if server.stderr is not None:
            server.stderr.close()
    entries = _entries(tmp_path / ".mcp-platform" / "state.db")
    assert len(entries) == 10, f"{len(entries)} of the 10 writing calls' audit entries survived: {entries}"
    assert sorted(entries) == sorted([("set_feature_flag", "ok")] * 5 + [("create_record", "ok")] * 5), entries
