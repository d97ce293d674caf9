"""A write either commits and says so, or fails and changes nothing: a record too big to echo in full must not
come back as an error after it was stored (a model that retries would create duplicates)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mcp_platform.app import create_app
from tests.support import asgi_client, make_settings, modern_headers, modern_request

pytestmark = pytest.mark.anyio
REPO = Path(__file__).parents[2]
NOTE = "n" * 59_990 + "0123456789"  # 60,000 characters
ORDER = {"customer_id": 1, "status": "pending", "placed_on": "2026-01-01", "note": NOTE}


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[tuple[httpx2.AsyncClient, Path]]:
    settings = make_settings(tmp_path, tools={"dirs": [REPO / "tools"]}, rate_limit={"enabled": False})
    async with asgi_client(create_app(settings)) as client:
        yield client, tmp_path / "app.db"


async def _call(client: httpx2.AsyncClient, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/mcp", headers=modern_headers("tools/call", name),
                                 json=modern_request("tools/call", {"name": name, "arguments": arguments}))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def _notes(db: Path) -> dict[int, str | None]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT id, note FROM orders").fetchall())


async def test_a_create_too_big_to_echo_commits_and_says_so(shop: tuple[httpx2.AsyncClient, Path]) -> None:
    client, db = shop
    before = _notes(db)
    result = await _call(client, "create_record", {"model": "Order", "values": ORDER})
    after = _notes(db)
    assert not result.get("isError"), result["content"][0]["text"][:300]
    assert len(after) == len(before) + 1
    reply = result["structuredContent"]
    created = reply["record"]["id"]
    assert after[created] == NOTE  # stored in full
    assert reply["truncated"] is True and reply["truncated_fields"] == ["note"]
    assert NOTE.startswith(reply["record"]["note"]) and len(reply["record"]["note"]) < len(NOTE)
    assert reply["record"]["customer_id"] == 1 and reply["record"]["status"] == "pending"


async def test_an_update_too_big_to_echo_commits_and_says_so(shop: tuple[httpx2.AsyncClient, Path]) -> None:
    client, db = shop
    before = _notes(db)
    result = await _call(client, "update_record", {"model": "Order", "id": 3, "values": {"note": NOTE}})
    after = _notes(db)
    assert not result.get("isError"), result["content"][0]["text"][:300]
    assert after == {**before, 3: NOTE}
    reply = result["structuredContent"]
    assert reply["record"]["id"] == 3 and reply["truncated"] is True and reply["truncated_fields"] == ["note"]


async def test_reading_and_deleting_a_record_too_big_to_echo(shop: tuple[httpx2.AsyncClient, Path]) -> None:
    client, db = shop
    await _call(client, "update_record", {"model": "Order", "id": 3, "values": {"note": NOTE}})
    fetched = await _call(client, "get_record", {"model": "Order", "id": 3})
    assert not fetched.get("isError") and fetched["structuredContent"]["truncated"] is True
    deleted = await _call(client, "delete_record", {"model": "Order", "id": 3})
    assert not deleted.get("isError"), deleted["content"][0]["text"][:300]
    assert 3 not in _notes(db)
    assert deleted["structuredContent"]["truncated_fields"] == ["note"]


async def test_a_small_write_is_echoed_whole(shop: tuple[httpx2.AsyncClient, Path]) -> None:
    client, _ = shop
    result = await _call(client, "create_record", {"model": "Order", "values": {**ORDER, "note": "short"}})
    reply = result["structuredContent"]
    assert reply["record"]["note"] == "short"
    assert "truncated" not in reply and "truncated_fields" not in reply  # the reply's shape is as it always was
