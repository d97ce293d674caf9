"""The state database: one async SQLAlchemy engine for tokens, feature flags and the audit log.

Each store declares its tables on `STATE_METADATA`; `StateDB.start()` creates whatever is missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import MetaData, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from mcp_platform import spans
from mcp_platform.errors import StoreUnavailable

__all__ = ["STATE_METADATA", "StateDB", "ensure_sqlite_folder", "is_unreachable", "reachable"]


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc` means the database could not be reached (as opposed to a bad query or value)."""
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc.orig, OSError | ConnectionError):
            return True
        return isinstance(exc, OperationalError | InterfaceError) and "connect" in str(exc.orig).lower()
    return False


@asynccontextmanager
async def reachable(service: str) -> AsyncIterator[None]:
    """Turn "cannot reach the database" inside the block into `StoreUnavailable(service)` (no URL, no password)."""
    try:
        yield
    except Exception as exc:
        if is_unreachable(exc):
            raise StoreUnavailable(service, type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__) \
                from exc
        raise

STATE_METADATA = MetaData()


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a file-backed SQLite URL, so a fresh clone needs no set-up step."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


class StateDB:
    """Owns the state engine. Create with a URL, `await start()` in the lifespan, `await close()` at shutdown."""

    def __init__(self, url: str) -> None:
        self.url = url
        ensure_sqlite_folder(url)
        # pre_ping: a connection that died while the database was away is replaced instead of failing a request.
        self.engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)
        spans.instrument_engine(self.engine)
        if self.engine.dialect.name == "sqlite":
            # WAL lets readers run while one writer commits; busy_timeout waits on a lock instead of failing.
            @event.listens_for(self.engine.sync_engine, "connect")
            def _pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
                cursor = dbapi_connection.cursor()
                if ":memory:" not in url:
                    cursor.execute("PRAGMA journal_mode=WAL")
                    # In WAL mode NORMAL still survives a crash of this process (only an OS crash or power loss
                    # can lose the last commits) and saves an fsync per commit, which the audit writer needs.
                    cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA busy_timeout=5000")
                cursor.close()

        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    async def start(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(STATE_METADATA.create_all)

    async def close(self) -> None:
        await self.engine.dispose()

    async def health(self) -> str | None:
        """None when a trivial query works, else a short reason (for /readyz)."""
        try:
            async with reachable("state database"), self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except StoreUnavailable as exc:
            return str(exc)
        return None
