"""Flag-gated tools and static-file changes reach listening clients (handshake GET stream and 2026 listen)."""

from __future__ import annotations

from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from mcp_platform.app import create_app
from mcp_platform.capabilities.static.watch import StaticWatcher
from mcp_platform.stores.memory import MemoryNotifier
from tests.support import make_settings, mcp_client, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.wire]

GATED = '''from mcp_platform import tool


@tool(read_only=True, title="Beta report", flag="beta")
async def beta_report() -> str:
    """Only while the beta flag is on."""
    return "beta"
'''


async def test_flag_gated_tool_appears_with_its_flag(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "gated.py").write_text(GATED)
    (tmp_path / "mcp-platform.toml").write_text('[flags.beta]\ndefault = false\ndescription = "Beta"\n')
    settings = make_settings(tmp_path, tools={"dirs": [tools]})
    heard: list[str] = []

    async def on_message(message: object) -> None:
        if isinstance(message, types.ServerNotification):
            heard.append(message.method)

    with running_server(create_app(settings)) as base:
        async with (mcp_client(base + "/mcp", "legacy", message_handler=on_message) as legacy,
                    mcp_client(base + "/mcp", "2026-07-28") as modern,
                    modern.listen(tools_list_changed=True) as subscription):
            assert "beta_report" not in {t.name for t in (await legacy.list_tools()).tools}
            with pytest.raises(MCPError) as hidden:  # a hidden tool is answered like an unknown one
                await modern.call_tool("beta_report", {})
            assert hidden.value.error.code == -32602
            await anyio.sleep(0.3)  # the legacy client's GET stream opens
            await modern.call_tool("set_feature_flag", {"name": "beta", "enabled": True})
            with anyio.fail_after(5):
                async for event in subscription:
                    assert type(event).__name__ == "ToolsListChanged"
                    break
                while "notifications/tools/list_changed" not in heard:
                    await anyio.sleep(0.05)
            assert "beta_report" in {t.name for t in (await modern.list_tools()).tools}
            assert (await legacy.call_tool("beta_report", {})).structured_content == {"result": "beta"}


async def test_static_watcher_reports_added_and_changed_files(tmp_path: Path) -> None:
    root = tmp_path / "static"
    (root / "css").mkdir(parents=True)
    (root / "css" / "site.css").write_text("a{}")
    notifier = MemoryNotifier()
    watcher = StaticWatcher(root, notifier, interval=60, allow_hidden=False)
    received: list[dict[str, object]] = []

    async def collect() -> None:
        async for event in notifier.subscribe():
            received.append(event)

    async with anyio.create_task_group() as tg:
        tg.start_soon(collect)
        await anyio.sleep(0)
        before = watcher.snapshot()
        (root / "new page.html").write_text("<p>new</p>")
        (root / "css" / "site.css").write_text("a{color:red}")
        (root / ".secret").write_text("hidden files are not watched")
        await watcher.scan_once(before)
        await anyio.sleep(0)
        tg.cancel_scope.cancel()
    assert {"kind": "resources"} in received
    assert {"kind": "resource", "uri": "static:///css/site.css"} in received
    assert not any(".secret" in str(event) for event in received)


async def test_subscribed_resource_update_reaches_a_legacy_session(tmp_path: Path) -> None:
    root = tmp_path / "static"
    root.mkdir()
    (root / "page.html").write_text("v1")
    settings = make_settings(tmp_path, static={"root": root, "watch_seconds": 0.1})
    updated = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ServerNotification) and message.method == "notifications/resources/updated":
            updated.set()

    with running_server(create_app(settings)) as base:
        async with mcp_client(base + "/mcp", "legacy", message_handler=on_message) as client:
            with pytest.warns(MCPDeprecationWarning):  # removed at 2026-07-28; this is the handshake-era path
                await client.session.subscribe_resource("static:///page.html")
            await anyio.sleep(0.4)
            (root / "page.html").write_text("v2 is longer")
            with anyio.fail_after(5):
                await updated.wait()
