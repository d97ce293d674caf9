from __future__ import annotations

import decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import to_json

from mcp_platform.capabilities.orm import OrmBackend, collect_models, collect_seeds
from mcp_platform.capabilities.orm.tools import count_records, create_record, query_records
from mcp_platform.settings import DatabaseSettings
from tests.capabilities.orm.conftest import Caller, open_shop, shop_url
from tools import shop

pytestmark = pytest.mark.anyio


async def page_all(caller: Caller, model: str, limit: int = 3, **arguments: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    cursor = None
    for _ in range(500):
        page = await caller.ok(query_records, model=model, limit=limit, cursor=cursor, **arguments)
        assert len(page["records"]) <= limit
        records += page["records"]
        cursor = page["next_cursor"]
        if cursor is None:
            return records
    raise AssertionError("paging did not end")


def _typed(field: str, value: Any) -> Any:
    if value is None:
        return None
    if field == "status":  # enums sort in declaration order
        return [status.value for status in shop.OrderStatus].index(value)
    return decimal.Decimal(value) if field in ("price", "unit_price") else value


def expected_order(rows: list[dict[str, Any]], order_by: list[str], pk: str = "id") -> list[Any]:
    """Python's answer: NULLs after values ascending and before them descending, ties broken by id."""
    ordered = sorted(rows, key=lambda row: row[pk])
    for item in reversed(order_by):
        field = item.lstrip("-")
        ordered = sorted(ordered, key=lambda row, f=field: (row[f] is None, _typed(f, row[f])),  # type: ignore[misc]
                         reverse=item.startswith("-"))
    return [row[pk] for row in ordered]


@pytest.mark.parametrize("model", ["Customer", "Product", "Order", "OrderItem"])
async def test_paging_by_three_returns_every_record_once(caller: Caller, model: str) -> None:
    records = await page_all(caller, model)
    total = (await caller.ok(count_records, model=model))["count"]
    ids = [record["id"] for record in records]
    assert len(ids) == total > 3
    assert ids == sorted(set(ids))


@pytest.mark.parametrize(("model", "order_by", "where"), [
    ("Customer", ["-city"], None),
    ("Customer", ["city"], None),
    ("Customer", ["city", "-name"], None),
    ("Customer", ["-city", "-id"], {"city": {"ne": "Kyoto"}}),
    ("Order", ["-shipped_at"], None),
    ("Order", ["status", "-placed_on"], None),
    ("Order", ["note", "-customer_id"], {"or": [{"status": "paid"}, {"note": {"is_null": False}}]}),
    ("Product", ["-weight_kg"], None),
    ("Product", ["price"], None),
    ("OrderItem", ["-unit_price", "quantity"], None),
])
async def test_paging_with_custom_order_on_nulls_and_duplicates_is_complete_and_ordered(
    caller: Caller, model: str, order_by: list[str], where: dict[str, Any] | None
) -> None:
    everything = (await caller.ok(query_records, model=model, where=where, limit=1000))["records"]
    paged = await page_all(caller, model, order_by=order_by, where=where)
    ids = [record["id"] for record in paged]
    assert len(ids) == len(set(ids)) == (await caller.ok(count_records, model=model, where=where))["count"]
    assert ids == expected_order(everything, order_by)


async def test_nulls_come_first_descending_and_last_ascending(caller: Caller) -> None:
    descending = (await caller.ok(query_records, model="Customer", order_by=["-city"], limit=12))["records"]
    ascending = (await caller.ok(query_records, model="Customer", order_by=["city"], limit=12))["records"]
    assert [r["city"] for r in descending[:3]] == [None, None, None]
    assert [r["city"] for r in ascending[-3:]] == [None, None, None]
    assert [r["city"] for r in descending[3:6]] == ["Quito", "Oslo", "Oslo"]


@pytest.mark.parametrize("field", ["price", "in_stock", "weight_kg", "thumbnail", "sku"])
async def test_paging_on_each_column_type_round_trips_the_cursor(caller: Caller, field: str) -> None:
    for order in ([field], [f"-{field}"]):
        ids = [r["id"] for r in await page_all(caller, "Product", limit=2, order_by=order)]
        assert sorted(ids) == list(range(1, 11))


@pytest.mark.parametrize("field", ["external_id", "created_at", "city"])
async def test_paging_customers_on_uuid_and_datetime(caller: Caller, field: str) -> None:
    ids = [r["id"] for r in await page_all(caller, "Customer", limit=5, order_by=[f"-{field}"])]
    assert sorted(ids) == list(range(1, 13))


@pytest.mark.parametrize("field", ["status", "placed_on", "shipped_at", "note"])
async def test_paging_orders_on_enum_date_and_datetime(caller: Caller, field: str) -> None:
    ids = [r["id"] for r in await page_all(caller, "Order", limit=4, order_by=[field])]
    assert sorted(ids) == list(range(1, 31))


async def test_fields_projection_keeps_the_primary_key_and_still_pages(caller: Caller) -> None:
    records = await page_all(caller, "Customer", fields=["name"], order_by=["-city"])
    assert len(records) == 12
    assert all(set(record) == {"name", "id"} for record in records)


async def test_limit_above_max_rows_is_clamped(tmp_path: Path) -> None:
    async with open_shop(tmp_path, max_rows=4) as backend:
        page = await Caller(backend).ok(query_records, model="Order", limit=1000)
    assert len(page["records"]) == 4 and page["limit"] == 4
    assert page["next_cursor"] is not None and page["truncated"] is False


@pytest.mark.parametrize("limit", [0, -1, 1001, 10**12, "many", None, 2.5])
async def test_limit_outside_the_schema_is_refused(caller: Caller, limit: Any) -> None:
    assert "limit" in await caller.fails(query_records, model="Order", limit=limit)


async def test_last_page_has_no_cursor(caller: Caller) -> None:
    page = await caller.ok(query_records, model="Customer", limit=12)
    assert len(page["records"]) == 12 and page["next_cursor"] is None


async def test_byte_cap_cuts_the_page_and_the_cursor_continues_it(tmp_path: Path) -> None:
    async with open_shop(tmp_path, max_result_bytes=1024) as backend:
        caller = Caller(backend)
        first = await caller.ok(query_records, model="Customer", limit=50)
        assert first["truncated"] is True and first["next_cursor"] is not None
        assert 0 < len(first["records"]) < 12
        assert len(to_json(first)) <= 1024
        pages, cursor, seen = 1, first["next_cursor"], [r["id"] for r in first["records"]]
        while cursor is not None:
            page = await caller.ok(query_records, model="Customer", limit=50, cursor=cursor)
            assert len(to_json(page)) <= 1024
            seen += [r["id"] for r in page["records"]]
            cursor, pages = page["next_cursor"], pages + 1
    assert seen == list(range(1, 13)) and pages > 2


async def test_a_record_larger_than_the_byte_cap_asks_for_fewer_fields(tmp_path: Path) -> None:
    async with open_shop(tmp_path, max_result_bytes=1024) as backend:
        caller = Caller(backend)
        await caller.ok(create_record, model="Order",
                        values={"id": 100, "customer_id": 1, "placed_on": "2025-01-01", "note": "n" * 2000})
        message = await caller.fails(query_records, model="Order", where={"id": 100})
        assert "fields" in message and "1024" in message
        page = await caller.ok(query_records, model="Order", where={"id": 100}, fields=["status"])
        assert page["records"] == [{"status": "pending", "id": 100}]


async def test_cursor_from_another_query_is_refused(caller: Caller) -> None:
    first = await caller.ok(query_records, model="Customer", order_by=["city"], limit=2)
    cursor = first["next_cursor"]
    for other in ({"model": "Customer", "order_by": ["-city"]},
                  {"model": "Customer"},
                  {"model": "Customer", "order_by": ["city"], "where": {"city": "Oslo"}},
                  {"model": "Order", "order_by": ["city"]}):
        message = await caller.fails(query_records, cursor=cursor, **other)
        assert "different query" in message or "Unknown field" in message
    # The same query with other fields and limit is fine.
    await caller.ok(query_records, model="Customer", order_by=["city"], fields=["name"], limit=5, cursor=cursor)


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1:]


