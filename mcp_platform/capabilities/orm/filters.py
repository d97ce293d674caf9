"""The `where` filter language, `order_by` and `fields`, compiled against one exposed model.

Every value becomes a bound parameter of a SQLAlchemy expression built from the model's own column objects;
nothing a caller sends is ever spliced into SQL text. Size limits keep a filter from becoming a denial of service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, literal, not_, or_

from mcp_platform.capabilities.orm.catalog import FieldSpec, ModelView
from mcp_platform.capabilities.orm.serialize import Kind
from mcp_platform.errors import ToolError

__all__ = [
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "MAX_IN_VALUES",
    "MAX_ORDER_FIELDS",
    "OPERATORS",
    "OrderKey",
    "compile_where",
    "operators_for",
    "parse_fields",
    "parse_order_by",
]

MAX_DEPTH = 8
"""Nesting levels of and/or/not at most."""
MAX_CONDITIONS = 100
"""Field conditions in one filter at most."""
MAX_IN_VALUES = 500
"""Values in one `in` or `not_in` list at most."""
MAX_ORDER_FIELDS = 8
MAX_PATTERN = 10_000

OPERATORS: tuple[str, ...] = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "like", "ilike", "is_null")
_COMBINATORS = ("and", "or", "not")
_ORDERED = ("lt", "lte", "gt", "gte")
_UNORDERED_KINDS = (Kind.BOOLEAN, Kind.ENUM, Kind.JSON)


def operators_for(kind: Kind) -> tuple[str, ...]:
    if kind is Kind.JSON:
        return ("is_null",)
    ops = [op for op in OPERATORS if op not in ("like", "ilike") or kind is Kind.STRING]
    if kind in _UNORDERED_KINDS:
        ops = [op for op in ops if op not in _ORDERED]
    return tuple(ops)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Compiler:
    def __init__(self, view: ModelView) -> None:
        self.view = view
        self.conditions = 0

    def node(self, where: Any, depth: int) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            raise ToolError(f"where is nested more than {MAX_DEPTH} levels deep; flatten it.")
        if not isinstance(where, dict) or not where:
            raise ToolError(f"Each where clause must be a non-empty object such as {{\"field\": value}}, "
                            f"got {_show(where)}.")
        parts: list[ColumnElement[bool]] = []
        for key, value in where.items():
            if key in ("and", "or"):
                if not isinstance(value, list) or not value:
                    raise ToolError(f"where: {key!r} takes a non-empty list of clauses, got {_show(value)}.")
                children = [self.node(child, depth + 1) for child in value]
                parts.append(and_(*children) if key == "and" else or_(*children))
            elif key == "not":
                parts.append(not_(self.node(value, depth + 1)))
            else:
                parts.append(self.field(self.view.field(key, "where"), value))
        return parts[0] if len(parts) == 1 else and_(*parts)

    def field(self, field: FieldSpec, value: Any) -> ColumnElement[bool]:
        if isinstance(value, dict):
            if not value:
                raise ToolError(f"where: field {field.name!r} has an empty operator object; use one of "
                                f"{', '.join(operators_for(field.kind))}.")
            conditions = [self.operator(field, op, arg) for op, arg in value.items()]
            return conditions[0] if len(conditions) == 1 else and_(*conditions)
        if isinstance(value, list):
            raise ToolError(f"where: to match field {field.name!r} against several values use "
                            f"{{\"{field.name}\": {{\"in\": [...]}}}}.")
        return self.operator(field, "eq", value)

    def operator(self, field: FieldSpec, op: str, arg: Any) -> ColumnElement[bool]:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise ToolError(f"where has more than {MAX_CONDITIONS} conditions; narrow it or split the query.")
        valid = operators_for(field.kind)
        if op not in OPERATORS:
            raise ToolError(f"Unknown operator {_show(op)} for field {field.name!r}. Valid operators: "
                            f"{', '.join(valid)}.")
        if op not in valid:
            raise ToolError(f"Operator {op!r} does not apply to field {field.name!r} ({field.kind.value}). "
                            f"Operators for it: {', '.join(valid)}.")
        column = field.column
        model = self.view.name
        if op == "is_null":
            if not isinstance(arg, bool):
                raise ToolError(f"where: is_null on {field.name!r} takes true or false, got {_show(arg)}.")
            return column.is_(None) if arg else column.is_not(None)
        if op in ("like", "ilike"):
            if not isinstance(arg, str) or len(arg) > MAX_PATTERN or "\x00" in arg:
                raise ToolError(f"where: {op} on {field.name!r} takes a pattern string (% and _ are wildcards), "
                                f"got {_show(arg)}.")
            return column.like(arg) if op == "like" else column.ilike(arg)
        if op in ("in", "not_in"):
            if not isinstance(arg, list) or len(arg) > MAX_IN_VALUES:
                raise ToolError(f"where: {op} on {field.name!r} takes a list of at most {MAX_IN_VALUES} values, "
                                f"got {_show(arg)}.")
            if any(item is None for item in arg):
                raise ToolError(f"where: {op} lists cannot hold null; use {{\"is_null\": true}} for {field.name!r}.")
            values = [field.coerce(model, item) for item in arg]
            if op == "in":
                return column.in_(values) if values else false()
            # Like `ne`, `not_in` keeps rows whose value is NULL: a NULL is not one of the listed values.
            excluded = column.not_in(values)
            return or_(excluded, column.is_(None)) if field.nullable else excluded
        value = field.coerce(model, arg)
        if value is None:
            if op in ("eq", "ne"):
                return column.is_(None) if op == "eq" else column.is_not(None)
            raise ToolError(f"where: {op} on {field.name!r} needs a value; use is_null to test for null.")
        return _COMPARE[op](column, literal(value, column.type), field.nullable)


_COMPARE: dict[str, Callable[[Any, Any, bool], ColumnElement[bool]]] = {
    "eq": lambda column, value, _: column == value,
    # NULL is "different from" any value, so ne keeps rows holding NULL (plain SQL `!=` would drop them).
    "ne": lambda column, value, nullable: column.is_distinct_from(value) if nullable else column != value,
    "lt": lambda column, value, _: column < value,
    "lte": lambda column, value, _: column <= value,
    "gt": lambda column, value, _: column > value,
    "gte": lambda column, value, _: column >= value,
}


def compile_where(view: ModelView, where: dict[str, Any] | None) -> ColumnElement[bool] | None:
    """The filter as one boolean expression with bound parameters, or `None` for no filter (`None` or `{}`)."""
    if where is None or where == {}:
        return None
    return _Compiler(view).node(where, 1)


@dataclass(frozen=True, slots=True)
class OrderKey:
    field: FieldSpec
    descending: bool


def parse_order_by(view: ModelView, order_by: list[str] | None) -> list[OrderKey]:
    if not order_by:
        return []
    if len(order_by) > MAX_ORDER_FIELDS:
        raise ToolError(f"order_by takes at most {MAX_ORDER_FIELDS} fields.")
    keys: list[OrderKey] = []
    seen: set[str] = set()
    for item in order_by:
        if not isinstance(item, str) or not item.lstrip("-"):
            raise ToolError(f"order_by entries are field names, '-' prefixed for descending; got {_show(item)}.")
        descending = item.startswith("-")
        field = view.field(item[1:] if descending else item, "order_by")
        if field.kind is Kind.JSON:
            raise ToolError(f"order_by: field {field.name!r} holds JSON, which has no order.")
        if field.name in seen:
            raise ToolError(f"order_by names field {field.name!r} twice.")
        seen.add(field.name)
        keys.append(OrderKey(field, descending))
    return keys


def parse_fields(view: ModelView, fields: list[str] | None) -> list[FieldSpec]:
    """The projection: the named fields (primary key always included), or every field."""
    if fields is None:
        return list(view.fields.values())
    if not fields:
        raise ToolError("fields is empty: name at least one field, or omit it for all fields.")
    chosen = {view.field(name, "fields").name: None for name in fields}
    for pk in view.primary_key:
        chosen.setdefault(pk.name, None)
    return [view.fields[name] for name in chosen]
