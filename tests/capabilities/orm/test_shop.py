from __future__ import annotations

import decimal
from collections import defaultdict
from typing import Any

import pytest

from mcp_platform.capabilities.orm.tools import query_records
from mcp_platform.tool_registry import Registry
from tests.capabilities.orm.conftest import Caller
from tools.shop import top_customers

pytestmark = pytest.mark.anyio


async def test_top_customers_sums_orders_that_were_not_cancelled(caller: Caller) -> None:
    orders = {o["id"]: o for o in (await caller.ok(query_records, model="Order", limit=100))["records"]}
    items = (await caller.ok(query_records, model="OrderItem", limit=100))["records"]
    spent: dict[int, decimal.Decimal] = defaultdict(decimal.Decimal)
    for item in items:
        order = orders[item["order_id"]]
        if order["status"] != "cancelled":
            spent[order["customer_id"]] += item["quantity"] * decimal.Decimal(item["unit_price"])
    expected = sorted(spent.items(), key=lambda pair: (-pair[1], pair[0]))[:3]

    reply = await caller.ok(top_customers, limit=3)
    assert [(c["customer_id"], decimal.Decimal(c["total_spent"])) for c in reply["customers"]] == expected
    assert all(isinstance(c["total_spent"], str) for c in reply["customers"])  # decimals stay exact on the wire


@pytest.mark.parametrize("limit", [0, 51, -3, "five", None, 2.5, [1]])
async def test_top_customers_refuses_a_bad_limit(caller: Caller, limit: Any) -> None:
    assert "limit" in await caller.fails(top_customers, limit=limit)


def test_top_customers_is_a_described_read_only_tool() -> None:
    tool = Registry().add(top_customers)
    assert tool.definition["annotations"]["readOnlyHint"] is True
    assert tool.definition["title"] == "Top customers by spend"
    assert tool.output_schema is not None and "customers" in tool.output_schema["properties"]
