"""The ORM backend: engines for the application database, read-only reads, one transaction per write, timeouts.

Reads go through a connection that cannot write (SQLite: `PRAGMA query_only`; PostgreSQL: a read-only
transaction) and stop after `statement_timeout_seconds` (SQLite: a progress handler checks the injected clock;
PostgreSQL: `statement_timeout` for the transaction), with `anyio.fail_after` as the outer guard. Custom tools
use the same guarded paths through `read()` and `write()`.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
from sqlalchemy import MetaData, Table, event, exists, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from mcp_platform import spans
from mcp_platform.capabilities.orm.catalog import Catalog
from mcp_platform.capabilities.orm.models import ExposedModel, SeedHook, models_of
from mcp_platform.capabilities.orm.pagination import CursorCodec
from mcp_platform.errors import ConfigError, StoreUnavailable, ToolError
from mcp_platform.settings import DatabaseSettings
from mcp_platform.stores.sql import STATE_METADATA, ensure_sqlite_folder, is_unreachable

__all__ = ["OrmBackend"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_PROGRESS_STEPS = 1000
"""SQLite virtual-machine steps between two deadline checks: often enough to stop within milliseconds."""
_GRACE_SECONDS = 1.0
"""The database stops a slow statement itself; `fail_after` waits this much longer, as the backstop for waits the
database does not time (a SQLite lock wait, a hung connection)."""
_DEADLINE_KEY = "mcp_platform_deadline"
_QUERY_CANCELED = "57014"  # PostgreSQL SQLSTATE of a statement stopped by statement_timeout


def _sqlite_pragmas(engine: AsyncEngine, *, read_only: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (see the "begin" hook below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=5000")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
            # LIKE is case-sensitive on PostgreSQL; make SQLite agree so `like` means the same everywhere.
            cursor.execute("PRAGMA case_sensitive_like=ON")
        else:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection):  # type: ignore[no-untyped-def]
        # A writer takes the write lock up front: upgrading a read lock later fails at once under contention.
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class OrmBackend:
    """Serves the exposed models of one application database. `await start()` before use, `await close()` after."""

    def __init__(
        self,
        settings: DatabaseSettings,
        models: Sequence[ExposedModel] = (),
        *,
        seeds: Sequence[SeedHook] = (),
        clock: Callable[[], float] = time.monotonic,
        secret: bytes | None = None,
    ) -> None:
        self.settings = settings
        self._models = list(models)
        self._seeds = list(seeds)
        self._clock = clock
        self.cursors = CursorCodec(secret if secret is not None else secrets.token_bytes(32))
        url = make_url(settings.url)
        self.dialect_name = url.get_backend_name()
        self._sqlite = self.dialect_name == "sqlite"
        if self._sqlite and (not url.database or url.database == ":memory:" or "mode=memory" in str(url)):
            raise ConfigError("database.url: the ORM tools need a file (or server) database; an in-memory SQLite "
                              "database cannot be shared between their read and write connections")
        ensure_sqlite_folder(settings.url)
        self.engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)
        self._read_engine = self.engine
        if self._sqlite:
            _sqlite_pragmas(self.engine, read_only=False)
            self._read_engine = create_async_engine(url, pool_pre_ping=True)
            _sqlite_pragmas(self._read_engine, read_only=True)
            spans.instrument_engine(self._read_engine)
        spans.instrument_engine(self.engine)
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            raise RuntimeError("OrmBackend.start() has not run")
        return self._catalog

    @property
    def timeout(self) -> float:
        return self.settings.statement_timeout_seconds

    async def start(self) -> None:
        """Create missing tables of the exposed models, reflect the rest if asked to, then run seed hooks."""
        metadatas: list[MetaData] = []
        for model in self._models:
            table = model.source if isinstance(model.source, Table) else model.source.__table__
            if table.metadata not in metadatas:
                metadatas.append(table.metadata)
        async with self.engine.begin() as conn:
            for metadata in metadatas:
                await conn.run_sync(metadata.create_all)
        specs = list(self._models)
        if self.settings.reflect:
            specs += await self._reflect(specs)
        self._catalog = Catalog(specs)
        for hook in self._seeds:
            await self._seed(hook)

    async def close(self) -> None:
        await self.engine.dispose()
        if self._read_engine is not self.engine:
            await self._read_engine.dispose()

    async def __aenter__(self) -> OrmBackend:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _reflect(self, exposed: Sequence[ExposedModel]) -> list[ExposedModel]:
        metadata = MetaData()
        async with self._read_engine.connect() as conn:
            await conn.run_sync(metadata.reflect)
        # Never the server's own state (token hashes, audit log) if it shares the database.
        taken = {model.table_name for model in exposed} | {model.name for model in exposed} | set(STATE_METADATA.tables)
        found = []
        for table in metadata.sorted_tables:
            if table.name in taken:
                continue
            if not table.primary_key.columns:
                logger.warning("table %s has no primary key; it is not exposed to the ORM tools", table.name)
                continue
            found.append(ExposedModel(source=table, name=table.name, writable=False))
        return found

    async def _seed(self, hook: SeedHook) -> None:
        views = self.catalog.views
        own = [views[model.name].table for model in models_of(self._models, hook.module) if model.name in views]
        tables = own or [view.table for view in views.values()]

        async def empty(session: AsyncSession) -> bool:
            for table in tables:
                if (await session.execute(select(exists().select_from(table)))).scalar():
                    return False
            return True

        if not await self._run(empty, write=False, timeout=None):
            return
        try:
            await self._run(hook.fn, write=True, timeout=None)
        except Exception:
            logger.exception("seed hook %s (%s) failed; its tables stay empty", hook.name, hook.module)
        else:
            logger.info("seeded empty tables with %s (%s)", hook.name, hook.module)

    async def read(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` with a session that cannot write, inside the statement timeout; return what it returns."""
        return await self._run(work, write=False, timeout=self.timeout)

    async def write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` in one transaction, committed when it returns and rolled back when it raises. Integrity and
        data errors from the database become `ToolError`s that quote the database's reason."""
        return await self._run(work, write=True, timeout=self.timeout)

    async def _run(self, work: Callable[[AsyncSession], Awaitable[T]], *, write: bool, timeout: float | None) -> T:
        engine = self.engine if write else self._read_engine
        try:
            async with engine.connect() as conn:
                deadline = await self._deadline(conn)
                if deadline is not None:
                    # Set on every use and never cleared: a query abandoned by fail_after keeps its passed
                    # deadline, so SQLite interrupts it instead of letting it run on in the driver's thread.
                    deadline[0] = math.inf if timeout is None else self._clock() + timeout
                with anyio.fail_after(None if timeout is None else timeout + _GRACE_SECONDS):
                    async with conn.begin():
                        if self.dialect_name == "postgresql":
                            await self._postgres_limits(conn, write=write, timeout=timeout)
                        session = AsyncSession(bind=conn, expire_on_commit=False)
                        try:
                            result = await work(session)
                            await session.flush()
                        finally:
                            await session.close()
                return result
        except TimeoutError:
            raise ToolError(self._too_slow()) from None
        except (DBAPIError, OSError) as exc:
            if is_unreachable(exc):
                raise StoreUnavailable("database", type(exc).__name__) from None
            if isinstance(exc, OSError):
                raise
            raise self._explain(exc) from None

    async def _deadline(self, conn: AsyncConnection) -> list[float] | None:
        """SQLite only: the connection's deadline cell, installing its progress handler on first use."""
        if not self._sqlite:
            return None
        raw = await conn.get_raw_connection()
        cell: list[float] | None = raw.info.get(_DEADLINE_KEY)
        if cell is None:
            box = [math.inf]
            clock = self._clock

            def past_deadline() -> int:
                return 1 if clock() > box[0] else 0

            driver = raw.driver_connection
            assert driver is not None
            await driver.set_progress_handler(past_deadline, _PROGRESS_STEPS)
            raw.info[_DEADLINE_KEY] = cell = box
        return cell

    @staticmethod
    async def _postgres_limits(conn: AsyncConnection, *, write: bool, timeout: float | None) -> None:
        # set_config(..., is_local => true) is SET LOCAL with bound parameters: no SQL text is assembled.
        settings = [func.set_config("statement_timeout", str(math.ceil((timeout or 0) * 1000)), True)]
        if not write:
            settings.append(func.set_config("transaction_read_only", "on", True))
        await conn.execute(select(*settings))

    async def health(self) -> str | None:
        """None when the database answers a trivial query, else a short reason (for /readyz)."""

        async def probe(session: AsyncSession) -> None:
            await session.execute(select(1))

        try:
            await self._run(probe, write=False, timeout=5.0)
        except StoreUnavailable as exc:
            return str(exc)
        except Exception as exc:  # a readiness probe reports, it never raises
            return f"database check failed: {type(exc).__name__}"
        return None

    def _too_slow(self) -> str:
        return (f"The query did not finish within {self.timeout:g} s (database.statement_timeout_seconds) and was "
                "stopped; narrow the filter, lower limit, or ask for fewer fields.")

    def _explain(self, exc: DBAPIError) -> Exception:
        orig = exc.orig
        reason = str(orig).strip().splitlines()[0][:300] if orig is not None and str(orig).strip() else "no reason"
        if (self._sqlite and "interrupted" in reason) or getattr(orig, "sqlstate", None) == _QUERY_CANCELED:
            return ToolError(self._too_slow())
        if isinstance(exc, IntegrityError):
            return ToolError(f"The database refused the change: {reason}.")
        if isinstance(exc, DataError):
            return ToolError(f"The database refused a value: {reason}.")
        return exc
