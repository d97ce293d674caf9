from __future__ import annotations

from typing import Any

import pytest

from mcp_platform.capabilities.orm.filters import MAX_CONDITIONS, MAX_DEPTH, MAX_IN_VALUES, MAX_ORDER_FIELDS, OPERATORS
from mcp_platform.capabilities.orm.tools import count_records, create_record, list_models, query_records
from tests.capabilities.orm.conftest import Caller
from tests.capabilities.support import HOSTILE_STRINGS, call, text

pytestmark = pytest.mark.anyio

INJECTIONS = ["' OR 1=1 --", "1; DROP TABLE customers", "%", "_", "\" OR \"\"=\"", "'; DELETE FROM orders; --",
              "Robert'); DROP TABLE customers;--"]


async def customers(caller: Caller, where: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = (await caller.ok(query_records, model="Customer", where=where, limit=1000))[
        "records"]
    return records


async def counts(caller: Caller) -> dict[str, int]:
    listing = await caller.ok(list_models)
    return {model["name"]: model["row_count"] for model in listing["models"]}


@pytest.mark.parametrize("value", INJECTIONS)
async def test_injection_strings_are_matched_literally(caller: Caller, value: str) -> None:
    before = await counts(caller)
    for field in ("name", "email", "city"):
        assert await customers(caller, {field: value}) == []
        assert await customers(caller, {field: {"in": [value, "x"]}}) == []
        assert await customers(caller, {field: {"eq": value}}) == []
    assert len(await customers(caller, {"name": {"ne": value}})) == 12
    # The same string stored as data comes back, and only that row.
    created = (await caller.ok(create_record, model="Customer", values={"name": value, "email": f"{value}@x"}))
    assert [r["id"] for r in await customers(caller, {"name": value})] == [created["record"]["id"]]
    assert [r["id"] for r in await customers(caller, {"email": {"like": f"{value}@x"}})] == [created["record"]["id"]]
    after = await counts(caller)
    assert after == {**before, "Customer": before["Customer"] + 1}


async def test_percent_is_a_wildcard_only_in_like(caller: Caller) -> None:
    assert await customers(caller, {"name": "%"}) == []
    assert len(await customers(caller, {"name": {"like": "%"}})) == 12
    assert [r["name"] for r in await customers(caller, {"name": {"like": "_da"}})] == ["Ada"]


async def test_like_is_case_sensitive_and_ilike_is_not(caller: Caller) -> None:
    assert await customers(caller, {"name": {"like": "ada"}}) == []
    assert [r["name"] for r in await customers(caller, {"name": {"ilike": "ADA"}})] == ["Ada"]


async def test_injection_in_names_is_an_unknown_name(caller: Caller) -> None:
    message = await caller.fails(query_records, model="Customer", where={"name = name OR 1=1 --": 1})
    assert "Unknown field" in message and "email" in message
    message = await caller.fails(query_records, model="Customer", order_by=["name; DROP TABLE customers"])
    assert "Unknown field" in message
    message = await caller.fails(query_records, model="customers; DROP TABLE customers")
    assert "Unknown model" in message and "Customer, Product, Order, OrderItem" in message
    assert (await caller.ok(count_records, model="Customer"))["count"] == 12


async def test_unknown_model_field_and_operator_list_the_valid_ones(caller: Caller) -> None:
    message = await caller.fails(count_records, model="Nope")
    assert "Nope" in message and "Customer, Product, Order, OrderItem" in message
    message = await caller.fails(count_records, model="Customer", where={"age": 3})
    assert "'age'" in message and "id, email, name, city, external_id, created_at" in message
    message = await caller.fails(count_records, model="Customer", where={"name": {"matches": "x"}})
    assert "'matches'" in message and ", ".join(OPERATORS) in message
    message = await caller.fails(count_records, model="Order", where={"customer_id": {"like": "1%"}})
    assert "like" in message and "eq, ne, lt, lte, gt, gte, in, not_in, is_null" in message
    message = await caller.fails(count_records, model="Order", where={"status": {"gt": "paid"}})
    assert "eq, ne, in, not_in, is_null" in message


async def test_hidden_fields_cannot_be_filtered_or_ordered(caller: Caller) -> None:
    assert "Unknown field 'internal_note'" in await caller.fails(
        count_records, model="Customer", where={"internal_note": {"is_null": True}})
    assert "Unknown field" in await caller.fails(query_records, model="Customer", order_by=["internal_note"])
    assert "Unknown field" in await caller.fails(query_records, model="Customer", fields=["internal_note"])


@pytest.mark.parametrize(("model", "where", "expected"), [
    ("Customer", {"id": "abc"}, "expects an integer, got 'abc'"),
    ("Customer", {"id": 1.5}, "expects an integer"),
    ("Customer", {"id": True}, "expects an integer"),
    ("Customer", {"id": 2**70}, "64-bit"),
    ("Customer", {"created_at": {"gt": "yesterday"}}, "ISO date-time"),
    ("Customer", {"external_id": "not-a-uuid"}, "UUID"),
    ("Customer", {"name": {"eq": {"nested": 1}}}, "expects a string, got {'nested': 1}"),
    ("Customer", {"name": {"nested": 1}}, "Unknown operator 'nested'"),
    ("Customer", {"name": "x" * 101}, "longer than 100 characters"),
    ("Customer", {"name": ["Ada"]}, '{"in": [...]}'),
    ("Product", {"in_stock": "yes"}, "boolean"),
    ("Product", {"price": {"lt": "cheap"}}, "decimal"),
    ("Product", {"price": {"lt": "NaN"}}, "finite"),
    ("Product", {"weight_kg": {"gt": "Infinity"}}, "finite"),
    ("Product", {"thumbnail": "%%%"}, "base64"),
    ("Order", {"status": "lost"}, "'pending', 'paid', 'shipped', 'cancelled'"),
    ("Order", {"placed_on": "2024-13-01"}, "ISO date"),
    ("Order", {"placed_on": {"in": "2024-01-01"}}, "list"),
    ("Order", {"placed_on": {"in": [None]}}, "is_null"),
    ("Order", {"note": {"is_null": "yes"}}, "true or false"),
    ("Order", {"note": {"like": 5}}, "pattern"),
    ("Order", {"placed_on": {"gt": None}}, "is_null"),
    ("Order", {"note": {}}, "empty operator"),
    ("Order", {"and": []}, "non-empty list"),
    ("Order", {"or": {"id": 1}}, "non-empty list"),
    ("Order", {"not": []}, "non-empty object"),
    ("Order", {"and": [1]}, "non-empty object"),
])
async def test_wrong_values_are_refused_with_field_type_and_value(
    caller: Caller, model: str, where: dict[str, Any], expected: str
) -> None:
    assert expected in await caller.fails(query_records, model=model, where=where)


async def test_a_long_bad_value_is_truncated_in_the_message(caller: Caller) -> None:
    message = await caller.fails(count_records, model="Customer", where={"id": "9" * 5000 + "x"})
    assert "expects an integer" in message and len(message) < 300


@pytest.mark.parametrize("value", HOSTILE_STRINGS)
async def test_hostile_values_for_every_argument_fail_cleanly_or_match_literally(caller: Caller, value: Any) -> None:
    for arguments in ({"model": value}, {"model": "Customer", "where": value}, {"model": "Customer", "where": {
            "name": value}}, {"model": "Customer", "order_by": value}, {"model": "Customer", "fields": value},
            {"model": "Customer", "cursor": value}, {"model": "Customer", "where": {value: 1} if isinstance(
            value, str) else {"id": value}}):
        # Anything but a ToolError or a validation error escaping the tool fails the test here.
        result = await call(query_records, arguments, caller.ctx)
        if result.is_error:
            assert 0 < len(text(result)) < 1000 and "Traceback" not in text(result)
        else:
            assert len(result.structured["records"]) in (0, 12)
    assert (await caller.ok(count_records, model="Customer"))["count"] == 12


def nested_not(depth: int) -> dict[str, Any]:
    where: dict[str, Any] = {"id": 1}
    for _ in range(depth):
        where = {"not": where}
    return where


async def test_nesting_depth_is_bounded(caller: Caller) -> None:
    await caller.ok(count_records, model="Customer", where=nested_not(MAX_DEPTH - 1))
    assert "nested more than" in await caller.fails(count_records, model="Customer", where=nested_not(MAX_DEPTH))
    assert "nested more than" in await caller.fails(count_records, model="Customer", where=nested_not(500))


async def test_condition_count_is_bounded(caller: Caller) -> None:
    many = {"or": [{"id": n} for n in range(MAX_CONDITIONS)]}
    assert (await caller.ok(count_records, model="Customer", where=many))["count"] == 12
    too_many = {"or": [{"id": n} for n in range(MAX_CONDITIONS + 1)]}
    assert f"more than {MAX_CONDITIONS} conditions" in await caller.fails(count_records, model="Customer",
                                                                           where=too_many)


async def test_in_list_length_is_bounded(caller: Caller) -> None:
    values = list(range(MAX_IN_VALUES))
    assert (await caller.ok(count_records, model="Customer", where={"id": {"in": values}}))["count"] == 12
    assert f"at most {MAX_IN_VALUES}" in await caller.fails(
        count_records, model="Customer", where={"id": {"in": [*values, 999]}})


async def test_order_by_is_bounded_and_checked(caller: Caller) -> None:
    fields = ["id", "sku", "name", "price", "in_stock", "weight_kg", "thumbnail"]
    await caller.ok(query_records, model="Product", order_by=fields)
    too_many = ["id", "-sku", "name", "-price", "in_stock", "weight_kg", "thumbnail", "-id", "sku"]
    assert len(too_many) > MAX_ORDER_FIELDS
    assert f"at most {MAX_ORDER_FIELDS}" in await caller.fails(query_records, model="Product", order_by=too_many)
    assert "twice" in await caller.fails(query_records, model="Product", order_by=["name", "-name"])
    assert "field names" in await caller.fails(query_records, model="Product", order_by=["-"])
    assert "fields is empty" in await caller.fails(query_records, model="Product", fields=[])


async def count(caller: Caller, model: str, where: dict[str, Any]) -> int:
    result: int = (await caller.ok(count_records, model=model, where=where))["count"]
    return result


async def test_operators_mean_what_they_say(caller: Caller) -> None:
    rows = await customers(caller)
    oslo = sum(r["city"] == "Oslo" for r in rows)
    no_city = sum(r["city"] is None for r in rows)
    assert await count(caller, "Customer", {"city": "Oslo"}) == oslo == 3
    # ne and not_in keep NULLs: a missing city is not "Oslo".
    assert await count(caller, "Customer", {"city": {"ne": "Oslo"}}) == 12 - oslo
    assert await count(caller, "Customer", {"city": {"not_in": ["Oslo", "Kyoto"]}}) == 12 - oslo - 2
    assert await count(caller, "Customer", {"not": {"city": "Oslo"}}) == 12 - oslo - no_city
    assert await count(caller, "Customer", {"city": None}) == no_city
    assert await count(caller, "Customer", {"city": {"ne": None}}) == 12 - no_city
    assert await count(caller, "Customer", {"city": {"is_null": True}}) == no_city
    assert await count(caller, "Customer", {"city": {"is_null": False}}) == 12 - no_city
    assert await count(caller, "Customer", {"id": {"in": []}}) == 0
    assert await count(caller, "Customer", {"id": {"gt": 3, "lte": "5"}}) == 2
    assert await count(caller, "Customer", {"or": [{"id": 1}, {"and": [{"city": "Oslo"}, {"id": {"gte": 7}}]}]}) == 3
    assert await count(caller, "Customer", {"created_at": {"gte": "2024-03-01T00:00:00Z"}}) == 3
    assert await count(caller, "Order", {"placed_on": {"lt": "2024-03-10"}}) == 3
    assert await count(caller, "Order", {"status": {"in": ["paid", "PENDING"]}}) == 12
    assert await count(caller, "Order", {"shipped_at": {"gt": "2024-03-05T00:00:00"}}) == 12
    assert await count(caller, "Product", {"price": {"lt": 20}}) == 3
    assert await count(caller, "Product", {"price": "49.9"}) == 1
    assert await count(caller, "Product", {"in_stock": False}) == 2
    assert await count(caller, "Product", {"weight_kg": {"gte": 1.2}}) == 3
    assert await count(caller, "Product", {"thumbnail": "iVBORwA="}) == 1
    assert await count(caller, "Customer", {"external_id": "edbb05ed-f446-5890-b2e0-dda197ab1a45"}) == 1
    assert await count(caller, "Customer", {}) == 12
