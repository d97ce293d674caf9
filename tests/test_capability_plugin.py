"""A capability defined outside the package is served like a built-in one: its tool, its resource, its backend
and its health check, with nothing but `create_app(settings, capabilities=[*default_capabilities(), mine])`."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel

from mcp_platform.app import create_app, default_capabilities
from mcp_platform.capabilities import Capability, Started
from mcp_platform.context import ToolContext
from mcp_platform.core import Core
from mcp_platform.errors import ConfigError
from mcp_platform.hooks import Hooks, ToolCallRecord
from mcp_platform.registry import tool
from mcp_platform.resources import resource
from tests.support import JSON_HEADERS, asgi_client, make_settings, open_session

pytestmark = pytest.mark.anyio


class Shelf:
    """The capability's store: stock counts (in memory, for the test)."""

    def __init__(self, items: dict[str, int]) -> None:
        self.items = dict(items)
        self.problem: str | None = None
        self.calls_seen: list[str] = []
        self.closed = False

    async def health(self) -> str | None:
        return self.problem

    async def on_tool_call(self, record: ToolCallRecord) -> None:
        self.calls_seen.append(record.tool)


class StockCount(BaseModel):
    item: str
    units: int


@tool(read_only=True, title="Stock count")
async def stock_count(ctx: ToolContext, item: str) -> StockCount:
    """How many units of `item` are on the shelf.

    Args:
        item: The item's name.
    """
    return StockCount(item=item, units=ctx.backend(Shelf).items.get(item, 0))


@resource("shelf://items", mime_type="text/plain")
def shelf_items() -> str:
    """Every item the shelf stocks."""
    return "mug\nposter\n"


async def start_shelf(core: Core, stack: AsyncExitStack) -> Started:
    shelf = Shelf({"mug": 3, "poster": 0})

    async def close() -> None:
        shelf.closed = True

    stack.push_async_callback(close)
    return Started(backends=[shelf], health={"shelf": shelf.health}, observers=Hooks(tool_call=[shelf.on_tool_call]))


SHELF = Capability(name="shelf", tools=[stock_count], resources=[shelf_items], start=start_shelf)


async def _rpc(client: httpx2.AsyncClient, session: str, method: str, params: dict[str, Any]) -> Any:
    response = await client.post("/mcp", headers={**JSON_HEADERS, "mcp-session-id": session},
                                 json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    assert response.status_code == 200, response.text
    return response.json()["result"]


async def test_a_capability_from_outside_is_served_and_reported_by_readyz(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), capabilities=[*default_capabilities(), SHELF])
    async with asgi_client(app) as client:
        session = await open_session(client)
        listed = await _rpc(client, session, "tools/list", {})
        names = [t["name"] for t in listed["tools"]]
        assert "stock_count" in names and "server_config" in names  # beside the built-in catalogue

        called = await _rpc(client, session, "tools/call", {"name": "stock_count", "arguments": {"item": "mug"}})
        assert called["structuredContent"] == {"item": "mug", "units": 3} and not called.get("isError")
        shelf = app.state.mcp.core.backends.get(Shelf)
        assert shelf.calls_seen == ["stock_count"]  # its observer sees the calls

        resources = await _rpc(client, session, "resources/list", {})
        assert "shelf://items" in [r["uri"] for r in resources["resources"]]
        read = await _rpc(client, session, "resources/read", {"uri": "shelf://items"})
        assert read["contents"] == [{"uri": "shelf://items", "mimeType": "text/plain", "text": "mug\nposter\n"}]

        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["shelf"] == "ok"
        assert ready.json()["checks"]["database"] == "ok"  # the built-in checks still run
        shelf.problem = "the shelf fell over"
        down = await client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable" and down.json()["checks"]["shelf"] == "the shelf fell over"
        shelf.problem = None
        assert (await client.get("/readyz")).status_code == 200
    assert shelf.closed  # its clean-up ran at shutdown


async def test_two_capabilities_cannot_report_the_same_health_check(tmp_path: Path) -> None:
    twin = Capability(name="twin", start=start_shelf)
    app = create_app(make_settings(tmp_path), capabilities=[SHELF, twin])
    with pytest.raises(ConfigError, match="twin reports health check 'shelf'"):
        async with asgi_client(app):
            pass


async def test_a_resource_that_is_not_decorated_is_refused_at_start(tmp_path: Path) -> None:
    def plain() -> str:
        return "x"

    app = create_app(make_settings(tmp_path), capabilities=[Capability(name="odd", resources=[plain])])
    with pytest.raises(ConfigError, match="odd lists .* but it is not decorated with @resource"):
        async with asgi_client(app):
            pass


async def test_the_readme_capability_example_is_served(tmp_path: Path) -> None:
    """The README's "Write your own capability" block, run as it is written, so it cannot drift."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Write your own capability", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"__name__": "readme_capability"}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    app = create_app(make_settings(tmp_path), capabilities=[*default_capabilities(), namespace["SHELF"]])
    async with asgi_client(app) as client:
        session = await open_session(client)
        called = await _rpc(client, session, "tools/call", {"name": "stock_count", "arguments": {"item": "mug"}})
        assert called["structuredContent"] == {"result": 3}
        read = await _rpc(client, session, "resources/read", {"uri": "shelf://items"})
        assert read["contents"][0]["text"] == "mug\n"
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["shelf"] == "ok"
