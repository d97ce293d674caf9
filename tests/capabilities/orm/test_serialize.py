from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from mcp_platform.capabilities.orm.serialize import Kind, coerce_value, kind_of, to_json_value
from mcp_platform.capabilities.orm.tools import get_record, query_records
from mcp_platform.errors import ToolError
from tests.capabilities.orm.conftest import Caller

pytestmark = pytest.mark.anyio


async def test_records_serialise_every_column_type_faithfully(caller: Caller) -> None:
    product = (await caller.ok(get_record, model="Product", id=1))["record"]
    assert product == {"id": 1, "sku": "KB-01", "name": "Keyboard", "price": "49.90", "in_stock": True,
                       "weight_kg": 0.9, "thumbnail": "iVBORwA="}  # Decimal as string, bytes as base64
    customer = (await caller.ok(get_record, model="Customer", id=2))["record"]
    assert customer == {"id": 2, "email": "grace@example.com", "name": "Grace", "city": "Oslo",
                        "external_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "customer-2.shop.example")),
                        "created_at": "2024-01-08T09:13:00"}
    order = (await caller.ok(get_record, model="Order", id=2))["record"]
    assert order == {"id": 2, "customer_id": 6, "status": "shipped", "placed_on": "2024-03-04",
                     "shipped_at": "2024-03-05T15:30:00", "note": None}
    item = (await caller.ok(query_records, model="OrderItem", where={"order_id": 2}, fields=["unit_price"]))
    assert item["records"] == [{"unit_price": "19.99", "id": 2}, {"unit_price": "34.00", "id": 3}]


class Colour(enum.Enum):
    RED = 1
    BLUE = "blue"


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (True, True), (7, 7), ("é", "é"), (1.5, 1.5), (float("nan"), "nan"), (float("inf"), "inf"),
    (decimal.Decimal("1.10"), "1.10"), (dt.date(2024, 2, 29), "2024-02-29"),
    (dt.datetime(2024, 2, 29, 23, 59, 1, 5), "2024-02-29T23:59:01.000005"),
    (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "2024-01-01T00:00:00+00:00"), (dt.time(7, 5), "07:05:00"),
    (dt.timedelta(minutes=1, microseconds=5), 60.000005), (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    (b"\x00\xff", "AP8="), (bytearray(b"ab"), "YWI="), (memoryview(b"ab"), "YWI="), (Colour.RED, 1),
    (Colour.BLUE, "blue"), ({"a": [decimal.Decimal("2"), b"x"], 3: None}, {"a": ["2", "eA=="], "3": None}),
    ((1, dt.date(2020, 1, 1)), [1, "2020-01-01"]), (object, str(object)),
])
def test_to_json_value(value: Any, expected: Any) -> None:
    assert to_json_value(value) == expected
    json.dumps(to_json_value(value), allow_nan=False)


