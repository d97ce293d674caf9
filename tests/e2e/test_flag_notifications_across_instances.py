"""Two instances sharing Redis and the state database: when a flag that gates a tool flips on A, B's listening
clients are told only once B itself lists the new tools, so a client that lists at once (as clients do) never
gets the old list. Before, B forwarded A's announcement at once and reloaded the flag 20-30 ms later."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import redis.asyncio as aioredis

from mcp_platform.app import create_app
from tests.e2e.test_change_notifications import GATED
from tests.services import require_redis
from tests.support import make_settings, mcp_client, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.wire]

FLIPS = 20


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    url = require_redis()
    client = aioredis.from_url(url)
    try:
        await client.flushdb()
        yield url
        await client.flushdb()
    finally:
        await client.aclose()


async def test_list_changed_on_another_instance_comes_after_its_list_changed(tmp_path: Path, redis_url: str) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "gated.py").write_text(GATED)
    (tmp_path / "mcp-platform.toml").write_text('[flags.beta]\ndefault = false\ndescription = "Beta"\n')
    settings = make_settings(tmp_path, tools={"dirs": [tools]},
                             state={"url": f"sqlite+aiosqlite:///{tmp_path}/state.db", "redis_url": redis_url})
    with running_server(create_app(settings)) as a, running_server(create_app(settings)) as b:
        async with (mcp_client(a + "/mcp", "2026-07-28") as on_a,
                    mcp_client(b + "/mcp", "2026-07-28") as on_b,
                    on_b.listen(tools_list_changed=True) as subscription):
            stale = []
            for flip in range(FLIPS):
                enabled = flip % 2 == 0
                await on_a.call_tool("set_feature_flag", {"name": "beta", "enabled": enabled})
                with anyio.fail_after(10):
                    event = await anext(aiter(subscription))
                assert type(event).__name__ == "ToolsListChanged", event
                listed = "beta_report" in {t.name for t in (await on_b.list_tools()).tools}
                if listed != enabled:
                    stale.append(flip)
            assert stale == [], f"B announced the change before it listed it, in flips {stale} of {FLIPS}"