async def test_tampered_forged_and_malformed_cursors_are_refused(caller: Caller, tmp_path: Path) -> None:
    cursor = (await caller.ok(query_records, model="Customer", limit=2))["next_cursor"]
    body, signature = cursor.split(".")
    other_secret = OrmBackend(DatabaseSettings.model_validate({"url": f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"}),
                              collect_models([shop]), seeds=collect_seeds([shop]), secret=b"x" * 32)
    async with other_secret:
        forged = (await Caller(other_secret).ok(query_records, model="Customer", limit=2))["next_cursor"]
    bad = [_flip(cursor, 3), _flip(cursor, len(body) + 3), f"{body}.", f".{signature}", body, cursor + ".x",
           forged, "not a cursor", "x" * 100_000, "é.é", "\x00.\x00"]
    for value in bad:
        message = await caller.fails(query_records, model="Customer", limit=2, cursor=value)
        assert "cursor is not valid" in message, value[:40]
    for value in (42, ["a"], {"a": 1}, True):
        assert "cursor" in await caller.fails(query_records, model="Customer", cursor=value)


async def test_an_empty_cursor_starts_from_the_first_page(caller: Caller) -> None:
    page = await caller.ok(query_records, model="Customer", limit=2, cursor="")
    assert [r["id"] for r in page["records"]] == [1, 2]


async def test_cursors_from_a_backend_with_the_same_secret_are_accepted(caller: Caller, tmp_path: Path) -> None:
    cursor = (await caller.ok(query_records, model="Customer", limit=2))["next_cursor"]
    settings = DatabaseSettings.model_validate({"url": shop_url(tmp_path)})
    async with OrmBackend(settings, collect_models([shop]), secret=b"s" * 32) as twin:
        page = await Caller(twin).ok(query_records, model="Customer", limit=2, cursor=cursor)
    assert [r["id"] for r in page["records"]] == [3, 4]
