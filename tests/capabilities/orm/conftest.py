"""The example shop on a fresh SQLite file per test, and its tools called as dispatch calls them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from mcp_platform.capabilities.orm import OrmBackend, collect_models, collect_seeds
from mcp_platform.context import Backends
from mcp_platform.settings import DatabaseSettings
from tests.capabilities.support import call, context, principal, text
from tools import shop

SERVER_URL = os.environ.get("MCP_PLATFORM_TEST_ORM_URL")
"""Set (e.g. `postgresql+asyncpg://postgres@127.0.0.1:5432/postgres`) to run the shop tests on that server
instead of a SQLite file; their tables are dropped and recreated for each test."""


def shop_url(tmp_path: Path) -> str:
    return SERVER_URL or f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"


async def reset_server_database() -> None:
    if SERVER_URL is None:
        return
    engine = create_async_engine(SERVER_URL)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(shop.ShopBase.metadata.drop_all)
    finally:
        await engine.dispose()


@asynccontextmanager
async def open_shop(tmp_path: Path, *, fresh: bool = True, **database: Any) -> AsyncIterator[OrmBackend]:
    """The shop on an empty database (`fresh`), seeded on start."""
    if fresh:
        await reset_server_database()
    settings = DatabaseSettings(url=shop_url(tmp_path), **database)
    async with OrmBackend(settings, collect_models([shop]), seeds=collect_seeds([shop]), secret=b"s" * 32) as backend:
        yield backend


class Caller:
    """Calls ORM tools against one backend with a write-scoped principal."""

    def __init__(self, backend: OrmBackend) -> None:
        self.backend = backend
        backends = Backends()
        backends.add(backend)
        self.ctx = context(backends, principal("tester", "write"))

    async def ok(self, fn: Callable[..., Any], **arguments: Any) -> dict[str, Any]:
        result = await call(fn, arguments, self.ctx)
        assert not result.is_error, text(result)
        structured: dict[str, Any] = result.structured
        return structured

    async def fails(self, fn: Callable[..., Any], **arguments: Any) -> str:
        result = await call(fn, arguments, self.ctx)
        assert result.is_error, result.structured
        return text(result)


@pytest.fixture
async def caller(tmp_path: Path) -> AsyncIterator[Caller]:
    async with open_shop(tmp_path) as backend:
        yield Caller(backend)
