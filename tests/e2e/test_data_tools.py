"""Issue 4 end to end: the data tools on the shipped example shop and static files, through the official client in
both eras, against a real server."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from mcp_platform.app import create_app
from tests.support import create_token, make_settings, mcp_client, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.wire]
REPO = Path(__file__).parents[2]
MODES = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("data")
    settings = make_settings(tmp, tools={"dirs": [REPO / "tools"]}, static={"root": REPO / "static"},
                             rate_limit={"enabled": False})
    with running_server(create_app(settings)) as url:
        yield url


async def _ok(client: Any, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    assert result.is_error is False, result.content
    return result.structured_content


async def _error(client: Any, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error is True, result.structured_content
    text: str = result.content[0].text
    return text


@pytest.mark.parametrize("mode", MODES)
async def test_paging_returns_exactly_count_records_distinct_rows(base: str, mode: str) -> None:
    async with mcp_client(base + "/mcp", mode) as client:
        models = {m["name"]: m for m in (await _ok(client, "list_models"))["models"]}
        assert {"Customer", "Order", "OrderItem", "Product"} <= set(models)
        assert models["Customer"]["writable"] is True and models["Product"]["writable"] is False
        described = await _ok(client, "describe_model", model="Order")
        assert "status" in {c["name"] for c in described["columns"]}
        for where, order_by in [(None, None), ({"status": {"in": ["paid", "shipped"]}}, ["-placed_on"])]:
            total = (await _ok(client, "count_records", model="Order", where=where))["count"]
            ids: list[int] = []
            cursor = None
            for _ in range(100):
                page = await _ok(client, "query_records", model="Order", where=where, order_by=order_by, limit=4,
                                 cursor=cursor)
                ids += [r["id"] for r in page["records"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert len(ids) == len(set(ids)) == total > 0


@pytest.mark.parametrize("mode", MODES)
async def test_records_round_trip_and_read_only_models_refuse_writes(base: str, mode: str) -> None:
    async with mcp_client(base + "/mcp", mode) as client:
        created = await _ok(client, "create_record", model="Customer",
                            values={"email": f"ada-{mode}@example.com", "name": "Ada", "city": "London"})
        record_id = created["record"]["id"]
        fetched = await _ok(client, "get_record", model="Customer", id=record_id)
        assert fetched["record"]["name"] == "Ada"
        updated = await _ok(client, "update_record", model="Customer", id=record_id, values={"city": "Paris"})
        assert updated["record"]["city"] == "Paris"
        await _ok(client, "delete_record", model="Customer", id=record_id)
        assert f"no customer record has id = {record_id}" in (
            await _error(client, "get_record", model="Customer", id=record_id)).lower()
        assert "writable" in (await _error(client, "create_record", model="Product", values={"sku": "x"})).lower()


@pytest.mark.parametrize("value", ["' OR 1=1 --", "1; DROP TABLE customers", "%", "\\", "Robert'); --"])
async def test_injection_strings_match_literally_and_change_nothing(base: str, value: str) -> None:
    async with mcp_client(base + "/mcp", "2026-07-28") as client:
        before = (await _ok(client, "count_records", model="Customer"))["count"]
        found = await _ok(client, "query_records", model="Customer", where={"name": value})
        assert found["records"] == []
        assert (await _ok(client, "count_records", model="Customer"))["count"] == before


@pytest.mark.parametrize(("arguments", "expect"), [
    ({"model": "Nope"}, "Customer"),
    ({"model": "Customer", "where": {"no_such_field": 1}}, "email"),
    ({"model": "Customer", "where": {"name": {"regex": "x"}}}, "ilike"),
    ({"model": "Order", "where": {"total": "lots"}}, "total"),
    ({"model": "Customer", "cursor": "forged-cursor"}, "cursor"),
    ({"model": "Customer", "fields": ["internal_note"]}, "internal_note"),
])
async def test_bad_queries_get_errors_that_say_what_is_valid(base: str, arguments: dict[str, Any],
                                                              expect: str) -> None:
    async with mcp_client(base + "/mcp", "legacy") as client:
        assert expect in await _error(client, "query_records", **arguments)


async def test_huge_limit_is_refused_by_the_schema_and_clamped_below_it(base: str) -> None:
    async with mcp_client(base + "/mcp", "2026-07-28") as client:
        assert "limit" in await _error(client, "query_records", model="OrderItem", limit=10**9)
        page = await _ok(client, "query_records", model="OrderItem", limit=1000)
        assert len(page["records"]) <= 500


@pytest.mark.parametrize("mode", MODES)
async def test_resource_read_returns_the_same_bytes_as_the_tool(base: str, mode: str) -> None:
    async with mcp_client(base + "/mcp", mode) as client:
        listing = await _ok(client, "list_static_files", recursive=True, limit=1000)
        paths = [e["path"] for e in listing["entries"] if not e["is_dir"]]
        assert "img/logo.png" in paths and ".env.example" not in paths
        for path in ["index.html", "img/logo.png", "data/products.csv"]:
            chunk = await _ok(client, "read_static_file", path=path)
            assert chunk["truncated"] is False
            content = chunk["content"]
            via_tool = content.encode() if chunk["encoding"] == "text" else base64.b64decode(content)
            contents = (await client.read_resource(f"static:///{path}")).contents[0]
            via_resource = contents.text.encode() if hasattr(contents, "text") else base64.b64decode(contents.blob)
            assert via_resource == via_tool == (REPO / "static" / path).read_bytes()


@pytest.mark.parametrize("path", ["../pyproject.toml", "/etc/passwd", "%2e%2e/pyproject.toml", "img/../../README.md",
                                  "..\\pyproject.toml", "~/.bashrc", ".env.example", "index.html\x00.png"])
async def test_escaping_paths_are_refused_over_the_wire(base: str, path: str) -> None:
    async with mcp_client(base + "/mcp", "2026-07-28") as client:
        message = await _error(client, "read_static_file", path=path)
        assert "[project]" not in message and "root:" not in message
        with pytest.raises(MCPError) as raised:
            await client.read_resource("static:///" + path.replace("\x00", "%00"))
        assert raised.value.error.code == -32602


async def test_search_reports_progress(base: str) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with mcp_client(base + "/mcp", "legacy") as client:
        result = await client.call_tool("search_static_files", {"query": "mcp"}, progress_callback=on_progress)
    assert result.is_error is False
    assert seen and seen == sorted(seen)


async def test_read_only_token_cannot_write(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, tools={"dirs": [REPO / "tools"]}, static={"root": REPO / "static"})
    reader = await create_token(settings, "reader", ["read"])
    with running_server(create_app(settings)) as url:
        async with mcp_client(url + "/mcp", "2026-07-28", token=reader) as client:
            with pytest.raises(MCPError) as refused:
                await client.call_tool("delete_record", {"model": "Customer", "id": 1})
            assert refused.value.error.code == -32003
            assert (await _ok(client, "get_record", model="Customer", id=1))["record"]["id"] == 1


async def test_maintenance_flag_stops_order_changes(tmp_path: Path) -> None:
    (tmp_path / "mcp-platform.toml").write_text(
        '[flags.maintenance_mode]\ndefault = false\ndescription = "Maintenance"\n')
    settings = make_settings(tmp_path, tools={"dirs": [REPO / "tools"]}, static={"root": REPO / "static"})
    with running_server(create_app(settings)) as url:
        async with mcp_client(url + "/mcp", "2026-07-28") as client:
            pending = await _ok(client, "query_records", model="Order", where={"status": "pending"}, limit=1)
            order_id = pending["records"][0]["id"]
            await _ok(client, "set_feature_flag", name="maintenance_mode", enabled=True)
            assert "maintenance" in await _error(client, "cancel_order", order_id=order_id)
            status = await _ok(client, "site_status")
            assert status["open_for_orders"] is False
            await _ok(client, "set_feature_flag", name="maintenance_mode", enabled=False)
            cancelled = await _ok(client, "cancel_order", order_id=order_id)
            assert cancelled == {"order_id": order_id, "previous_status": "pending", "status": "cancelled"}
