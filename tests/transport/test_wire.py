"""Over a real loopback socket, with the official `mcp` client as the peer, in both protocol eras."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from mcp_platform.app import create_app
from tests.support import JSON_HEADERS, TOKEN, eventually, heartbeats, make_settings, mcp_client, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.wire]

MODES = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("wire")
    app = create_app(make_settings(tmp, http={"sse_heartbeat_seconds": 0.2}), capabilities=[])
    with running_server(app) as base:
        yield base + "/mcp"


@pytest.mark.parametrize("mode", MODES)
async def test_official_client_lists_and_calls_tools(server_url: str, mode: str) -> None:
    async with mcp_client(server_url, mode) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"add", "echo", "steps", "admin_thing"} <= set(tools)
        add = tools["add"]
        assert add.annotations is not None and add.annotations.read_only_hint is True
        assert add.annotations.destructive_hint is False and add.annotations.open_world_hint is False
        assert add.input_schema["properties"]["a"]["description"] == "The first addend."
        assert add.output_schema is not None
        result = await client.call_tool("add", {"a": 20, "b": 22})
        assert result.structured_content == {"total": 42}
        assert result.is_error is False
        echoed = await client.call_tool("echo", {"text": "héllo ✓"})
        assert echoed.structured_content == {"result": "héllo ✓"}


@pytest.mark.parametrize("mode", MODES)
async def test_progress_and_logs_arrive_before_the_result(server_url: str, mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []
    logs: list[Any] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def on_log(params: Any) -> None:
        logs.append(params)

    async with mcp_client(server_url, mode, logging_callback=on_log, log_level="info") as client:
        result = await client.call_tool("steps", {"count": 4}, progress_callback=on_progress)
    assert result.structured_content == {"result": "did 4 steps"}
    assert [p[0] for p in seen] == [1, 2, 3, 4]
    assert [log.data for log in logs] == [f"step {i} of 4" for i in range(1, 5)]


@pytest.mark.parametrize("mode", MODES)
async def test_unknown_tool_is_a_protocol_error(server_url: str, mode: str) -> None:
    async with mcp_client(server_url, mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("no_such_tool", {})
    assert raised.value.error.code == -32602


@pytest.mark.parametrize("mode", MODES)
async def test_wrong_token_cannot_connect(server_url: str, mode: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the SDK surfaces a 401 differently per era
        async with mcp_client(server_url, mode, token="wrong") as client:
            await client.list_tools()


async def test_sync_tool_does_not_block_other_requests(server_url: str) -> None:
    async with mcp_client(server_url, "2026-07-28") as client:
        finished: list[str] = []

        async def slow() -> None:
            await client.call_tool("blocking", {"hold": "sync-tool"})
            finished.append("slow")

        async def held() -> int:
            return int((await client.call_tool("gate_held", {"name": "sync-tool"})).structured_content["result"])

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                await eventually(held, what="the sync tool blocking its worker thread")
                await client.call_tool("add", {"a": 1, "b": 1})  # answered while the sync tool still blocks
                finished.append("fast")
                await client.call_tool("open_gate", {"name": "sync-tool"})
    assert finished == ["fast", "slow"]


async def test_get_stream_sends_heartbeats(server_url: str) -> None:
    headers = {**JSON_HEADERS, "authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
        init = await http.post(server_url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                                 "params": {"protocolVersion": "2025-11-25"}})
        session = init.headers["mcp-session-id"]
        stream_headers = {"accept": "text/event-stream", "mcp-session-id": session}
        with anyio.fail_after(5):
            async with http.stream("GET", server_url, headers=stream_headers) as response:
                assert response.status_code == 200
                assert response.headers["x-accel-buffering"] == "no"
                second = await http.get(server_url, headers=stream_headers)
                assert second.status_code == 409
                await heartbeats(response.aiter_lines(), 3, within=2.0)  # each within ten 0.2 s intervals


async def test_modern_disconnect_cancels_the_call(tmp_path: Path) -> None:
    """Closing a 2026-07-28 response stream cancels the tool: its task must not run to the end."""
    from mcp_platform.hooks import Hooks, ToolCallRecord

    records: list[ToolCallRecord] = []
    app = create_app(make_settings(tmp_path), capabilities=[])
    with running_server(app) as base:
        hooks: Hooks = app.state.mcp.hooks

        async def keep(record: ToolCallRecord) -> None:
            records.append(record)

        hooks.tool_call.append(keep)
        from tests.support import modern_headers, modern_meta

        params = {"name": "steps", "arguments": {"count": 2, "hold": "modern-disconnect"},
                  "_meta": {**modern_meta(), "progressToken": 1}}
        async with httpx2.AsyncClient(timeout=10) as http:
            with anyio.fail_after(5):
                async with http.stream("POST", base + "/mcp", headers=modern_headers("tools/call", name="steps"),
                                       json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                             "params": params}) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            break  # first progress event seen, the call holds at its gate: now hang up
        await eventually(lambda: records, timeout=3, what="the cancelled call's record")
    assert records[0].outcome == "cancelled"
    assert records[0].duration_s < 2
