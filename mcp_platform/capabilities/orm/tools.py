"""The ORM tools: list and describe exposed models, query, fetch and count records, and (writable models only)
create, update and delete them. The capability starts an `OrmBackend` for the models the tool modules expose.
"""

from __future__ import annotations

import hashlib
import hmac
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, StrictInt, StrictStr

from mcp_platform.capabilities import Capability, Started
from mcp_platform.capabilities.orm import records
from mcp_platform.capabilities.orm.backend import OrmBackend
from mcp_platform.capabilities.orm.filters import operators_for
from mcp_platform.capabilities.orm.models import ExposedModels, SeedHooks, collect_models, collect_seeds
from mcp_platform.capabilities.orm.serialize import Kind
from mcp_platform.context import ToolContext
from mcp_platform.core import Core
from mcp_platform.registry import tool

if TYPE_CHECKING:
    from mcp_platform.settings import Settings

__all__ = [
    "CAPABILITY",
    "ORM_WRITE_TOOLS",
    "count_records",
    "create_record",
    "delete_record",
    "describe_model",
    "get_record",
    "list_models",
    "query_records",
    "update_record",
]

ORM_WRITE_TOOLS: tuple[str, ...] = ("create_record", "update_record", "delete_record")
"""The tools that change data; `--read-only` removes them."""


class ModelSummary(BaseModel):
    name: str
    table: str
    writable: bool
    primary_key: list[str]
    fields: list[str]
    row_count: int
    row_count_capped: bool
    """True when the table holds at least `row_count` rows and counting stopped there."""


class ModelList(BaseModel):
    models: list[ModelSummary]


class ColumnInfo(BaseModel):
    name: str
    type: str
    kind: str
    nullable: bool
    primary_key: bool
    default: str | None
    required_on_create: bool
    choices: list[Any] | None
    operators: list[str]
    """Operators `where` accepts for this field."""


class ForeignKeyInfo(BaseModel):
    field: str
    references: str
    model: str | None


class IndexInfo(BaseModel):
    name: str | None
    fields: list[str]
    unique: bool


class RelationshipInfo(BaseModel):
    name: str
    target: str | None
    """The exposed model on the other side, if it is exposed."""
    target_class: str
    direction: str
    many: bool


class ModelDescription(BaseModel):
    name: str
    table: str
    writable: bool
    primary_key: list[str]
    columns: list[ColumnInfo]
    foreign_keys: list[ForeignKeyInfo]
    indexes: list[IndexInfo]
    relationships: list[RelationshipInfo]


class RecordPage(BaseModel):
    model: str
    records: list[dict[str, Any]]
    next_cursor: str | None
    """Pass it back as `cursor` (with the same model, where and order_by) for the next page; null at the end."""
    truncated: bool
    """True when the page was cut short to keep the reply under the size limit (next_cursor continues it)."""
    limit: int
    """The page size applied, after clamping to the server's maximum."""


def _whole(value: object) -> bool:
    """Whether a truncation field says nothing was cut (it is then left out of the reply)."""
    return not value


class RecordReply(BaseModel):
    model: str
    record: dict[str, Any]
    truncated: bool = Field(False, exclude_if=_whole)
    """Present (true) only when long fields of `record` were shortened to keep the reply under the size limit. A
    write has still stored every value in full; query_records with `fields` reads the other fields alone."""
    truncated_fields: list[str] = Field([], exclude_if=_whole)
    """Present only with `truncated`: the fields of `record` that were shortened (strings cut to a prefix, other
    values replaced by null)."""


class RecordCount(BaseModel):
    model: str
    count: int


class DeletedRecord(BaseModel):
    model: str
    deleted: dict[str, Any]
    """The record as it was before deletion."""
    truncated: bool = Field(False, exclude_if=_whole)
    """Present (true) only when long fields of `deleted` were shortened to keep the reply under the size limit."""
    truncated_fields: list[str] = Field([], exclude_if=_whole)
    """Present only with `truncated`: the fields of `deleted` that were shortened."""


