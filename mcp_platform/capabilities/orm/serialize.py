"""Column values in both directions: JSON from a model's call coerced to the column's Python type, and stored
values turned into faithful JSON (ISO dates, Decimal as a string, bytes as base64, UUID as a string, enum values).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import enum
import math
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeEngine

from mcp_platform.errors import ToolError

__all__ = ["Kind", "coerce_value", "kind_of", "to_json_value"]

_INT64 = 2**63
_MAX_TEXT = 1_000_000
"""Longest string accepted for any one value; beyond it a value is almost certainly a mistake."""


class Kind(enum.Enum):
    """How the tools treat a column; decides coercion and which operators apply."""

    INTEGER = "integer"
    FLOAT = "number"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    STRING = "string"
    ENUM = "enum"
    DATE = "date"
    DATETIME = "datetime"
    TIME = "time"
    INTERVAL = "interval"
    UUID = "uuid"
    BINARY = "bytes"
    JSON = "json"
    OTHER = "other"


_BY_PYTHON_TYPE: tuple[tuple[type[Any], Kind], ...] = (
    (bool, Kind.BOOLEAN),
    (int, Kind.INTEGER),
    (float, Kind.FLOAT),
    (decimal.Decimal, Kind.DECIMAL),
    (str, Kind.STRING),
    (dt.datetime, Kind.DATETIME),  # before date: datetime is a subclass of date
    (dt.date, Kind.DATE),
    (dt.time, Kind.TIME),
    (dt.timedelta, Kind.INTERVAL),
    (uuid.UUID, Kind.UUID),
    (bytes, Kind.BINARY),
    (dict, Kind.JSON),
    (list, Kind.JSON),
)


def kind_of(type_: TypeEngine[Any]) -> Kind:
    if isinstance(type_, sa.Enum):
        return Kind.ENUM
    if isinstance(type_, sa.JSON):
        return Kind.JSON
    if isinstance(type_, sa.Uuid):
        return Kind.UUID
    try:
        python_type = type_.python_type
    except NotImplementedError:
        return Kind.OTHER
    for candidate, kind in _BY_PYTHON_TYPE:
        if issubclass(python_type, candidate):
            return kind
    return Kind.OTHER


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def coerce_value(model: str, field: str, type_: TypeEngine[Any], kind: Kind, value: Any, *,
                 strict: bool = False) -> Any:
    """`value` (from JSON) as the Python value the column binds, or a `ToolError` naming the field, the expected
    type and the value. `None` passes through; callers decide whether it is allowed. `strict` (for writes) takes
    integers, numbers, booleans and strings only as those JSON types: not `"0"` for 0, `"true"` for true, 1 for
    `"1"`, or 4.0 for 4; reads stay lenient, so a filter may spell a number as a string."""
    if value is None:
        return None
    try:
        if strict and not _json_typed(kind, value):
            raise TypeError(type(value).__name__)
        return _COERCE[kind](type_, value)
    except (ValueError, TypeError, ArithmeticError, binascii.Error) as exc:
        expected = _expected(type_, kind)
        detail = f" ({exc})" if isinstance(exc, _Explained) else ""
        raise ToolError(
            f"Field {field!r} of model {model} expects {expected}, got {_show(value)}{detail}."
        ) from None


class _Explained(ValueError):
    """A coercion failure whose message adds something the expected type does not say."""


# The JSON types a write takes for each kind that JSON has a type for (booleans are ints in Python: kept apart).
_STRICT: dict[Kind, tuple[type, ...]] = {
    Kind.INTEGER: (int,), Kind.FLOAT: (int, float), Kind.BOOLEAN: (bool,), Kind.STRING: (str,),
}


def _json_typed(kind: Kind, value: Any) -> bool:
    allowed = _STRICT.get(kind)
    return allowed is None or (isinstance(value, bool) == (kind is Kind.BOOLEAN) and isinstance(value, allowed))


def _expected(type_: TypeEngine[Any], kind: Kind) -> str:
    if kind is Kind.ENUM:
        return "one of " + ", ".join(repr(choice) for choice in _enum_choices(type_))
    return {
        Kind.INTEGER: "an integer",
        Kind.FLOAT: "a number",
        Kind.DECIMAL: "a decimal number (a JSON number or a string such as '12.50')",
        Kind.BOOLEAN: "a boolean (true or false)",
        Kind.STRING: "a string",
        Kind.DATE: "an ISO date such as '2024-05-31'",
        Kind.DATETIME: "an ISO date-time such as '2024-05-31T14:30:00'",
        Kind.TIME: "an ISO time such as '14:30:00'",
        Kind.INTERVAL: "a duration in seconds",
        Kind.UUID: "a UUID string",
        Kind.BINARY: "base64-encoded bytes",
        Kind.JSON: "a JSON value",
        Kind.OTHER: "a string, number or boolean",
    }[kind]


def _enum_choices(type_: TypeEngine[Any]) -> list[Any]:
    assert isinstance(type_, sa.Enum)
    if type_.enum_class is not None:
        return [member.value for member in type_.enum_class]
    return list(type_.enums)


def _integer(_: TypeEngine[Any], value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("fraction")
        value = int(value)
    elif isinstance(value, str):
        value = int(value.strip(), 10)
    if not isinstance(value, int):
        raise TypeError(type(value).__name__)
    if not -_INT64 <= value < _INT64:
        raise _Explained("outside the 64-bit integer range")
    return value


def _float(_: TypeEngine[Any], value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(type(value).__name__)
    number = float(value)
    if not math.isfinite(number):
        raise _Explained("not a finite number")
    return number


def _decimal(type_: TypeEngine[Any], value: Any) -> decimal.Decimal | float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(type(value).__name__)
    number = decimal.Decimal(str(value).strip())
    if not number.is_finite() or abs(number.adjusted()) > 1000:
        raise _Explained("not a finite number of sensible size")
    asdecimal = getattr(type_, "asdecimal", True)
    return number if asdecimal else float(number)


def _boolean(_: TypeEngine[Any], value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise TypeError(type(value).__name__)


def _string(type_: TypeEngine[Any], value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(type(value).__name__)
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        raise _Explained("it contains a NUL character, which PostgreSQL cannot store")
    length = getattr(type_, "length", None) or _MAX_TEXT
    if len(text) > length:
        raise _Explained(f"longer than {length} characters")
    return text


def _enum(type_: TypeEngine[Any], value: Any) -> Any:
    assert isinstance(type_, sa.Enum)
    if isinstance(value, bool):  # True == 1: not a member's value
        raise TypeError("boolean")
    if type_.enum_class is not None:
        for member in type_.enum_class:
            if value == member.value or (isinstance(value, str) and value == member.name):
                return member
        raise ValueError("not a member")
    if value in type_.enums:
        return value
    raise ValueError("not a member")


def _iso(parse: Callable[[str], Any]) -> Callable[[TypeEngine[Any], Any], Any]:
    def convert(type_: TypeEngine[Any], value: Any) -> Any:
        if not isinstance(value, str) or len(value) > 64:
            raise TypeError(type(value).__name__)
        return parse(value.strip())

    return convert


def _datetime(type_: TypeEngine[Any], value: Any) -> dt.datetime:
    parsed: dt.datetime = _iso(dt.datetime.fromisoformat)(type_, value)
    aware = getattr(type_, "timezone", False)
    if aware and parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    if not aware and parsed.tzinfo is not None:
        # Naive columns are taken to hold UTC, the only convention that survives moving between databases.
        return parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _interval(_: TypeEngine[Any], value: Any) -> dt.timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(type(value).__name__)
    return dt.timedelta(seconds=value)


def _uuid(type_: TypeEngine[Any], value: Any) -> uuid.UUID | str:
    if not isinstance(value, str):
        raise TypeError(type(value).__name__)
    parsed = uuid.UUID(value.strip())
    return parsed if getattr(type_, "as_uuid", True) else str(parsed)


def _binary(_: TypeEngine[Any], value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError(type(value).__name__)
    return base64.b64decode(value, validate=True)


def _json(_: TypeEngine[Any], value: Any) -> Any:
    return value


def _other(_: TypeEngine[Any], value: Any) -> Any:
    if not isinstance(value, str | int | float | bool):
        raise TypeError(type(value).__name__)
    return value


_COERCE: dict[Kind, Callable[[TypeEngine[Any], Any], Any]] = {
    Kind.INTEGER: _integer,
    Kind.FLOAT: _float,
    Kind.DECIMAL: _decimal,
    Kind.BOOLEAN: _boolean,
    Kind.STRING: _string,
    Kind.ENUM: _enum,
    Kind.DATE: _iso(dt.date.fromisoformat),
    Kind.DATETIME: _datetime,
    Kind.TIME: _iso(dt.time.fromisoformat),
    Kind.INTERVAL: _interval,
    Kind.UUID: _uuid,
    Kind.BINARY: _binary,
    Kind.JSON: _json,
    Kind.OTHER: _other,
}


def to_json_value(value: Any) -> Any:
    """A stored value as JSON: ISO dates and times, Decimal as a string (no float rounding), bytes as base64,
    UUID as a string, an enum member as its value, non-finite floats as strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.time):  # datetime included
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, enum.Enum):
        return to_json_value(value.value)
    if isinstance(value, dict):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    return str(value)
