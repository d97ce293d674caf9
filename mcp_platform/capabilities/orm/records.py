"""What the ORM tools do with records: page, fetch, count, create, update and delete, through the backend's
guarded read and write paths. Results are plain JSON-ready dicts; the tools wrap them in reply models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic_core import to_json
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from mcp_platform.capabilities.orm.backend import OrmBackend
from mcp_platform.capabilities.orm.catalog import FieldSpec, ModelView
from mcp_platform.capabilities.orm.filters import compile_where, parse_fields, parse_order_by
from mcp_platform.capabilities.orm.pagination import after_key, fingerprint, order_clauses, sort_keys
from mcp_platform.capabilities.orm.serialize import to_json_value
from mcp_platform.errors import ToolError

__all__ = ["ROW_COUNT_CAP", "count", "create", "delete", "fetch", "fit_record", "list_models", "query_page", "update"]

ROW_COUNT_CAP = 100_000
"""`list_models` counts rows up to this many, so that listing stays cheap on big tables."""


def _record(row: Any, fields: Sequence[FieldSpec]) -> dict[str, Any]:
    return {field.name: to_json_value(row[field.name]) for field in fields}


def _select(view: ModelView, fields: Sequence[FieldSpec]) -> Select[Any]:
    return select(*(field.column.label(field.name) for field in fields)).select_from(view.selectable)


async def query_page(
    backend: OrmBackend,
    model: str,
    where: dict[str, Any] | None,
    order_by: list[str] | None,
    fields: list[str] | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """One page of records, cut at `limit` (clamped to `max_rows`) or before the reply outgrows
    `max_result_bytes`, whichever comes first."""
    view = backend.catalog.get(model)
    condition = compile_where(view, where)
    keys = sort_keys(view, parse_order_by(view, order_by))
    projection = parse_fields(view, fields)
    limit = max(1, min(limit, backend.settings.max_rows))
    query = fingerprint(view.name, where, order_by)
    selected = {field.name: field for field in projection} | {key.field.name: key.field for key in keys}
    statement = _select(view, list(selected.values()))
    if condition is not None:
        statement = statement.where(condition)
    if cursor:  # "" too means the first page: models often fill optional strings with it
        raw = backend.cursors.decode(cursor, query, len(keys))
        last = [key.field.coerce(view.name, value) for key, value in zip(keys, raw, strict=True)]
        statement = statement.where(after_key(keys, last))
    statement = statement.order_by(*order_clauses(keys)).limit(limit + 1)
    cap = backend.settings.max_result_bytes
    page: dict[str, Any] = {"model": view.name, "records": [], "next_cursor": None, "truncated": False,
                            "limit": limit}

    def size(records: list[dict[str, Any]], next_cursor: str | None) -> int:
        return len(to_json({**page, "records": records, "next_cursor": next_cursor, "truncated": True}))

    async def work(session: AsyncSession) -> dict[str, Any]:
        records: list[dict[str, Any]] = []
        used = size([], None)
        next_cursor: str | None = None
        result = await session.stream(statement)
        try:
            async for row in result.mappings():
                if len(records) == limit:
                    page["next_cursor"] = next_cursor
                    break
                record = _record(row, projection)
                cursor_after = backend.cursors.encode(query, [to_json_value(row[key.field.name]) for key in keys])
                # The comma between records, this record, and the longer cursor that would follow it.
                grown = used + 1 + len(to_json(record)) + len(cursor_after) - len(next_cursor or "")
                if grown > cap:
                    if not records:
                        raise ToolError(
                            f"One {view.name} record is larger than the {cap}-byte reply limit "
                            "(database.max_result_bytes); ask for fewer fields with `fields`."
                        )
                    page["next_cursor"], page["truncated"] = next_cursor, True
                    break
                records.append(record)
                used, next_cursor = grown, cursor_after
        finally:
            await result.close()
        page["records"] = records
        return page

    result = await backend.read(work)
    if size(result["records"], result["next_cursor"]) > cap:  # the running sum is an upper bound; belt and braces
        raise ToolError(f"The page would exceed the {cap}-byte reply limit; lower limit or ask for fewer fields.")
    return result


def fit_record(record: dict[str, Any], cap: int, keep: Sequence[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """`record` as it can be echoed within `cap` bytes of JSON, and the fields that were shortened for it.

    A write has committed by the time its record is echoed, so the echo must fit the reply limit rather than turn
    the reply into an error: the longest values are cut (strings to a prefix, anything else to null) until it fits.
    `keep` (the primary key) is never cut."""
    if len(to_json(record)) <= cap:
        return record, []
    fitted = dict(record)
    cut: list[str] = []
    candidates = [name for name, value in record.items() if name not in keep and value is not None]
    for name in sorted(candidates, key=lambda name: -len(to_json(record[name]))):
        over = len(to_json(fitted)) - cap
        if over <= 0:
            break
        value = fitted[name]
        # Each character is at least one byte of JSON, so dropping `over` characters is enough.
        fitted[name] = value[:max(0, len(value) - over)] if isinstance(value, str) else None
        cut.append(name)
    return fitted, sorted(cut)


def _by_id(view: ModelView, record_id: int | str, *, strict: bool = False) -> tuple[FieldSpec, Any]:
    if len(view.primary_key) != 1:
        names = ", ".join(field.name for field in view.primary_key)
        raise ToolError(f"Model {view.name} has a composite primary key ({names}); find its records with "
                        f"query_records and a where on {names}.")
    pk = view.primary_key[0]
    value = pk.coerce(view.name, record_id, strict=strict)
    if value is None:
        raise ToolError(f"id must be a value of {view.name}.{pk.name}, not null.")
    return pk, value


def _not_found(view: ModelView, pk: FieldSpec, record_id: int | str) -> ToolError:
    return ToolError(f"No {view.name} record has {pk.name} = {record_id!r}.")


async def _load(session: AsyncSession, view: ModelView, pk: FieldSpec, value: Any) -> dict[str, Any] | None:
    fields = list(view.fields.values())
    row = (await session.execute(_select(view, fields).where(pk.column == value))).mappings().first()
    return None if row is None else _record(row, fields)


async def fetch(backend: OrmBackend, model: str, record_id: int | str) -> dict[str, Any]:
    view = backend.catalog.get(model)
    pk, value = _by_id(view, record_id)
    record = await backend.read(lambda session: _load(session, view, pk, value))
    if record is None:
        raise _not_found(view, pk, record_id)
    return record


async def count(backend: OrmBackend, model: str, where: dict[str, Any] | None) -> int:
    view = backend.catalog.get(model)
    condition = compile_where(view, where)
    statement = select(func.count()).select_from(view.selectable)
    if condition is not None:
        statement = statement.where(condition)

    async def work(session: AsyncSession) -> int:
        return int((await session.execute(statement)).scalar_one())

    return await backend.read(work)


async def list_models(backend: OrmBackend) -> list[dict[str, Any]]:
    views = list(backend.catalog.views.values())

    async def work(session: AsyncSession) -> list[int]:
        counts = []
        for view in views:
            sample = select(view.primary_key[0].column).select_from(view.selectable).limit(ROW_COUNT_CAP).subquery()
            counts.append(int((await session.execute(select(func.count()).select_from(sample))).scalar_one()))
        return counts

    counts = await backend.read(work)
    return [
        {
            "name": view.name,
            "table": view.table.name,
            "writable": view.writable,
            "primary_key": [field.name for field in view.primary_key],
            "fields": list(view.fields),
            "row_count": rows,
            "row_count_capped": rows >= ROW_COUNT_CAP,
        }
        for view, rows in zip(views, counts, strict=True)
    ]


def _values(view: ModelView, values: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """`values` coerced to the columns' types; unknown fields, the primary key on update, and nulls in
    non-nullable fields are refused."""
    if not isinstance(values, dict):
        raise ToolError("values must be an object of field names to values.")
    writable = [f.name for f in view.fields.values() if creating or not f.primary_key]
    coerced: dict[str, Any] = {}
    for name, raw in values.items():
        field = view.fields.get(name)
        if field is None:
            raise ToolError(f"Unknown field {name!r} in values for model {view.name}. Fields you can set: "
                            f"{', '.join(writable)}.")
        if field.primary_key and not creating:
            raise ToolError(f"Field {name!r} is the primary key of {view.name} and cannot be changed; create a new "
                            "record instead.")
        value = field.coerce(view.name, raw, strict=True)  # a write: `"true"` is not true, nor `"0"` 0
        if value is None and not field.nullable:
            raise ToolError(f"Field {name!r} of model {view.name} cannot be null.")
        coerced[name] = value
    if creating:
        missing = [f.name for f in view.fields.values() if f.required and f.name not in coerced]
        if missing:
            raise ToolError(f"Creating a {view.name} needs values for: {', '.join(missing)}.")
    elif not coerced:
        raise ToolError(f"values is empty: name the fields of {view.name} to change ({', '.join(writable)}).")
    return coerced


def _mapped(view: ModelView) -> type[Any]:
    if view.mapped is None:  # catalog.writable() only returns mapped classes; reflected tables are read-only
        raise ToolError(f"Model {view.name} is read-only.")
    return view.mapped


def _assign(view: ModelView, instance: object, values: dict[str, Any]) -> None:
    for name, value in values.items():
        try:
            setattr(instance, name, value)
        except ValueError as exc:  # a model's own validation (for example @validates) explains itself
            raise ToolError(f"Model {view.name} refused field {name!r}: {exc}") from None


async def create(backend: OrmBackend, model: str, values: dict[str, Any]) -> dict[str, Any]:
    view = backend.catalog.writable(model)
    coerced = _values(view, values, creating=True)
    mapper = sa_inspect(_mapped(view))

    async def work(session: AsyncSession) -> dict[str, Any]:
        # new_instance() skips a custom __init__, whose signature the tools cannot know; defaults still apply.
        instance = mapper.class_manager.new_instance()
        _assign(view, instance, coerced)
        session.add(instance)
        await session.flush()
        identity = mapper.primary_key_from_instance(instance)
        pk = view.primary_key[0]
        condition: ColumnElement[bool] = pk.column == identity[0]
        for field, key in zip(view.primary_key[1:], identity[1:], strict=True):
            condition = condition & (field.column == key)
        fields = list(view.fields.values())
        row = (await session.execute(_select(view, fields).where(condition))).mappings().one()
        return _record(row, fields)

    return await backend.write(work)


async def update(backend: OrmBackend, model: str, record_id: int | str, values: dict[str, Any]) -> dict[str, Any]:
    view = backend.catalog.writable(model)
    pk, value = _by_id(view, record_id, strict=True)
    coerced = _values(view, values, creating=False)

    async def work(session: AsyncSession) -> dict[str, Any]:
        instance = await session.get(_mapped(view), value)
        if instance is None:
            raise _not_found(view, pk, record_id)
        _assign(view, instance, coerced)
        await session.flush()
        record = await _load(session, view, pk, value)
        assert record is not None
        return record

    return await backend.write(work)


async def delete(backend: OrmBackend, model: str, record_id: int | str) -> dict[str, Any]:
    view = backend.catalog.writable(model)
    pk, value = _by_id(view, record_id, strict=True)

    async def work(session: AsyncSession) -> dict[str, Any]:
        record = await _load(session, view, pk, value)
        instance = await session.get(_mapped(view), value)
        if record is None or instance is None:
            raise _not_found(view, pk, record_id)
        # Through the ORM, so the model's cascades (and refusals) apply as they do in the application.
        await session.delete(instance)
        await session.flush()
        return record

    return await backend.write(work)
