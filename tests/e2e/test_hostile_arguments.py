"""Tool arguments are taken only in the JSON type their schema states: `true` is not order 1, `"0"` is not 0,
`"true"` is not true, 1.5 is not an integer. Every tool of the built-in catalogue and of the examples gets each
wrong type for each argument over HTTP; an integer too big for the database is refused cleanly, never a
traceback."""

from __future__ import annotations

import logging
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


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[tuple[httpx2.AsyncClient, Path]]:
    settings = make_settings(tmp_path, tools={"dirs": [REPO / "tools"]}, rate_limit={"enabled": False},
                             flags={"maintenance_mode": {"default": False}}, static={"root": REPO / "static"})
    async with asgi_client(create_app(settings)) as client:
        yield client, tmp_path / "app.db"


async def _call(client: httpx2.AsyncClient, name: str, arguments: Any) -> dict[str, Any]:
    response = await client.post("/mcp", headers=modern_headers("tools/call", name),
                                 json=modern_request("tools/call", {"name": name, "arguments": arguments}))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def _text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"]) if result.get("content") else ""


def _status(db: Path, order_id: int) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("SELECT status FROM orders WHERE id = ?", (order_id,)).fetchone()[0])


def _types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a property's schema allows (empty: anything)."""
    if "$ref" in schema:
        return {"object"}
    found: set[str] = set()
    declared = schema.get("type")
    if isinstance(declared, str):
        found.add(declared)
    elif isinstance(declared, list):
        found.update(declared)
    for key in ("anyOf", "oneOf"):
        for member in schema.get(key, []):
            found |= _types(member)
    if "enum" in schema and not declared:
        found |= {"string" if isinstance(v, str) else "integer" for v in schema["enum"]}
    return found


def _wrong_values(types: set[str]) -> list[Any]:
    """Values of a JSON type the schema does not allow, but that a lax validator would convert."""
    if not types:
        return []
    wrong: list[Any] = []
    if "integer" in types and "boolean" not in types:
        wrong.append(True)
    if types & {"integer", "number"} and "string" not in types:
        wrong += ["1", "0"]
    if "integer" in types and "number" not in types:
        wrong.append(1.5)
    if "boolean" in types and "string" not in types:
        wrong += ["true", "false"]
    if "boolean" in types and not types & {"integer", "number"}:
        wrong += [1, 0]
    if "string" in types and not types & {"integer", "number"}:
        wrong.append(1)
    return wrong


async def test_cancel_order_refuses_true_for_an_order_id(shop: tuple[httpx2.AsyncClient, Path]) -> None:
    client, db = shop
    before = _status(db, 1)
    result = await _call(client, "cancel_order", {"order_id": True})
    assert result.get("isError") is True, result
    assert "order_id: expected an integer, got a boolean" in _text(result)
    assert _status(db, 1) == before != "cancelled"


async def test_cancel_order_refuses_an_integer_beyond_64_bits_without_a_traceback(
        shop: tuple[httpx2.AsyncClient, Path], caplog: pytest.LogCaptureFixture) -> None:
    client, _ = shop
    with caplog.at_level(logging.WARNING):
        for huge in (18446744073709551616, 2**63, -(2**63) - 1):
            result = await _call(client, "cancel_order", {"order_id": huge})
            assert result.get("isError") is True, result
            assert "order_id:" in _text(result) and "internal error" not in _text(result)
    assert "Traceback" not in caplog.text and "OverflowError" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text


async def test_every_tool_takes_each_argument_only_in_its_json_type(shop: tuple[httpx2.AsyncClient, Path]) -> None:
    client, db = shop
    listing = await client.post("/mcp", headers=modern_headers("tools/list"), json=modern_request("tools/list"))
    tools = listing.json()["result"]["tools"]
    assert {"cancel_order", "site_status", "set_feature_flag", "query_records"} <= {t["name"] for t in tools}
    tried, accepted = 0, []
    for definition in tools:
        for prop, schema in definition["inputSchema"].get("properties", {}).items():
            for wrong in _wrong_values(_types(schema)):
                tried += 1
                result = await _call(client, definition["name"], {prop: wrong})
                named = f"{prop}: expected " in _text(result) or f"{prop}." in _text(result)  # `x.int:` in a union
                if not (result.get("isError") and named):
                    accepted.append(f"{definition['name']} {{{prop!r}: {wrong!r}}}: {_text(result)[:120]}")
    assert tried > 40
    assert not accepted, "\n".join(accepted)
    assert _status(db, 1) == "paid"


