"""Losing PostgreSQL (or the state database) gives clear errors, /readyz says what is down, and everything
recovers without a restart when the service is back."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2
import pytest

from mcp_platform.app import create_app
from tests.services import drop_postgres_database, fresh_postgres_database, require_postgres
from tests.support import make_settings, mcp_client, running_server
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
                with anyio.fail_after(10):
                    while (after := await client.call_tool("count_records", {"model": "Customer"})).is_error:
                        await anyio.sleep(0.1)
                assert after.structured_content == {"model": "Customer", "count": 12}
                assert (await http.get(server + "/readyz")).status_code == 200
    finally:
        proxy.close()
        await drop_postgres_database(base, name)