_REPLY_OVERHEAD = 512
"""Bytes of a reply besides the record: the model name and the truncation fields."""

Where = dict[str, Any] | None
RecordId = StrictInt | StrictStr
"""Strict, so that `true` is not taken for the id 1."""


@tool(read_only=True, title="List data models")
async def list_models(ctx: ToolContext) -> ModelList:
    """List the application's data models these tools can reach: name, table, whether they are writable, their
    fields and primary key, and a row count (capped on big tables)."""
    backend = ctx.backend(OrmBackend)
    return ModelList(models=[ModelSummary(**item) for item in await records.list_models(backend)])


@tool(read_only=True, title="Describe a data model")
async def describe_model(ctx: ToolContext, model: str) -> ModelDescription:
    """Describe one model: its columns (type, nullable, default, primary key, allowed `where` operators, enum
    choices), foreign keys, relationships and indexes.

    Args:
        model: Model name as given by list_models, e.g. "Customer".
    """
    backend = ctx.backend(OrmBackend)
    view = backend.catalog.get(model)
    described = view.describe(backend.engine.dialect, backend.catalog.names_by_table)
    for column in described["columns"]:
        column["operators"] = list(operators_for(Kind(column["kind"])))
    return ModelDescription(name=view.name, table=view.table.name, writable=view.writable,
                            primary_key=[field.name for field in view.primary_key], **described)


