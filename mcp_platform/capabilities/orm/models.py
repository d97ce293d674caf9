"""Which models the ORM tools may reach: `expose_model` marks a declarative class, `@seed` marks a data loader.

Both only mark what they decorate; nothing is registered globally. `collect_models` and `collect_seeds` find the
marks in the modules tool discovery imported; the ORM capability's start hands them to the backend wrapped in
`ExposedModels` and `SeedHooks`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from sqlalchemy import Table

from mcp_platform.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = [
    "ExposedModel",
    "ExposedModels",
    "SeedFn",
    "SeedHook",
    "SeedHooks",
    "collect_models",
    "collect_seeds",
    "expose_model",
    "seed",
]

C = TypeVar("C", bound=type[Any])
SeedFn = Callable[["AsyncSession"], Awaitable[None]]
"""`async def seed(session: AsyncSession) -> None`: adds rows; the backend commits."""

_MODEL_ATTR = "__mcp_platform_model__"
_SEED_ATTR = "__mcp_platform_seed__"


@dataclass(frozen=True, slots=True)
class ExposedModel:
    """One model the ORM tools may reach: a mapped class, or (reflection) a bare table, which is never writable."""

    source: type[Any] | Table
    name: str
    writable: bool = False
    fields: tuple[str, ...] | None = None
    """Attribute names reachable through the tools; `None` means every mapped column. The primary key is always
    included."""
    module: str | None = None

    @property
    def table_name(self) -> str:
        if isinstance(self.source, Table):
            return self.source.name
        table = getattr(self.source, "__table__", None)
        return table.name if isinstance(table, Table) else self.name


class ExposedModels(list[ExposedModel]):
    """The models to expose, collected from the tool modules when the ORM capability starts."""


@overload
def expose_model(model_cls: C, *, writable: bool = ..., name: str | None = ..., fields: list[str] | None = ...) -> C:
    ...


@overload
def expose_model(
    model_cls: None = None, *, writable: bool = ..., name: str | None = ..., fields: list[str] | None = ...
) -> Callable[[C], C]:
    ...


def expose_model(
    model_cls: Any = None, *, writable: bool = False, name: str | None = None, fields: list[str] | None = None
) -> Any:
    """Mark a SQLAlchemy declarative class as reachable through the ORM tools, and return it unchanged.

    Use as `expose_model(Customer, writable=True)`, `@expose_model` or `@expose_model(fields=[...])`.
    `writable` allows `create_record`, `update_record` and `delete_record`; `name` is what tools call the model
    (default: the class name); `fields` limits the columns tools can see, filter on and write.
    """

    def mark(cls: C) -> C:
        if not isinstance(cls, type) or not isinstance(getattr(cls, "__table__", None), Table):
            raise ConfigError(f"expose_model: {cls!r} is not a mapped declarative class with a __table__")
        spec = ExposedModel(
            source=cls,
            name=name or cls.__name__,
            writable=writable,
            fields=tuple(fields) if fields is not None else None,
            module=cls.__module__,
        )
        # type.__setattr__ bypasses declarative's attribute interception: this is a marker, not a mapped attribute.
        type.__setattr__(cls, _MODEL_ATTR, spec)
        return cls

    return mark(model_cls) if model_cls is not None else mark


def exposed_spec(obj: object) -> ExposedModel | None:
    """The mark `expose_model` put on `obj` itself (a subclass of a marked class is not marked)."""
    if not isinstance(obj, type):
        return None
    spec = vars(obj).get(_MODEL_ATTR)
    return spec if isinstance(spec, ExposedModel) else None


def collect_models(sources: Iterable[ModuleType | type[Any]]) -> list[ExposedModel]:
    """The exposed models defined in `sources` (modules, or classes directly), in definition order, without
    duplicates. Two different models under one name are a `ConfigError`."""
    found: dict[str, ExposedModel] = {}
    for source in sources:
        candidates: Iterable[object] = vars(source).values() if isinstance(source, ModuleType) else [source]
        for obj in candidates:
            spec = exposed_spec(obj)
            if spec is None:
                continue
            if isinstance(source, ModuleType) and spec.module != source.__name__:
                continue  # imported from elsewhere; its own module reports it
            known = found.get(spec.name)
            if known is not None and known.source is not spec.source:
                raise ConfigError(f"two exposed models are named {spec.name!r} ({known.module}, {spec.module}); "
                                  "give one of them expose_model(..., name=...)")
            found[spec.name] = spec
    return list(found.values())


@dataclass(frozen=True, slots=True)
class SeedHook:
    """A seed function and the module it came from; it runs when that module's exposed tables are all empty."""

    fn: SeedFn
    module: str
    name: str


class SeedHooks(list[SeedHook]):
    """The seed hooks to run, collected from the tool modules when the ORM capability starts."""


def seed(fn: SeedFn) -> SeedFn:
    """Mark `async def fn(session: AsyncSession) -> None` as example data for the models of its module.

    After creating missing tables the backend runs it once, in one transaction, if every exposed table of the
    same module is empty; a failing seed is logged and the server still starts.
    """
    if not inspect.iscoroutinefunction(fn):
        raise ConfigError(f"@seed: {getattr(fn, '__qualname__', fn)!r} must be an async function taking a session")
    setattr(fn, _SEED_ATTR, True)
    return fn


def collect_seeds(modules: Iterable[ModuleType]) -> list[SeedHook]:
    """The `@seed` functions defined in `modules`, in module order."""
    hooks: list[SeedHook] = []
    for module in modules:
        for obj in vars(module).values():
            if callable(obj) and getattr(obj, _SEED_ATTR, False) is True and obj.__module__ == module.__name__:
                hooks.append(SeedHook(fn=obj, module=module.__name__, name=obj.__qualname__))
    return hooks


def models_of(models: Sequence[ExposedModel], module: str) -> list[ExposedModel]:
    return [model for model in models if model.module == module]
