"""Keyset pagination: a total order on (order_by fields..., primary key) and signed cursors holding the last key.

NULLs are ordered explicitly and the same way on every database: they sort after all values ascending and before
them descending, through a `(column IS NULL)` flag that comes before the column in the sort; enums sort in the
order their members are declared. A page then asks for
rows strictly after the last key, so no row is skipped or repeated while the table is unchanged.

A cursor is a `signing.SignedCodec` token holding the last row's key, bound to the query's fingerprint and signed
with a per-backend secret, so forged or edited cursors are refused and a cursor of another query is named as such.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Enum, and_, case, literal, or_

from mcp_platform.capabilities.orm.catalog import FieldSpec, ModelView
from mcp_platform.capabilities.orm.filters import OrderKey
from mcp_platform.capabilities.orm.serialize import Kind
from mcp_platform.errors import ToolError
from mcp_platform.signing import InvalidToken, SignedCodec

__all__ = ["MAX_CURSOR_CHARS", "CursorCodec", "after_key", "fingerprint", "order_clauses", "sort_keys"]

MAX_CURSOR_CHARS = 16_384
_KIND = "orm-cursor"

_INVALID = ("cursor is not valid: it was not issued by this server (or the server has restarted since). Pass the "
            "next_cursor of the previous reply unchanged, or omit cursor to start from the first page.")
_FOREIGN = ("cursor belongs to a different query: call again with the same model, where and order_by that "
            "produced it, or omit cursor to start from the first page.")


def sort_keys(view: ModelView, order: Sequence[OrderKey]) -> list[OrderKey]:
    """`order`, completed by the primary key (ascending) so that the sort is total."""
    named = {key.field.name for key in order}
    return [*order, *(OrderKey(pk, False) for pk in view.primary_key if pk.name not in named)]


def _null_flag(column: ColumnElement[Any]) -> ColumnElement[int]:
    # A CASE, not `column IS NULL`, because a boolean in ORDER BY is not portable to every database.
    return case((column.is_(None), 1), else_=0)


def _sort_expression(field: FieldSpec) -> tuple[ColumnElement[Any], Callable[[Any], ColumnElement[Any]]]:
    """What rows are sorted by for `field`, and how a key value becomes a bound value comparable with it."""
    column = field.column
    if field.kind is Kind.ENUM and isinstance(column.type, Enum):
        # Enums sort in declaration order everywhere (PostgreSQL's native order; SQLite would sort the text).
        members = list(column.type.enum_class) if column.type.enum_class is not None else list(column.type.enums)
        rank = {member: index for index, member in enumerate(members)}
        ranked = case(*((column == member, index) for member, index in rank.items()), else_=len(members))
        return ranked, lambda value: literal(rank.get(value, len(members)))
    # An explicit bound parameter: SQLAlchemy would otherwise render True/False as constants, and `>` against a
    # constant boolean is refused.
    return column, lambda value: literal(value, column.type)


def order_clauses(keys: Sequence[OrderKey]) -> list[ColumnElement[Any]]:
    clauses: list[ColumnElement[Any]] = []
    for key in keys:
        if key.field.nullable:
            flag = _null_flag(key.field.column)
            clauses.append(flag.desc() if key.descending else flag.asc())
        expression, _ = _sort_expression(key.field)
        clauses.append(expression.desc() if key.descending else expression.asc())
    return clauses


def after_key(keys: Sequence[OrderKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after the row whose sort key is `values`, in the order of `order_clauses(keys)`."""
    parts: list[tuple[ColumnElement[Any], bool, Any]] = []
    for key, value in zip(keys, values, strict=True):
        if key.field.nullable:
            parts.append((_null_flag(key.field.column), key.descending, 1 if value is None else 0))
        # Among rows where the column is NULL it cannot tell rows apart, so it takes no part in the comparison.
        if value is not None:
            expression, bound = _sort_expression(key.field)
            parts.append((expression, key.descending, bound(value)))
    branches = []
    for index, (expression, descending, value) in enumerate(parts):
        ties = [earlier == earlier_value for earlier, _, earlier_value in parts[:index]]
        branches.append(and_(*ties, expression < value if descending else expression > value))
    return or_(*branches)


def fingerprint(model: str, where: dict[str, Any] | None, order_by: Sequence[str] | None) -> str:
    """Identifies the query a cursor belongs to; `fields` and `limit` may change between pages."""
    canonical = json.dumps([model, where or None, list(order_by or [])], sort_keys=True, separators=(",", ":"),
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class CursorCodec:
    """Signs and checks cursors with one secret (`signing.SignedCodec`), each bound to its query's fingerprint."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a cursor secret needs at least 16 bytes")
        self._codec = SignedCodec(secret, max_chars=MAX_CURSOR_CHARS)

    def encode(self, query: str, key: Sequence[Any]) -> str:
        """A cursor for the rows after `key` (JSON values) in the query `query` (a `fingerprint`)."""
        return self._codec.encode(_KIND, {"k": list(key)}, bind=query)

    def decode(self, cursor: str, query: str, size: int) -> list[Any]:
        """The key in `cursor` (JSON values), after checking its signature, its query and its length `size`."""
        try:
            payload = self._codec.decode(cursor, _KIND, bind=query)
        except InvalidToken as exc:
            raise ToolError(_FOREIGN if exc.reason == "bound" else _INVALID) from None
        key = payload.get("k")
        if not isinstance(key, list) or len(key) != size:
            raise ToolError(_INVALID)
        return key