@tool(read_only=True, title="Query records")
async def query_records(
    ctx: ToolContext,
    model: str,
    where: Where = None,
    order_by: list[str] | None = None,
    fields: list[str] | None = None,
    limit: Annotated[int, Field(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> RecordPage:
    """Query records of a model with a structured filter, ordering and keyset pagination.

    `where` is a JSON filter: {"field": value} tests equality; {"field": {"op": value}} uses an operator, one of
    eq, ne, lt, lte, gt, gte, in, not_in, like, ilike (% and _ are wildcards), is_null (true/false); several
    keys in one object must all hold; {"and": [...]}, {"or": [...]} and {"not": {...}} combine clauses.
    ne and not_in also match records where the field is null. Dates and times are ISO strings, decimals may be
    strings, bytes are base64; records come back the same way.

    Args:
        model: Model name as given by list_models.
        where: Filter, e.g. {"status": "paid", "total": {"gte": 100}}. Omit for all records.
        order_by: Field names to sort by, '-' prefixed for descending, e.g. ["-placed_on"]. The primary key
            always breaks ties; nulls sort last ascending and first descending.
        fields: Fields to return (the primary key is always included). Omit for all fields.
        limit: Records per page; the server may apply a lower maximum (see `limit` in the reply).
        cursor: next_cursor from the previous page of this same query, to continue after it.
    """
    backend = ctx.backend(OrmBackend)
    # Large pages take a while on a busy database: say what is happening (sent only if the client asked).
    large = limit > 100
    if large:
        await ctx.report_progress(0, 2, f"querying {model}")
    page = await records.query_page(backend, model, where, order_by, fields, limit, cursor)
    if large:
        await ctx.report_progress(2, 2, f"{len(page.get('records', []))} records")
    return RecordPage(**page)


@tool(read_only=True, title="Get a record")
async def get_record(ctx: ToolContext, model: str, id: RecordId) -> RecordReply:
    """Fetch one record of a model by its primary key.

    Args:
        model: Model name as given by list_models.
        id: Primary key value (a string is converted to the key's type).
    """
    backend = ctx.backend(OrmBackend)
    view = backend.catalog.get(model)
    return _reply(backend, view.name, await records.fetch(backend, model, id))


@tool(read_only=True, title="Count records")
async def count_records(ctx: ToolContext, model: str, where: Where = None) -> RecordCount:
    """Count the records of a model that match a filter (the same `where` language as query_records).

    Args:
        model: Model name as given by list_models.
        where: Filter, e.g. {"city": {"is_null": true}}. Omit to count all records.
    """
    backend = ctx.backend(OrmBackend)
    view = backend.catalog.get(model)
    return RecordCount(model=view.name, count=await records.count(backend, model, where))


@tool(read_only=False, destructive=False, idempotent=False, title="Create a record")
async def create_record(ctx: ToolContext, model: str, values: dict[str, Any]) -> RecordReply:
    """Create a record of a writable model, in one transaction, and return it as stored (defaults filled in). A
    record too big for the reply is still stored in full; the reply then shortens its long fields and says so
    (`truncated`, `truncated_fields`), so do not create it again.

    Args:
        model: Model name of a writable model (see list_models).
        values: Field values, e.g. {"name": "Ada", "email": "ada@example.com"}, each in its column's JSON type
            (3, not "3"; true, not "true"). Fields that are required have required_on_create true in
            describe_model.
    """
    backend = ctx.backend(OrmBackend)
    record = await records.create(backend, model, values)
    return _reply(backend, model, record)


@tool(read_only=False, destructive=True, idempotent=True, title="Update a record")
async def update_record(ctx: ToolContext, model: str, id: RecordId, values: dict[str, Any]) -> RecordReply:
    """Change fields of one record of a writable model, in one transaction, and return the record afterwards.
    The primary key cannot be changed. A record too big for the reply comes back with its long fields shortened
    (`truncated`, `truncated_fields`); the change is stored in full.

    Args:
        model: Model name of a writable model (see list_models).
        id: Primary key of the record.
        values: Fields to change and their new values, each in its column's JSON type (3, not "3"); fields not
            named keep their value.
    """
    backend = ctx.backend(OrmBackend)
    record = await records.update(backend, model, id, values)
    return _reply(backend, model, record)


@tool(read_only=False, destructive=True, idempotent=True, title="Delete a record")
async def delete_record(ctx: ToolContext, model: str, id: RecordId) -> DeletedRecord:
    """Delete one record of a writable model, in one transaction, applying the model's cascades; the database
    refuses (and nothing changes) if other records still refer to it.

    Args:
        model: Model name of a writable model (see list_models).
        id: Primary key of the record.
    """
    backend = ctx.backend(OrmBackend)
    deleted = await records.delete(backend, model, id)
    reply = _reply(backend, model, deleted)
    return DeletedRecord(model=reply.model, deleted=reply.record, truncated=reply.truncated,
                         truncated_fields=reply.truncated_fields)


def _reply(backend: OrmBackend, model: str, record: dict[str, Any]) -> RecordReply:
    """The record as a reply that fits `database.max_result_bytes`: a write has committed by now, so a record too
    big to echo is shortened (and says so) instead of becoming an error that invites a retry."""
    view = backend.catalog.get(model)
    fitted, cut = records.fit_record(record, backend.settings.max_result_bytes - _REPLY_OVERHEAD,
                                     keep=[field.name for field in view.primary_key])
    return RecordReply(model=view.name, record=fitted, truncated=bool(cut), truncated_fields=cut)


def cursor_secret(settings: Settings) -> bytes | None:
    """The cursor-signing key derived from `secret_key`, so every instance accepts the others' cursors; `None`
    (a random key per process) when it is unset. Derived, so a cursor never doubles as another signature."""
    if settings.secret_key is None:
        return None
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, b"mcp-platform/orm/cursors", hashlib.sha256).digest()


async def start(core: Core, stack: AsyncExitStack) -> Started:
    """Start the backend for the models and seeds the discovered tool modules declare."""
    settings, modules = core.settings, core.discovered.modules
    models, seeds = ExposedModels(collect_models(modules)), SeedHooks(collect_seeds(modules))
    backend = OrmBackend(settings.database, models, seeds=seeds, secret=cursor_secret(settings))
    await stack.enter_async_context(backend)
    return Started(backends=[backend], health={"database": backend.health})


CAPABILITY = Capability(
    name="orm",
    tools=[list_models, describe_model, query_records, get_record, count_records, create_record, update_record,
           delete_record],
    start=start,
)
