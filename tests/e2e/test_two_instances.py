"""Issue 6: two real server processes share Redis and PostgreSQL; any instance answers any request."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_platform.app import create_app
from tests.cluster import Instance, cluster, flush_redis, proxied, write_config
from tests.services import drop_postgres_database, fresh_postgres_database, require_postgres, require_redis
from tests.support import (
    JSON_HEADERS,
    TOKEN,
    eventually,
    make_settings,
    mcp_client,
    modern_headers,
    modern_request,
    running_server,
)

pytestmark = [pytest.mark.anyio, pytest.mark.wire]
REPO = Path(__file__).parents[2]
AUTH = {"authorization": f"Bearer {TOKEN}"}
GATED = '''from mcp_platform import tool


@tool(read_only=True, title="Beta report", flag="beta")
async def beta_report() -> str:
    """Only while the beta flag is on."""
    return "beta"
'''


@pytest.fixture
async def postgres() -> AsyncIterator[str]:
    base = require_postgres()
    url, name = await fresh_postgres_database(base)
    try:
        yield url
    finally:
        await drop_postgres_database(base, name)


@pytest.fixture
def redis_url() -> str:
    url = require_redis()  # the run's own database (MCP_PLATFORM_TEST_REDIS_URL), so parallel runs stay apart
    flush_redis(url)
    return url


@pytest.fixture
def tools_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tools"
    shutil.copytree(REPO / "tools", folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "tests" / "fixtures" / "tools" / "demo.py", folder / "demo.py")
    (folder / "gated.py").write_text(GATED)
    return folder


@pytest.fixture
def instances(tmp_path: Path, postgres: str, redis_url: str, tools_dir: Path) -> Iterator[list[Instance]]:
    config = write_config(tmp_path, postgres_url=postgres, redis_url=redis_url, tools_dir=tools_dir,
                          static_root=REPO / "static")
    with cluster(config, tmp_path) as running:
        yield running


async def test_session_alternates_and_survives_sigkill(instances: list[Instance]) -> None:
    a, b = instances
    with proxied(instances) as (url, seen):
        async with mcp_client(url + "/mcp", "legacy") as client:
            for n in range(6):
                result = await client.call_tool("add", {"a": n, "b": 1})
                assert result.structured_content == {"total": n + 1}
            session_ids = {sid for _, sid in seen if sid}
            assert len(session_ids) == 1
            assert {upstream for upstream, sid in seen if sid} == {a.url, b.url}
            a.kill()
            for n in range(4):
                result = await client.call_tool("add", {"a": n, "b": 2})
                assert result.structured_content == {"total": n + 2}
            assert (await client.list_tools()).tools
        assert {sid for _, sid in seen if sid} == session_ids


async def test_rate_limit_budget_is_shared(tmp_path: Path, postgres: str, redis_url: str, tools_dir: Path) -> None:
    config = write_config(tmp_path, postgres_url=postgres, redis_url=redis_url, tools_dir=tools_dir,
                          static_root=REPO / "static", extra="[rate_limit]\nper_minute = 1\nburst = 10\n")
    with cluster(config, tmp_path) as (a, b):
        async with httpx2.AsyncClient(headers=AUTH) as http:
            statuses = []
            for n in range(11):
                target = (a, b)[n % 2]
                response = await http.post(target.url + "/mcp", headers=modern_headers("tools/list"),
                                           json=modern_request("tools/list", msg_id=n))
                statuses.append(response.status_code)
            assert statuses[:10] == [200] * 10
            assert statuses[10] == 429
            again = await http.post(a.url + "/mcp", headers=modern_headers("tools/list"),
                                    json=modern_request("tools/list", msg_id=99))
            assert again.status_code == 429 and int(again.headers["retry-after"]) >= 1


async def test_flag_and_list_changes_cross_instances(instances: list[Instance]) -> None:
    a, b = instances
    async with (mcp_client(a.url + "/mcp", "2026-07-28") as on_a, mcp_client(b.url + "/mcp", "2026-07-28") as on_b,
                on_b.listen(tools_list_changed=True) as subscription):
        assert "beta_report" not in {t.name for t in (await on_b.list_tools()).tools}
        await on_a.call_tool("set_feature_flag", {"name": "beta", "enabled": True})
        with anyio.fail_after(5):
            async for event in subscription:
                assert type(event).__name__ == "ToolsListChanged"
                break

        async def beta_on_b() -> bool:
            flags = {f["name"]: f for f in (await on_b.call_tool("feature_flags", {})).structured_content["flags"]}
            return bool(flags["beta"]["enabled"])

        await eventually(beta_on_b, interval=0.05, what="the flag on instance b")
        assert "beta_report" in {t.name for t in (await on_b.list_tools()).tools}
        assert (await on_b.call_tool("beta_report", {})).structured_content == {"result": "beta"}


async def test_stream_cut_on_one_instance_resumes_on_the_other(instances: list[Instance]) -> None:
    a, b = instances
    async with httpx2.AsyncClient(headers=AUTH, timeout=10) as http:
        init = await http.post(a.url + "/mcp", headers=JSON_HEADERS, json={
            "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}})
        session = {"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
            "name": "steps", "arguments": {"count": 6, "hold": "cut", "hold_after": 2}, "_meta": {"progressToken": 1}}}
        seen: list[str] = []
        last_id = None
        with anyio.fail_after(5):
            async with http.stream("POST", a.url + "/mcp", headers={**JSON_HEADERS, **session},
                                   json=call) as response:
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        last_id = line[4:]
                    elif line.startswith("data: ") and len(line) > 6:
                        seen.append(line[6:])
                        if len(seen) == 2:
                            break
        assert last_id is not None
        # Only now may the call go on (its gate lives on a, where it runs): what follows comes after the cut.
        await http.post(a.url + "/mcp", headers={**JSON_HEADERS, **session}, json={
            "jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "open_gate",
                                                                           "arguments": {"name": "cut"}}})
        with anyio.fail_after(10):
            resumed = await http.get(b.url + "/mcp", headers={**session, "accept": "text/event-stream",
                                                              "last-event-id": last_id})
    rest = [line[6:] for line in resumed.text.splitlines() if line.startswith("data: ") and len(line) > 6]
    messages = [json.loads(m) for m in seen + rest]
    progress = [m["params"]["progress"] for m in messages if m.get("method") == "notifications/progress"]
    assert progress == [1, 2, 3, 4, 5, 6]
    assert [m["result"]["structuredContent"] for m in messages if m.get("id") == 5] == [{"result": "did 6 steps"}]


QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("list_models", {}),
    ("describe_model", {"model": "Order"}),
    ("count_records", {"model": "Order", "where": {"status": {"in": ["paid", "shipped"]}}}),
    ("query_records", {"model": "Order", "order_by": ["-placed_on"], "limit": 7}),
    ("query_records", {"model": "Customer", "where": {"or": [{"city": "Oslo"}, {"city": {"is_null": True}}]},
                       "order_by": ["city", "name"]}),
    ("query_records", {"model": "Product", "where": {"price": {"gte": "20"}}, "fields": ["sku", "price"]}),
    ("get_record", {"model": "Customer", "id": 3}),
    ("top_customers", {"limit": 3}),
]


async def test_orm_tools_give_the_same_answers_on_postgres_and_sqlite(instances: list[Instance],
                                                                       tmp_path: Path) -> None:
    (tmp_path / "sqlite").mkdir()
    sqlite = make_settings(tmp_path / "sqlite", tools={"dirs": [REPO / "tools"]}, static={"root": REPO / "static"})
    with running_server(create_app(sqlite)) as single:
        async with (mcp_client(instances[1].url + "/mcp", "2026-07-28") as pg,
                    mcp_client(single + "/mcp", "2026-07-28") as lite):
            for tool, arguments in QUERIES:
                on_pg = await pg.call_tool(tool, arguments)
                on_lite = await lite.call_tool(tool, arguments)
                assert on_pg.is_error is False and on_lite.is_error is False, (tool, on_pg.content)
                assert _comparable(on_pg.structured_content) == _comparable(on_lite.structured_content), tool


def _comparable(value: Any) -> Any:
    """Drop what legitimately differs between databases: row estimates and the dialect-specific column types."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in {"row_estimate", "rows_estimate", "type",
                                                                         "sql_type", "next_cursor", "dialect"}}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


