"""Issue 14 item 3: `mcp-platform serve` drains on SIGTERM. `/readyz` answers 503 at once, new sessions and calls
get 503 with Retry-After, the running call finishes with its result, an open stream ends cleanly, and the process
exits by itself; a call that outlasts `http.drain_seconds` is cancelled and audited as cancelled."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.support import free_port, modern_headers, modern_request, wait_served

pytestmark = [pytest.mark.anyio, pytest.mark.wire]

WAITER = '''from pathlib import Path

import anyio

from mcp_platform import tool


@tool(read_only=True, title="Wait for a file")
async def wait_for(started: str, release: str) -> str:
    """Create file `started`, then wait until file `release` exists (at most 30 s)."""
    Path(started).touch()
    with anyio.move_on_after(30):
        while not Path(release).exists():
            await anyio.sleep(0.02)
        return "released"
    return "gave up"
'''


class Server:
    def __init__(self, folder: Path, drain_seconds: float) -> None:
        (folder / "tools").mkdir()
        (folder / "tools" / "waiter.py").write_text(WAITER)
        (folder / "mcp-platform.toml").write_text(f"[http]\ndrain_seconds = {drain_seconds}\n")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.log = folder / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_PLATFORM_")}
        with self.log.open("w") as log:  # a file, not a pipe: a full pipe would stall the server
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mcp_platform", "serve", "--port", str(self.port), "--no-auth",
                 "--tools-dir", str(folder / "tools")], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        wait_served(self.process, self.url, log=self.log, path="/readyz")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    async def exited(self, within: float) -> int:
        with anyio.fail_after(within):
            while (code := self.process.poll()) is None:
                await anyio.sleep(0.05)
        return code


def _call(name: str, arguments: dict[str, Any], msg_id: int) -> tuple[dict[str, Any], dict[str, str]]:
    return (modern_request("tools/call", {"name": name, "arguments": arguments}, msg_id),
            modern_headers("tools/call", name, token=None))


def _reply(response: httpx2.Response) -> dict[str, Any]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        datas = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return dict(json.loads([d for d in datas if d][-1]))
    return dict(response.json())


async def _wait_for_file(path: Path) -> None:
    with anyio.fail_after(10):
        while not path.exists():
            await anyio.sleep(0.02)


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    running = Server(tmp_path, request.param)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("server", [20.0], indirect=True)
async def test_sigterm_drains_running_calls_and_refuses_new_work(server: Server) -> None:
    started, release = server.folder / "started", server.folder / "release"
    replies: list[httpx2.Response] = []
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        listen = modern_request("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, 7)
        async with http.stream("POST", "/mcp", json=listen, headers=modern_headers("subscriptions/listen",
                                                                                     token=None)) as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            with anyio.fail_after(10):
                async for line in lines:
                    if "notifications/subscriptions/acknowledged" in line:
                        break

            async def slow_call() -> None:
                body, headers = _call("wait_for", {"started": str(started), "release": str(release)}, 1)
                replies.append(await http.post("/mcp", json=body, headers=headers))

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow_call)
                await _wait_for_file(started)
                server.process.send_signal(signal.SIGTERM)
                with anyio.fail_after(5):  # at once: the signal only has to reach the process
                    while (await http.get("/readyz")).status_code != 503:
                        await anyio.sleep(0.02)
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and ready.json()["status"] == "draining"

                body, headers = _call("wait_for", {"started": "x", "release": "y"}, 2)
                refused = await http.post("/mcp", json=body, headers=headers)
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == "1"
                assert refused.json()["id"] == 2 and "shutting down" in refused.json()["error"]["message"]
                handshake = await http.post("/mcp", headers=modern_headers("initialize", token=None) | {
                    "mcp-protocol-version": "2025-11-25"}, json={
                    "jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {
                        "protocolVersion": "2025-11-25", "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"}}})
                assert handshake.status_code == 503 and "retry-after" in handshake.headers
                assert server.process.poll() is None  # still draining: the call is running
                release.touch()
            assert replies[0].status_code == 200
            assert _reply(replies[0])["result"]["content"][0]["text"] == "released"
            with anyio.fail_after(10):  # the listen stream ends cleanly (no error while reading it)
                rest = [line async for line in lines]
            assert all("error" not in line for line in rest)
    code = await server.exited(within=10)
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), code
    log = server.log.read_text()
    assert "Application shutdown complete" in log and "Traceback" not in log, log


@pytest.mark.parametrize("server", [1.0], indirect=True)
async def test_a_call_that_outlasts_the_drain_is_cancelled_and_audited(server: Server) -> None:
    started = server.folder / "started"
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:

        async def slow_call() -> None:
            body, headers = _call("wait_for", {"started": str(started), "release": str(server.folder / "never")}, 1)
            try:
                reply = await http.post("/mcp", json=body, headers=headers)
            except httpx2.HTTPError:
                return  # the connection closed with the call: nothing was left to say
            assert reply.status_code >= 500 or "error" in reply.text

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_call)
            await _wait_for_file(started)
            server.process.send_signal(signal.SIGTERM)
    code = await server.exited(within=15)
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), code
    log = server.log.read_text()
    assert "still running after 1 s: they are cancelled" in log, log
    assert "Application shutdown complete" in log, log
    with sqlite3.connect(server.folder / ".mcp-platform" / "state.db") as db:
        outcomes = db.execute("SELECT outcome FROM audit_log WHERE tool = 'wait_for'").fetchall()
    assert outcomes == [("cancelled",)]
