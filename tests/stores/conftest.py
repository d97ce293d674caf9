from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.stores.support import RedisEnv, Twin


@pytest.fixture(params=["memory", "redis"])
async def twin(request: pytest.FixtureRequest) -> AsyncIterator[Twin]:
    """Runs a behaviour test once per implementation."""
    async with Twin.open(request.param) as opened:
        yield opened


@pytest.fixture
async def redis_env() -> AsyncIterator[RedisEnv]:
    async with RedisEnv.open() as env:
        yield env
