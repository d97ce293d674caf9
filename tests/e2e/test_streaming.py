"""Issue 5 end to end over a real socket: cancellation both ways, timeouts, resumable streams, change
notifications in both eras, heartbeats."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from starlette.applications import Starlette

from mcp_platform.app import create_app
from tests.support import (
    FIXTURE_TOOLS,
    JSON_HEADERS,
    TOKEN,
    eventually,
    heartbeats,
    listening,
    make_settings,
    mcp_client,
    running_server,
)

pytestmark = [pytest.mark.anyio, pytest.mark.wire]
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def tools_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tools"
    folder.mkdir()
    shutil.copy(FIXTURE_TOOLS / "demo.py", folder / "demo.py")
    return folder


@pytest.fixture
def app(tmp_path: Path, tools_dir: Path) -> Starlette:
    (tmp_path / "mcp-platform.toml").write_text("")
    settings = make_settings(tmp_path, tools={"dirs": [tools_dir]}, http={"sse_heartbeat_seconds": 0.1},
                             rate_limit={"enabled": False})
    return create_app(settings)


@pytest.fixture
def server(app: Starlette) -> Iterator[str]:
    with running_server(app) as base:
        yield base


async def _audit(base: str, tool: str) -> list[dict[str, Any]]:
    async with mcp_client(base + "/mcp", "2026-07-28") as client:
        result = await client.call_tool("recent_tool_calls", {"limit": 50, "tool": tool})
    entries: list[dict[str, Any]] = result.structured_content["entries"]
    return entries


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_cancelled_call_stops_within_a_second(server: str, mode: str) -> None:
    progressed = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        progressed.set()

    async with mcp_client(server + "/mcp", mode) as client, anyio.create_task_group() as tg:
        async def long_call() -> None:  # holds after its first step until cancelled: nobody opens the gate
            await client.call_tool("steps", {"count": 100, "hold": f"cancel-{mode}"}, progress_callback=on_progress)

        tg.start_soon(long_call)
        with anyio.fail_after(5):
            await progressed.wait()
        tg.cancel_scope.cancel()  # legacy: notifications/cancelled; 2026-07-28: the POST stream is closed
    entries = await eventually(lambda: _audit(server, "steps"), interval=0.05, what="the cancelled call's entry")
    assert entries[0]["outcome"] == "cancelled"
    assert entries[0]["duration_ms"] < 1500


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_timeout_returns_the_error_and_the_task_is_gone(server: str, mode: str) -> None:
    async with mcp_client(server + "/mcp", mode) as client:
        result = await client.call_tool("sleepy", {"seconds": 30})
    assert result.is_error is True
    assert "0.3 s timeout" in result.content[0].text  # type: ignore[union-attr]
    entries = await _audit(server, "sleepy")
    assert entries[0]["outcome"] == "timeout" and entries[0]["duration_ms"] < 1000


def _events(text: str) -> list[tuple[str | None, str]]:
    """(id, data) of each SSE event in `text`."""
    found = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event_id = data = None
        for line in block.split("\n"):
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                data = line[6:]
        if data:
            found.append((event_id, data))
    return found


async def test_dropped_stream_resumes_with_last_event_id(server: str) -> None:
    url = server + "/mcp"
    async with httpx2.AsyncClient(headers=AUTH, timeout=10) as http:
        init = await http.post(url, headers=JSON_HEADERS, json={"jsonrpc": "2.0", "id": 0, "method": "initialize",
                                                                "params": {"protocolVersion": "2025-11-25"}})
        session = {"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
            "name": "steps", "arguments": {"count": 6, "hold": "resume", "hold_after": 2},
            "_meta": {"progressToken": "t"}}}
        seen: list[tuple[str, str]] = []
        priming_seen = False
        with anyio.fail_after(5):
            async with http.stream("POST", url, headers={**JSON_HEADERS, **session}, json=call) as response:
                event_id = None
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line == "data: " or line == "data:":
                        priming_seen = True
                    elif line.startswith("data: ") and event_id:
                        seen.append((event_id, line[6:]))
                        if len(seen) == 2:
                            break  # drop the connection mid-call
        assert priming_seen
        # The call goes on while nobody listens: let it past its gate, and wait until it has finished.
        await http.post(url, headers={**JSON_HEADERS, **session}, json={
            "jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "open_gate",
                                                                           "arguments": {"name": "resume"}}})
        entries = await eventually(lambda: _audit(server, "steps"), interval=0.05, what="the call's end")
        assert entries[0]["outcome"] == "ok"
        with anyio.fail_after(5):
            resumed = await http.get(url, headers={**session, "accept": "text/event-stream",
                                                   "last-event-id": seen[-1][0]})
    assert resumed.status_code == 200
    rest = _events(resumed.text)
    messages = [json.loads(data) for _, data in seen] + [json.loads(data) for _, data in rest]
    progress = [m["params"]["progress"] for m in messages if m.get("method") == "notifications/progress"]
    assert progress == [1, 2, 3, 4, 5, 6]
    replies = [m for m in messages if m.get("id") == 7]
    assert len(replies) == 1 and replies[0]["result"]["structuredContent"] == {"result": "did 6 steps"}
    assert len({event_id for event_id, _ in [*seen, *rest]}) == len(seen) + len(rest)


async def test_unknown_last_event_id_is_404(server: str) -> None:
    async with httpx2.AsyncClient(headers=AUTH, timeout=10) as http:
        init = await http.post(server + "/mcp", headers=JSON_HEADERS, json={
            "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}})
        headers = {"mcp-session-id": init.headers["mcp-session-id"], "accept": "text/event-stream"}
        for bad in ["nope", "abc:1", "x" * 500, "abc:-1"]:
            assert (await http.get(server + "/mcp", headers={**headers, "last-event-id": bad})).status_code == 404


async def test_reload_that_adds_a_tool_reaches_listeners_of_both_eras(app: Starlette, server: str,
                                                                      tools_dir: Path) -> None:
    legacy_heard = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ServerNotification) and message.method == "notifications/tools/list_changed":
            legacy_heard.set()

    async with (mcp_client(server + "/mcp", "legacy", message_handler=on_message) as legacy,
                mcp_client(server + "/mcp", "2026-07-28") as modern,
                modern.listen(tools_list_changed=True) as subscription):
        await listening(app, 2)  # the legacy client's GET stream and the modern subscription
        (tools_dir / "extra.py").write_text(
            "from mcp_platform import tool\n\n\n@tool(read_only=True, title='Extra')\n"
            "async def extra_tool() -> str:\n    '''Added by a reload.'''\n    return 'extra'\n")
        result = await modern.call_tool("reload_config", {})
        assert result.is_error is False
        with anyio.fail_after(5):
            async for event in subscription:
                assert type(event).__name__ == "ToolsListChanged"
                break
            await legacy_heard.wait()
        assert "extra_tool" in {t.name for t in (await legacy.list_tools()).tools}
        assert (await modern.call_tool("extra_tool", {})).structured_content == {"result": "extra"}


async def test_quiet_call_gets_heartbeats(server: str) -> None:
    async with httpx2.AsyncClient(headers=AUTH, timeout=10) as http:
        init = await http.post(server + "/mcp", headers=JSON_HEADERS, json={
            "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}})
        headers = {**JSON_HEADERS, "mcp-session-id": init.headers["mcp-session-id"]}
        call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "blocking", "arguments": {"hold": "quiet"}}}
        with anyio.fail_after(10):
            async with http.stream("POST", server + "/mcp", headers=headers, json=call) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                lines = response.aiter_lines()
                before = await heartbeats(lines, 3, within=2.0)  # each within twenty 0.1 s intervals
                await http.post(server + "/mcp", headers=headers, json={  # only now may the call end
                    "jsonrpc": "2.0", "id": 4, "method": "tools/call",
                    "params": {"name": "open_gate", "arguments": {"name": "quiet"}}})
                rest = [line async for line in lines]
    text = "\n".join(before + rest)
    assert _events("\n".join(before)) == []  # no message before the reply: heartbeats only (and the priming id)
    assert json.loads(_events(text)[-1][1])["result"]["structuredContent"] == {"result": "done"}
