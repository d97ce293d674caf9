"""Losing PostgreSQL (or the state database) gives clear errors, /readyz says what is down, and everything
recovers without a restart when the service is back."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from mcp_types import CallToolResult

from mcp_platform.app import create_app
from tests.services import drop_postgres_database, fresh_postgres_database, require_postgres
from tests.support import eventually, make_settings, mcp_client, running_server
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.anyio, pytest.mark.wire]
REPO = Path(__file__).parents[2]


async def test_postgres_outage_and_recovery(tmp_path: Path) -> None:
    base = require_postgres()
    url, name = await fresh_postgres_database(base)
    proxy = TcpProxy("127.0.0.1", int(url.split("@")[1].split("/")[0].split(":")[1]))
    try:
        proxied = url.replace(url.split("@")[1].split("/")[0], f"127.0.0.1:{proxy.port}")
        (tmp_path / "mcp-platform.toml").write_text('[flags.beta]\ndefault = false\ndescription = "Beta"\n')
        settings = make_settings(tmp_path, tools={"dirs": [REPO / "tools"]}, static={"root": REPO / "static"},
                                 database={"url": proxied}, state={"url": proxied})
        with running_server(create_app(settings)) as server:
            async with mcp_client(server + "/mcp", "2026-07-28") as client, httpx2.AsyncClient() as http:
                before = await client.call_tool("count_records", {"model": "Customer"})
                assert before.structured_content == {"model": "Customer", "count": 12}
                assert (await http.get(server + "/readyz")).status_code == 200

                proxy.cut()
                down = await client.call_tool("count_records", {"model": "Customer"})
                assert down.is_error is True
                assert "database is unavailable" in down.content[0].text  # type: ignore[union-attr]
                assert "127.0.0.1" not in down.content[0].text  # type: ignore[union-attr]
                ready = await http.get(server + "/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"]["database"] != "ok" and ready.json()["checks"]["state_db"] != "ok"
                flag = await client.call_tool("set_feature_flag", {"name": "beta", "enabled": True})
                assert "state database is unavailable" in flag.content[0].text  # type: ignore[union-attr]

                proxy.restore()
                async def counted() -> CallToolResult | None:
                    result = await client.call_tool("count_records", {"model": "Customer"})
                    return None if result.is_error else result

                after = await eventually(counted, timeout=10, interval=0.1, what="the database's return")
                assert after.structured_content == {"model": "Customer", "count": 12}
                assert (await http.get(server + "/readyz")).status_code == 200
    finally:
        proxy.close()
        await drop_postgres_database(base, name)


async def test_redis_outage_gives_503_and_the_session_goes_on(tmp_path: Path) -> None:
    from tests.cluster import flush_redis
    from tests.services import require_redis
    from tests.support import JSON_HEADERS, TOKEN

    redis_url = require_redis()  # the run's own database (MCP_PLATFORM_TEST_REDIS_URL), so parallel runs stay apart
    flush_redis(redis_url)
    database = redis_url.rsplit("/", 1)[1]
    port = int(redis_url.split("//")[1].split("/")[0].split(":")[1])
    proxy = TcpProxy("127.0.0.1", port)
    try:
        settings = make_settings(tmp_path, state={"url": f"sqlite+aiosqlite:///{tmp_path}/state.db",
                                                  "redis_url": f"redis://127.0.0.1:{proxy.port}/{database}"})
        headers = {**JSON_HEADERS, "authorization": f"Bearer {TOKEN}"}
        with running_server(create_app(settings, capabilities=[])) as server:
            async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
                init = await http.post(server + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                                              "params": {"protocolVersion": "2025-11-25"}})
                session = {"mcp-session-id": init.headers["mcp-session-id"]}
                ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
                assert (await http.post(server + "/mcp", headers=session, json=ping)).status_code == 200

                proxy.cut()
                down = await http.post(server + "/mcp", headers=session, json=ping)
                assert down.status_code == 503
                assert "redis is unavailable" in down.json()["error"]["message"]
                assert down.headers["retry-after"] == "5"
                ready = await http.get(server + "/readyz")
                assert ready.status_code == 503 and ready.json()["checks"]["redis"] != "ok"

                proxy.restore()
                async def answered() -> httpx2.Response | None:
                    response = await http.post(server + "/mcp", headers=session, json=ping)
                    return response if response.status_code == 200 else None

                back = await eventually(answered, timeout=10, interval=0.1, what="Redis's return")
                assert back.json()["result"] == {}
                assert (await http.get(server + "/readyz")).status_code == 200
    finally:
        proxy.close()
