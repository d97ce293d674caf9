"""ORM data: expose SQLAlchemy models to assistants, safely.

    expose_model(Customer, writable=True)   # or @expose_model / @expose_model(fields=[...])

    @seed
    async def load_examples(session: AsyncSession) -> None: ...

Only exposed models and their exposed columns are reachable; filters compile to bound parameters; every query
has row, byte and time limits; writes happen only on writable models, one transaction each. Custom tools reach
the same database through `ctx.backend(OrmBackend)` and its guarded `read()` / `write()`.
"""

from __future__ import annotations

from mcp_platform.capabilities.orm.backend import OrmBackend
from mcp_platform.capabilities.orm.models import (
    ExposedModel,
    ExposedModels,
    SeedHook,
    SeedHooks,
    collect_models,
    collect_seeds,
    expose_model,
    seed,
)
from mcp_platform.capabilities.orm.tools import CAPABILITY, ORM_WRITE_TOOLS

__all__ = [
    "CAPABILITY",
    "ORM_WRITE_TOOLS",
    "ExposedModel",
    "ExposedModels",
    "OrmBackend",
    "SeedHook",
    "SeedHooks",
    "collect_models",
    "collect_seeds",
    "expose_model",
    "seed",
]
