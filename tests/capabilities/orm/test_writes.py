from __future__ import annotations

from typing import Any

import pytest

from mcp_platform.capabilities.orm.tools import (
    count_records,
    create_record,
    delete_record,
    get_record,
    query_records,
    update_record,
)
from tests.capabilities.orm.conftest import Caller
from tests.capabilities.support import HOSTILE_STRINGS, call, text

pytestmark = pytest.mark.anyio


async def test_create_update_delete_round_trip(caller: Caller) -> None:
    created = await caller.ok(create_record, model="Customer",
                              values={"email": "lin@example.com", "name": "Lin", "city": "Seoul",
                                      "external_id": "6f1c2d3e-0000-4000-8000-000000000001"})
    record = created["record"]
    assert created["model"] == "Customer"
    assert record["id"] == 13 and record["city"] == "Seoul"
    assert record["external_id"] == "6f1c2d3e-0000-4000-8000-000000000001"
    assert record["created_at"]  # filled by the database
    assert (await caller.ok(get_record, model="Customer", id=13))["record"] == record

    # A write takes the id in the primary key's JSON type: "13" is refused, not read as 13.
    assert "expects an integer" in await caller.fails(update_record, model="Customer", id="13", values={"city": None})
    updated = await caller.ok(update_record, model="Customer", id=13, values={"city": None, "name": "Lin Y."})
    assert updated["record"] == {**record, "city": None, "name": "Lin Y."}
    again = await caller.ok(update_record, model="Customer", id=13, values={"city": None, "name": "Lin Y."})
    assert again == updated  # idempotent, as annotated

    deleted = await caller.ok(delete_record, model="Customer", id=13)
    assert deleted == {"model": "Customer", "deleted": updated["record"]}
    assert "No Customer record has id = 13" in await caller.fails(get_record, model="Customer", id=13)
    assert "No Customer record has id = 13" in await caller.fails(delete_record, model="Customer", id=13)
    assert (await caller.ok(count_records, model="Customer"))["count"] == 12


async def test_create_order_fills_defaults_and_deleting_it_cascades_to_items(caller: Caller) -> None:
    created = await caller.ok(create_record, model="Order", values={"customer_id": 2, "placed_on": "2025-02-03"})
    assert created["record"] == {"id": 31, "customer_id": 2, "status": "pending", "placed_on": "2025-02-03",
                                 "shipped_at": None, "note": None}
    shipped = await caller.ok(update_record, model="Order", id=31,
                              values={"status": "shipped", "shipped_at": "2025-02-04T10:00:00+02:00"})
    assert shipped["record"]["status"] == "shipped"
    assert shipped["record"]["shipped_at"] == "2025-02-04T08:00:00"  # stored as UTC in a naive column

    items_before = (await caller.ok(count_records, model="OrderItem", where={"order_id": 5}))["count"]
    assert items_before > 0
    await caller.ok(delete_record, model="Order", id=5)
    assert (await caller.ok(count_records, model="OrderItem", where={"order_id": 5}))["count"] == 0


@pytest.mark.parametrize("model", ["Product", "OrderItem"])
async def test_writes_to_read_only_models_are_refused(caller: Caller, model: str) -> None:
    before = await caller.ok(get_record, model=model, id=1)
    for fn, arguments in ((create_record, {"values": {"id": 99}}), (update_record, {"id": 1, "values": {"id": 2}}),
                          (delete_record, {"id": 1})):
        message = await caller.fails(fn, model=model, **arguments)
        assert f"Model {model} is read-only" in message and "Writable models: Customer, Order" in message
    assert await caller.ok(get_record, model=model, id=1) == before


@pytest.mark.parametrize(("fn", "arguments", "expected"), [
    (create_record, {"model": "Customer", "values": {"name": "No Email"}}, "needs values for: email"),
    (create_record, {"model": "Order", "values": {}}, "needs values for: customer_id, placed_on"),
    (create_record, {"model": "Customer", "values": {"email": "a@b", "name": "A", "internal_note": "x"}},
     "Unknown field 'internal_note'"),
    (create_record, {"model": "Customer", "values": {"email": "a@b", "name": "A", "age": 3}},
     "Fields you can set: id, email, name, city, external_id, created_at"),
    (create_record, {"model": "Customer", "values": {"email": None, "name": "A"}}, "'email' of model Customer cannot"),
    (create_record, {"model": "Customer", "values": {"email": "a@b", "name": "A" * 101}}, "longer than 100"),
    (create_record, {"model": "Order", "values": {"customer_id": 1, "placed_on": "soon"}}, "ISO date"),
    (create_record, {"model": "Order", "values": {"customer_id": 1, "placed_on": "2025-01-01", "status": "lost"}},
     "one of 'pending', 'paid'"),
    (create_record, {"model": "Customer", "values": {"email": "ada@example.com", "name": "Dup"}},
     "The database refused the change:"),
    (create_record, {"model": "Order", "values": {"customer_id": 999, "placed_on": "2025-01-01"}},
     "The database refused the change:"),
    (update_record, {"model": "Customer", "id": 1, "values": {"id": 50}}, "primary key of Customer"),
    (update_record, {"model": "Customer", "id": 1, "values": {}}, "values is empty"),
    (update_record, {"model": "Customer", "id": 1, "values": {"name": None}}, "cannot be null"),
    (update_record, {"model": "Customer", "id": 404, "values": {"name": "x"}}, "No Customer record has id = 404"),
    (update_record, {"model": "Customer", "id": "abc", "values": {"name": "x"}}, "expects an integer, got 'abc'"),
    (delete_record, {"model": "Customer", "id": 1}, "The database refused the change:"),
    (delete_record, {"model": "Nope", "id": 1}, "Exposed models: Customer, Product, Order, OrderItem"),
    (get_record, {"model": "Customer", "id": "1 OR 1=1"}, "expects an integer, got '1 OR 1=1'"),
])
async def test_invalid_writes_change_nothing(caller: Caller, fn: Any, arguments: dict[str, Any], expected: str) -> None:
    before = await caller.ok(query_records, model="Customer", limit=100)
    orders = await caller.ok(query_records, model="Order", limit=100)
    assert expected in await caller.fails(fn, **arguments)
    assert await caller.ok(query_records, model="Customer", limit=100) == before
    assert await caller.ok(query_records, model="Order", limit=100) == orders


@pytest.mark.parametrize("value", HOSTILE_STRINGS)
async def test_hostile_values_in_write_arguments(caller: Caller, value: Any) -> None:
    before = await caller.ok(query_records, model="Customer", limit=100)
    for fn, arguments in ((create_record, {"model": value, "values": {"name": "x"}}),
                          (create_record, {"model": "Customer", "values": value}),
                          (update_record, {"model": "Customer", "id": value, "values": {"name": "x"}}),
                          (update_record, {"model": "Customer", "id": 1, "values": {"email": value}}),
                          (delete_record, {"model": "Customer", "id": value})):
        result = await call(fn, arguments, caller.ctx)
        if not result.is_error:  # only a plain string is a valid email here
            assert isinstance(value, str | int) and fn is update_record
            await caller.ok(update_record, model="Customer", id=1, values={"email": "ada@example.com"})
        else:
            assert 0 < len(text(result)) < 1000
    assert await caller.ok(query_records, model="Customer", limit=100) == before
