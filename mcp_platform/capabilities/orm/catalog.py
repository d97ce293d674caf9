"""The exposed models as the tools see them: fields by name, primary key, and lookups that explain refusals.

Only what is in a `ModelView` is reachable: columns left out of `expose_model(fields=...)` cannot be read,
filtered, ordered or written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapper
from sqlalchemy.sql import FromClause

from mcp_platform.capabilities.orm.models import ExposedModel
from mcp_platform.capabilities.orm.serialize import Kind, coerce_value, kind_of, to_json_value
from mcp_platform.errors import ConfigError, ToolError

__all__ = ["Catalog", "FieldSpec", "ModelView"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    column: Column[Any]
    kind: Kind
    nullable: bool
    primary_key: bool
    required: bool
    """Must be given to `create_record`: not nullable, and nothing (default, sequence, autoincrement) fills it."""

    def coerce(self, model: str, value: Any, *, strict: bool = False) -> Any:
        """`value` from JSON for this column; `strict` for writes (see `coerce_value`)."""
        return coerce_value(model, self.name, self.column.type, self.kind, value, strict=strict)


class ModelView:
    """One exposed model, resolved against its mapper or table."""

    def __init__(self, spec: ExposedModel) -> None:
        self.name = spec.name
        self.writable = spec.writable
        self.mapped: type[Any] | None = None
        self.mapper: Mapper[Any] | None = None
        columns: list[tuple[str, Column[Any]]]
        if isinstance(spec.source, Table):
            self.table = spec.source
            self.selectable: FromClause = spec.source
            columns = [(column.key, column) for column in spec.source.columns]
            pk_columns = list(spec.source.primary_key.columns)
        else:
            try:
                mapper = sa.inspect(spec.source)
                columns = [(prop.key, prop.columns[0]) for prop in mapper.column_attrs
                           if isinstance(prop.columns[0], Column)]
            except SQLAlchemyError as exc:
                raise ConfigError(f"model {spec.name}: its mapping is invalid: {exc}") from exc
            self.mapped, self.mapper = spec.source, mapper
            self.table = spec.source.__table__
            self.selectable = mapper.selectable
            pk_columns = list(mapper.primary_key)
        if not pk_columns:
            raise ConfigError(f"model {spec.name} (table {self.table.name}) has no primary key; the ORM tools need "
                              "one to fetch records by id and to page without skipping rows")
        by_column = {column: name for name, column in columns}
        pk_names = [by_column[column] for column in pk_columns if column in by_column]
        if len(pk_names) != len(pk_columns):
            raise ConfigError(f"model {spec.name}: a primary key column is not a mapped attribute")
        if spec.fields is not None:
            known = {name for name, _ in columns}
            unknown = [name for name in spec.fields if name not in known]
            if unknown:
                raise ConfigError(f"expose_model({spec.name}, fields=...): unknown fields {', '.join(unknown)}; "
                                  f"mapped columns are {', '.join(sorted(known))}")
            keep = set(spec.fields) | set(pk_names)
            columns = [(name, column) for name, column in columns if name in keep]
        autoincrement = self.table.autoincrement_column
        self.fields: dict[str, FieldSpec] = {}
        for name, column in columns:
            filled = (column.default is not None or column.server_default is not None
                      or column is autoincrement or column.computed is not None or column.identity is not None)
            self.fields[name] = FieldSpec(
                name=name,
                column=column,
                kind=kind_of(column.type),
                nullable=bool(column.nullable),
                primary_key=column.primary_key,
                required=not column.nullable and not filled,
            )
        self.primary_key: tuple[FieldSpec, ...] = tuple(self.fields[name] for name in pk_names)

    def field(self, name: str, purpose: str) -> FieldSpec:
        """The field `name`, or a `ToolError` that lists the valid ones (`purpose` says where the name was used)."""
        found = self.fields.get(name) if isinstance(name, str) else None
        if found is None:
            raise ToolError(f"Unknown field {_short(name)} in {purpose} for model {self.name}. "
                            f"Valid fields: {', '.join(self.fields)}.")
        return found

    def describe(self, dialect: Dialect, names_by_table: Mapping[str, str]) -> dict[str, Any]:
        visible = {field.column: field.name for field in self.fields.values()}
        columns = [
            {
                "name": field.name,
                "type": _type_name(field.column, dialect),
                "kind": field.kind.value,
                "nullable": field.nullable,
                "primary_key": field.primary_key,
                "default": _default(field.column),
                "required_on_create": field.required,
                "choices": _choices(field.column),
            }
            for field in self.fields.values()
        ]
        foreign_keys = [
            {
                "field": visible[fk.parent],
                "references": f"{fk.column.table.name}.{fk.column.name}",
                "model": names_by_table.get(fk.column.table.name),
            }
            for fk in sorted(self.table.foreign_keys, key=lambda fk: fk.parent.name)
            if fk.parent in visible
        ]
        indexes = [
            {"name": index.name, "fields": [visible[column] for column in index.columns], "unique": bool(index.unique)}
            for index in sorted(self.table.indexes, key=lambda index: str(index.name))
            if all(column in visible for column in index.columns)
        ]
        relationships = []
        if self.mapper is not None:
            for rel in self.mapper.relationships:
                target = rel.mapper.local_table
                relationships.append({
                    "name": rel.key,
                    "target": names_by_table.get(target.name) if isinstance(target, Table) else None,
                    "target_class": rel.mapper.class_.__name__,
                    "direction": rel.direction.name.lower().replace("to", "-to-"),
                    "many": bool(rel.uselist),
                })
        return {"columns": columns, "foreign_keys": foreign_keys, "indexes": indexes, "relationships": relationships}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(column: Column[Any], dialect: Dialect) -> str:
    try:
        return str(column.type.compile(dialect=dialect))
    except SQLAlchemyError:
        return type(column.type).__name__


def _default(column: Column[Any]) -> str | None:
    default = column.default
    if default is not None:
        if getattr(default, "is_scalar", False):
            return repr(to_json_value(getattr(default, "arg", None)))
        if getattr(default, "is_sequence", False):
            return "next value of a sequence"
        return "computed when the row is created"
    if column.server_default is not None:
        return "set by the database"
    return None


def _choices(column: Column[Any]) -> list[Any] | None:
    type_ = column.type
    if not isinstance(type_, sa.Enum):
        return None
    if type_.enum_class is not None:
        return [member.value for member in type_.enum_class]
    return list(type_.enums)


class Catalog:
    """The exposed models by name."""

    def __init__(self, specs: Iterable[ExposedModel]) -> None:
        self.views: dict[str, ModelView] = {}
        for spec in specs:
            if spec.name in self.views:
                raise ConfigError(f"two exposed models are named {spec.name!r}")
            self.views[spec.name] = ModelView(spec)
        self.names_by_table = {view.table.name: view.name for view in self.views.values()}

    def get(self, name: str) -> ModelView:
        view = self.views.get(name) if isinstance(name, str) else None
        if view is None:
            valid = ", ".join(self.views) or "(none: no model is exposed on this server)"
            raise ToolError(f"Unknown model {_short(name)}. Exposed models: {valid}.")
        return view

    def writable(self, name: str) -> ModelView:
        view = self.get(name)
        if not view.writable:
            writable = ", ".join(v.name for v in self.views.values() if v.writable) or "none"
            raise ToolError(f"Model {view.name} is read-only: records cannot be created, updated or deleted through "
                            f"the tools. Writable models: {writable}.")
        return view