@pytest.mark.parametrize(("type_", "kind", "raw", "expected"), [
    (sa.Integer(), Kind.INTEGER, "42", 42),
    (sa.BigInteger(), Kind.INTEGER, 4.0, 4),
    (sa.Float(), Kind.FLOAT, "2.5", 2.5),
    (sa.Numeric(10, 2), Kind.DECIMAL, 1.1, decimal.Decimal("1.1")),
    (sa.Numeric(10, 2, asdecimal=False), Kind.FLOAT, "1.25", 1.25),
    (sa.Boolean(), Kind.BOOLEAN, "TRUE", True),
    (sa.String(3), Kind.STRING, 123, "123"),
    (sa.Enum("a", "b"), Kind.ENUM, "b", "b"),
    (sa.Enum(Colour), Kind.ENUM, 1, Colour.RED),
    (sa.Enum(Colour), Kind.ENUM, "BLUE", Colour.BLUE),
    (sa.Date(), Kind.DATE, "2024-02-29", dt.date(2024, 2, 29)),
    (sa.DateTime(), Kind.DATETIME, "2024-01-01T01:00:00+01:00", dt.datetime(2024, 1, 1)),
    (sa.DateTime(timezone=True), Kind.DATETIME, "2024-01-01T01:00:00", dt.datetime(2024, 1, 1, 1, tzinfo=dt.UTC)),
    (sa.Time(), Kind.TIME, "07:05", dt.time(7, 5)),
    (sa.Interval(), Kind.INTERVAL, 90, dt.timedelta(seconds=90)),
    (sa.Uuid(), Kind.UUID, "00000000-0000-0000-0000-000000000001", uuid.UUID(int=1)),
    (sa.Uuid(as_uuid=False), Kind.UUID, "00000000000000000000000000000001", "00000000-0000-0000-0000-000000000001"),
    (sa.LargeBinary(), Kind.BINARY, "AP8=", b"\x00\xff"),
    (sa.JSON(), Kind.JSON, {"a": [1]}, {"a": [1]}),
    (sa.types.NullType(), Kind.OTHER, "x", "x"),
])
def test_coerce_value_accepts_json_forms(type_: Any, kind: Kind, raw: Any, expected: Any) -> None:
    assert kind_of(type_) is kind
    assert coerce_value("M", "f", type_, kind, raw) == expected
    assert coerce_value("M", "f", type_, kind, None) is None


@pytest.mark.parametrize(("type_", "raw", "expected"), [
    (sa.Integer(), "1.5", "an integer"),
    (sa.Integer(), [1], "an integer"),
    (sa.Float(), True, "a number"),
    (sa.Numeric(), "1e5000", "sensible size"),
    (sa.Boolean(), 1, "a boolean"),
    (sa.String(3), "abcd", "longer than 3 characters"),
    (sa.String(), {"a": 1}, "a string"),
    (sa.Enum("a", "b"), "c", "one of 'a', 'b'"),
    (sa.Date(), 20240101, "ISO date"),
    (sa.DateTime(), "2024-01-01T25:00", "ISO date-time"),
    (sa.Time(), "noon", "ISO time"),
    (sa.Interval(), "PT1M", "duration in seconds"),
    (sa.Uuid(), "123", "a UUID string"),
    (sa.LargeBinary(), "***", "base64"),
    (sa.types.NullType(), [1], "a string, number or boolean"),
])
def test_coerce_value_refuses_with_field_type_and_value(type_: Any, raw: Any, expected: str) -> None:
    with pytest.raises(ToolError) as caught:
        coerce_value("Model", "field", type_, kind_of(type_), raw)
    message = str(caught.value)
    assert "Field 'field' of model Model" in message and expected in message and repr(raw)[:20] in message


@pytest.mark.parametrize(("type_", "raw"), [
    (sa.Integer(), "42"), (sa.Integer(), 4.0), (sa.Integer(), True), (sa.Float(), "2.5"), (sa.Float(), False),
    (sa.Boolean(), "true"), (sa.Boolean(), 1), (sa.String(3), 123), (sa.String(), True), (sa.Enum(Colour), True),
])
def test_strict_coercion_for_writes_takes_only_the_json_type(type_: Any, raw: Any) -> None:
    with pytest.raises(ToolError) as caught:
        coerce_value("Model", "field", type_, kind_of(type_), raw, strict=True)
    assert "Field 'field' of model Model expects" in str(caught.value)


@pytest.mark.parametrize(("type_", "raw", "expected"), [
    (sa.Integer(), 42, 42), (sa.Float(), 2, 2.0), (sa.Float(), 2.5, 2.5), (sa.Boolean(), False, False),
    (sa.String(3), "abc", "abc"), (sa.Numeric(10, 2), "12.50", decimal.Decimal("12.50")),
    (sa.Date(), "2024-02-29", dt.date(2024, 2, 29)), (sa.Enum(Colour), "BLUE", Colour.BLUE),
])
def test_strict_coercion_still_takes_json_forms(type_: Any, raw: Any, expected: Any) -> None:
    assert coerce_value("M", "f", type_, kind_of(type_), raw, strict=True) == expected