async def test_a_client_carries_on_while_one_instance_drains(instances: list[Instance]) -> None:
    """Issue 14: SIGTERM one instance while a client's session goes on through the proxy: the draining instance
    refuses new calls with 503 (the proxy passes them to the other), then exits; the client sees no error."""
    a, b = instances
    with proxied(instances) as (url, seen):
        async with mcp_client(url + "/mcp", "legacy") as client:
            for n in range(4):
                assert (await client.call_tool("add", {"a": n, "b": 1})).structured_content == {"total": n + 1}
            a.process.terminate()
            served_after = len(seen)
            with anyio.fail_after(30):
                for n in range(30):  # calls during the drain (a few: the token's burst is 60), then after the exit
                    assert (await client.call_tool("add", {"a": n, "b": 2})).structured_content == {"total": n + 2}
                    if a.process.poll() is None:
                        await anyio.sleep(0.05)  # spaced, so the drain is covered without spending the budget
                    elif n >= 4:
                        break
                while a.process.poll() is None:
                    await anyio.sleep(0.05)
            assert (await client.call_tool("add", {"a": 1, "b": 1})).structured_content == {"total": 2}
            assert a.process.returncode in (0, -15, 143)
            assert {upstream for upstream, _ in seen[served_after:]} == {b.url}
            assert (await client.list_tools()).tools
    assert "Application shutdown complete" in Path(a.log.name).read_text()
