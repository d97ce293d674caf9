"""The long-lived SSE streams (handshake-era GET, 2026-07-28 subscriptions/listen) over a real socket: headers,
the opening comment, change events, and a client that leaves freeing its stream at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest

from mcp_platform.app import create_app
from mcp_platform.stores.base import Notifier
from tests.support import JSON_HEADERS, TOKEN, make_settings, modern_headers, modern_request, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.wire]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Notifier]]:
    app = create_app(make_settings(tmp_path, http={"sse_heartbeat_seconds": 0.2}), capabilities=[])
    with running_server(app) as base:
        yield base + "/mcp", app.state.mcp.core.notifier


async def test_get_stream_headers_events_and_release_on_disconnect(served: tuple[str, Notifier]) -> None:
    url, notifier = served
    async with httpx2.AsyncClient(headers={**JSON_HEADERS, "authorization": f"Bearer {TOKEN}"}, timeout=10) as http:
        init = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                          "params": {"protocolVersion": "2025-11-25"}})
        stream_headers = {"accept": "text/event-stream", "mcp-session-id": init.headers["mcp-session-id"]}
        with anyio.fail_after(5):
            async with http.stream("GET", url, headers=stream_headers) as response:
                assert response.headers["content-type"] == "text/event-stream"
                assert response.headers["cache-control"] == "no-cache, no-transform"
                assert response.headers["x-accel-buffering"] == "no"
                lines = response.aiter_lines()
                assert await anext(lines) == ": ping"  # sent at once: the client sees the stream open
                await notifier.publish({"kind": "tools"})
                async for line in lines:
                    if line.startswith("data: "):
                        assert json.loads(line[6:])["method"] == "notifications/tools/list_changed"
                        break
            # The client hung up: the server notices, ends the stream and frees the session's one GET stream.
            while True:
                async with http.stream("GET", url, headers=stream_headers) as again:
                    if again.status_code == 200:
                        break
                    assert again.status_code == 409
                await anyio.sleep(0.02)


async def test_listen_stream_acknowledges_then_forwards_granted_kinds(served: tuple[str, Notifier]) -> None:
    url, notifier = served
    listen = modern_request("subscriptions/listen", {"notifications": {"promptsListChanged": True}}, msg_id="sub")
    async with httpx2.AsyncClient(timeout=10) as http:
        with anyio.fail_after(5):
            async with http.stream("POST", url, headers=modern_headers("subscriptions/listen"),
                                   json=listen) as response:
                assert response.headers["content-type"] == "text/event-stream"
                assert response.headers["x-accel-buffering"] == "no"
                messages = []
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    messages.append(json.loads(line[6:]))
                    if len(messages) == 1:
                        await notifier.publish({"kind": "tools"})  # not granted: never forwarded
                        await notifier.publish({"kind": "prompts"})
                    else:
                        break
    assert messages[0]["method"] == "notifications/subscriptions/acknowledged"
    assert messages[0]["params"]["notifications"] == {"promptsListChanged": True}
    assert messages[1]["method"] == "notifications/prompts/list_changed"
    assert messages[1]["params"]["_meta"] == {"io.modelcontextprotocol/subscriptionId": "sub"}
