"""Real Redis and PostgreSQL for the tests that need them.

Without the service, such a test is skipped with the reason, on a developer's machine; with `CI=true` it fails
instead, because CI has both services and a skip there would hide a broken setup.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

REDIS_URL = os.environ.get("MCP_PLATFORM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get("MCP_PLATFORM_TEST_POSTGRES_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _require(name: str, url: str, default_port: int, variable: str) -> str:
    if _reachable(url, default_port):
        return url
    reason = f"{name} is not reachable at {urlsplit(url).hostname}:{urlsplit(url).port or default_port} " \
             f"(start it, or point {variable} at one)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must have {name}: {reason}")
    pytest.skip(reason)


def require_redis() -> str:
    """The test Redis URL (database 15, flushed by the tests that use it), or skip/fail."""
    return _require("Redis", REDIS_URL, 6379, "MCP_PLATFORM_TEST_REDIS_URL")


def require_postgres() -> str:
    """The test PostgreSQL URL, or skip/fail."""
    return _require("PostgreSQL", POSTGRES_URL, 5432, "MCP_PLATFORM_TEST_POSTGRES_URL")


async def fresh_postgres_database(base_url: str) -> tuple[str, str]:
    """Create an empty database next to `base_url`'s; returns (its URL, its name). Drop it with
    `drop_postgres_database`."""
    import secrets

    import asyncpg

    name = f"mcpp_test_{secrets.token_hex(4)}"
    parts = urlsplit(base_url.replace("+asyncpg", ""))
    conn = await asyncpg.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres",
                                 database=parts.path.lstrip("/") or "postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')  # a generated identifier, not input
    finally:
        await conn.close()
    return base_url.rsplit("/", 1)[0] + "/" + name, name


async def drop_postgres_database(base_url: str, name: str) -> None:
    import asyncpg

    parts = urlsplit(base_url.replace("+asyncpg", ""))
    conn = await asyncpg.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres",
                                 database=parts.path.lstrip("/") or "postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
