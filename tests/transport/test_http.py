"""The HTTP framing of the MCP endpoint, in process: which methods a protocol era allows, and when a reply is JSON
and when an SSE stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from mcp_platform.app import create_app
from tests.support import asgi_client, make_settings, modern_headers, modern_meta, modern_request, open_session

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx2.AsyncClient]:
    async with asgi_client(create_app(make_settings(tmp_path), capabilities=[])) as c:
        yield c


async def test_get_without_event_stream_accept_is_406(client: httpx2.AsyncClient) -> None:
    session = await open_session(client)
    response = await client.get("/mcp", headers={"accept": "application/json", "mcp-session-id": session})
    assert response.status_code == 406


async def test_get_and_delete_need_a_session(client: httpx2.AsyncClient) -> None:
    assert (await client.get("/mcp", headers={"accept": "text/event-stream"})).status_code == 400
    assert (await client.delete("/mcp")).status_code == 400


async def test_modern_get_and_delete_are_405(client: httpx2.AsyncClient) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(method, "/mcp", headers=modern_headers("x"))
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"


async def test_progress_request_streams_sse_before_the_result(client: httpx2.AsyncClient) -> None:
    params = {"name": "steps", "arguments": {"count": 3}, "_meta": {**modern_meta(), "progressToken": "p1"}}
    response = await client.post("/mcp", headers=modern_headers("tools/call", name="steps"),
                                 json={"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": params})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert len(events) == 4 and '"notifications/progress"' in events[0] and '"id":4' in events[-1]


async def test_call_without_notifications_answers_json(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", headers=modern_headers("tools/call", name="steps"),
                                 json=modern_request("tools/call", {"name": "steps", "arguments": {"count": 2}}))
    assert response.headers["content-type"] == "application/json"