async def test_nested_junk_is_refused_and_named(shop: tuple[httpx2.AsyncClient, Path]) -> None:
    client, _ = shop
    for name, arguments, where in [
        ("query_records", {"model": "Order", "where": {"id": {"eq": [True]}}, "limit": "5"}, "limit"),
        ("query_records", {"model": ["Order"]}, "model"),
        ("set_feature_flag", {"name": {"nested": "maintenance_mode"}, "enabled": True}, "name"),
        ("set_feature_flag", {"name": "maintenance_mode", "enabled": [True]}, "enabled"),
        ("cancel_order", {"order_id": {"id": 1}}, "order_id"),
        ("top_customers", {"limit": None}, "limit"),
    ]:
        result = await _call(client, name, arguments)
        assert result.get("isError") is True, (name, arguments, result)
        assert f"{where}:" in _text(result), (name, arguments, _text(result))


async def test_json_forms_still_pass_strict_validation(shop: tuple[httpx2.AsyncClient, Path]) -> None:
    """Strict is JSON's types, not Python's: an integer for a number, a string for an enum or a date, an object
    for a model all pass."""
    client, db = shop
    ok = await _call(client, "cancel_order", {"order_id": 3})
    assert not ok.get("isError"), _text(ok)
    assert _status(db, 3) == "cancelled"
    for name, arguments in [
        ("top_customers", {"limit": 2}),
        ("recent_tool_calls", {"limit": 5, "tool": "cancel_order"}),
        ("query_records", {"model": "Order", "where": {"status": "paid"}, "limit": 2}),
        ("check_rate_limit", {}),
        ("set_feature_flag", {"name": "maintenance_mode", "enabled": False}),
    ]:
        result = await _call(client, name, arguments)
        assert not result.get("isError"), (name, _text(result))


def _order_ids(db: Path) -> set[int]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM orders")}


async def test_orm_writes_take_each_value_only_in_its_json_type(shop: tuple[httpx2.AsyncClient, Path]) -> None:
    """The values and ids of create/update/delete are typed by the model's columns: a string for an integer
    column or an id, a number for a string column are refused (reads stay lenient: a filter may say "20")."""
    client, db = shop
    before = _order_ids(db)
    order = {"customer_id": 1, "status": "pending", "placed_on": "2026-01-01"}
    for name, arguments, expected in [
        ("delete_record", {"model": "Order", "id": "3"}, "expects an integer"),
        ("update_record", {"model": "Order", "id": "3", "values": {"note": "x"}}, "expects an integer"),
        ("update_record", {"model": "Order", "id": 3, "values": {"customer_id": "2"}}, "'customer_id'"),
        ("update_record", {"model": "Order", "id": 3, "values": {"customer_id": 2.0}}, "'customer_id'"),
        ("update_record", {"model": "Order", "id": 3, "values": {"note": 5}}, "'note' of model Order expects a string"),
        ("update_record", {"model": "Customer", "id": 1, "values": {"name": True}}, "'name'"),
        ("create_record", {"model": "Order", "values": {**order, "customer_id": "1"}}, "'customer_id'"),
        ("create_record", {"model": "Order", "values": {**order, "customer_id": True}}, "'customer_id'"),
        ("create_record", {"model": "Customer", "values": {"email": "x@example.com", "name": 12}}, "'name'"),
    ]:
        result = await _call(client, name, arguments)
        assert result.get("isError") is True, (name, arguments, result)
        assert expected in _text(result), (name, arguments, _text(result))
    assert _order_ids(db) == before
    read = await _call(client, "get_record", {"model": "Order", "id": "3"})
    assert not read.get("isError"), _text(read)  # reads still take the id as a string
    created = await _call(client, "create_record", {"model": "Order", "values": order})
    assert not created.get("isError"), _text(created)
