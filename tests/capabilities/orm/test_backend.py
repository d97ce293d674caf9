from __future__ import annotations

import logging
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mcp_platform.capabilities.orm import (
    CAPABILITY,
    ORM_WRITE_TOOLS,
    OrmBackend,
    SeedHook,
    collect_models,
    collect_seeds,
    expose_model,
    seed,
)
from mcp_platform.capabilities.orm.tools import (
    count_records,
    create_record,
    describe_model,
    list_models,
    query_records,
)
from mcp_platform.errors import ConfigError, ToolError
from mcp_platform.settings import DatabaseSettings
from mcp_platform.stores.sql import STATE_METADATA
from mcp_platform.tool_registry import Registry
from tests.capabilities.orm.conftest import Caller, open_shop
from tests.capabilities.support import call, start_capability, text
from tests.services import drop_postgres_database, fresh_postgres_database, require_postgres
from tests.support import TestClock, make_settings
from tools import shop
from tools.shop import Customer  # imported, not defined here: collect_models must not report it for this module


class Base(DeclarativeBase):
    pass


@expose_model(writable=True, name="Numbers")
class Number(Base):
    __tablename__ = "numbers"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int]


class Unexposed(Base):
    __tablename__ = "unexposed"
    id: Mapped[int] = mapped_column(primary_key=True)


def settings_for(tmp_path: Path, **database: Any) -> DatabaseSettings:
    return DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}", **database)


async def fill_numbers(backend: OrmBackend, rows: int) -> None:
    async def work(session: AsyncSession) -> None:
        await session.execute(sa.insert(Number), [{"id": n, "value": n % 7} for n in range(rows)])

    await backend.write(work)


@pytest.mark.anyio
async def test_a_query_past_the_statement_timeout_is_interrupted(tmp_path: Path) -> None:
    clock = TestClock(0.0)
    settings = settings_for(tmp_path, statement_timeout_seconds=5)
    async with OrmBackend(settings, collect_models([Number]), clock=clock) as backend:
        await fill_numbers(backend, 5000)
        caller = Caller(backend)
        where = {"value": {"ne": 3}}
        assert (await caller.ok(count_records, model="Numbers", where=where))["count"] == 4286
        clock.tick = 1.0  # a second per reading: the query outlives any deadline
        message = await caller.fails(count_records, model="Numbers", where=where)
        assert "did not finish within 5 s" in message and "statement_timeout_seconds" in message
        clock.tick = 0.0
        # The interrupted connection went back to the pool and serves the next query.
        assert (await caller.ok(count_records, model="Numbers", where=where))["count"] == 4286


@pytest.mark.anyio
async def test_reads_cannot_write(tmp_path: Path) -> None:
    async with open_shop(tmp_path) as backend:
        async def sneak(session: AsyncSession) -> None:
            await session.execute(sa.delete(shop.OrderItem))

        with pytest.raises(DBAPIError, match="read-?only"):
            await backend.read(sneak)
        assert (await Caller(backend).ok(count_records, model="OrderItem"))["count"] == 60


@pytest.mark.anyio
async def test_server_side_statement_timeout_stops_a_slow_query() -> None:
    base = require_postgres()
    url, name = await fresh_postgres_database(base)
    try:
        settings = DatabaseSettings(url=url, statement_timeout_seconds=0.2)
        async with OrmBackend(settings, collect_models([shop]), seeds=collect_seeds([shop]),
                              secret=b"s" * 32) as backend:
            async def slow(session: AsyncSession) -> None:
                await session.execute(sa.select(sa.func.pg_sleep(30)))

            with pytest.raises(ToolError, match="did not finish within 0.2 s"):
                await backend.read(slow)
            assert (await Caller(backend).ok(count_records, model="Order"))["count"] == 30
    finally:
        await drop_postgres_database(base, name)


@pytest.mark.anyio
async def test_a_write_that_fails_is_rolled_back(tmp_path: Path) -> None:
    async with OrmBackend(settings_for(tmp_path), collect_models([Number])) as backend:
        async def half(session: AsyncSession) -> None:
            await session.execute(sa.insert(Number).values(id=1, value=1))
            raise ToolError("changed my mind")

        with pytest.raises(ToolError, match="changed my mind"):
            await backend.write(half)
        assert (await Caller(backend).ok(count_records, model="Numbers"))["count"] == 0


@pytest.mark.anyio
async def test_seed_runs_only_while_the_tables_are_empty(tmp_path: Path) -> None:
    async with open_shop(tmp_path) as backend:
        caller = Caller(backend)
        await caller.ok(create_record, model="Customer", values={"email": "new@example.com", "name": "New"})
        assert (await caller.ok(count_records, model="Customer"))["count"] == 13
    async with open_shop(tmp_path, fresh=False) as backend:
        assert (await Caller(backend).ok(count_records, model="Customer"))["count"] == 13


@pytest.mark.anyio
async def test_a_failing_seed_is_logged_and_start_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(session: AsyncSession) -> None:
        session.add(Number(id=1, value=1))
        raise RuntimeError("seed bug")

    hook = SeedHook(fn=broken, module=__name__, name="broken")
    with caplog.at_level(logging.ERROR):
        async with OrmBackend(settings_for(tmp_path), collect_models([Number]), seeds=[hook]) as backend:
            assert (await Caller(backend).ok(count_records, model="Numbers"))["count"] == 0
    assert "seed hook broken" in caplog.text and "seed bug" in caplog.text


@pytest.mark.anyio
async def test_reflection_exposes_other_tables_read_only(tmp_path: Path) -> None:
    state_table = next(iter(STATE_METADATA.tables))
    metadata = sa.MetaData()
    legacy = sa.Table("legacy", metadata, sa.Column("code", sa.String(8), primary_key=True),
                      sa.Column("label", sa.Text))
    sa.Table("no_pk", metadata, sa.Column("x", sa.Integer))
    sa.Table(state_table, metadata, sa.Column("id", sa.Integer, primary_key=True))
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(legacy.insert(), [{"code": "b", "label": None}, {"code": "a", "label": "first"}])
    await engine.dispose()

    async with OrmBackend(settings_for(tmp_path, reflect=True), collect_models([shop])) as backend:
        caller = Caller(backend)
        names = [model["name"] for model in (await caller.ok(list_models))["models"]]
        assert names == ["Customer", "Product", "Order", "OrderItem", "legacy"]
        page = await caller.ok(count_records, model="legacy", where={"label": {"is_null": False}})
        assert page["count"] == 1
        assert (await caller.ok(describe_model, model="legacy"))["writable"] is False
        assert "read-only" in await caller.fails(create_record, model="legacy", values={"code": "c"})


@pytest.mark.anyio
async def test_an_in_memory_database_is_refused(tmp_path: Path) -> None:
    for url in ("sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"):
        with pytest.raises(ConfigError, match="in-memory"):
            OrmBackend(DatabaseSettings.model_validate({"url": url}))


def test_collect_models_finds_only_what_a_module_defines_and_marks() -> None:
    this = sys.modules[__name__]
    assert [model.name for model in collect_models([this])] == ["Numbers"]
    assert [model.name for model in collect_models([shop])] == ["Customer", "Product", "Order", "OrderItem"]
    assert collect_models([Unexposed]) == []
    assert Customer in [model.source for model in collect_models([Customer, shop])]
    assert [(hook.name, hook.module) for hook in collect_seeds([shop, this])] == [("load_examples", shop.__name__)]


def test_exposure_mistakes_are_config_errors(tmp_path: Path) -> None:
    class Plain:
        pass

    with pytest.raises(ConfigError, match="not a mapped declarative class"):
        expose_model(Plain)

    class Other(DeclarativeBase):
        pass

    class Twin(Other):
        __tablename__ = "twin"
        id: Mapped[int] = mapped_column(primary_key=True)

    expose_model(Twin, name="Numbers")
    with pytest.raises(ConfigError, match="two exposed models are named 'Numbers'"):
        collect_models([Number, Twin])

    async def not_async(session: AsyncSession) -> None:
        return None

    with pytest.raises(ConfigError, match="async function"):
        seed(lambda session: None)  # type: ignore[arg-type,return-value]
    assert seed(not_async) is not_async


@pytest.mark.anyio
async def test_unknown_exposed_fields_fail_at_start(tmp_path: Path) -> None:
    class Other(DeclarativeBase):
        pass

    @expose_model(fields=["id", "nope"])
    class Partial(Other):
        __tablename__ = "partial"
        id: Mapped[int] = mapped_column(primary_key=True)

    with pytest.raises(ConfigError, match=r"unknown fields nope; mapped columns are id"):
        async with OrmBackend(settings_for(tmp_path), collect_models([Partial])):
            pass


@pytest.mark.anyio
async def test_capability_starts_from_the_models_of_the_tool_modules(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database={"url": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"})
    async with AsyncExitStack() as stack:
        core = await start_capability(CAPABILITY, stack, settings, modules=[shop])
        listing = await Caller(core.backends.get(OrmBackend)).ok(list_models)
    assert [(m["name"], m["writable"], m["row_count"]) for m in listing["models"]] == [
        ("Customer", True, 12), ("Product", False, 10), ("Order", True, 30), ("OrderItem", False, 60)]


@pytest.mark.anyio
async def test_instances_sharing_secret_key_accept_each_others_cursors(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    cursors: list[str] = []
    for secret_key in ("k" * 32, "k" * 32, "other-key-" * 4, None):
        settings = make_settings(tmp_path, database={"url": url}, secret_key=secret_key)
        async with AsyncExitStack() as stack:
            core = await start_capability(CAPABILITY, stack, settings, modules=[shop])
            caller = Caller(core.backends.get(OrmBackend))
            if cursors:
                result = await call(query_records, {"model": "Customer", "limit": 2, "cursor": cursors[0]},
                                    caller.ctx)
                cursors.append("accepted" if not result.is_error else text(result))
            else:
                cursors.append((await caller.ok(query_records, model="Customer", limit=2))["next_cursor"])
    assert cursors[1] == "accepted"
    assert "cursor is not valid" in cursors[2] and "cursor is not valid" in cursors[3]


@pytest.mark.anyio
async def test_capability_starts_empty_without_models(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database={"url": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"})
    async with AsyncExitStack() as stack:
        core = await start_capability(CAPABILITY, stack, settings)
        caller = Caller(core.backends.get(OrmBackend))
        assert (await caller.ok(list_models))["models"] == []
        assert "no model is exposed" in await caller.fails(count_records, model="Customer")


def test_tools_match_the_catalogue() -> None:
    registry = Registry()
    tools = {tool.name: tool for tool in (registry.add(fn) for fn in CAPABILITY.tools)}
    expected = {  # name: (scope, readOnly, destructive, idempotent, arguments)
        "list_models": ("read", True, False, True, []),
        "describe_model": ("read", True, False, True, ["model"]),
        "query_records": ("read", True, False, True, ["model", "where", "order_by", "fields", "limit", "cursor"]),
        "get_record": ("read", True, False, True, ["model", "id"]),
        "count_records": ("read", True, False, True, ["model", "where"]),
        "create_record": ("write", False, False, False, ["model", "values"]),
        "update_record": ("write", False, True, True, ["model", "id", "values"]),
        "delete_record": ("write", False, True, True, ["model", "id"]),
    }
    assert set(tools) == set(expected)
    for name, (scope, read_only, destructive, idempotent, arguments) in expected.items():
        tool = tools[name]
        annotations = tool.definition["annotations"]
        assert (tool.spec.scope, annotations["readOnlyHint"], annotations["destructiveHint"],
                annotations["idempotentHint"], annotations["openWorldHint"]) == (
            scope, read_only, destructive, idempotent, False), name
        assert list(tool.input_schema["properties"]) == arguments, name
        assert tool.output_schema is not None and tool.output_schema["type"] == "object", name
        assert tool.definition["title"] and tool.definition["description"], name
    assert set(ORM_WRITE_TOOLS) == {name for name, row in expected.items() if not row[1]}
    limit = tools["query_records"].input_schema["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 1000, 50)


@pytest.mark.anyio
async def test_describe_model_shows_only_exposed_columns(caller: Caller) -> None:
    customer = await caller.ok(describe_model, model="Customer")
    assert [c["name"] for c in customer["columns"]] == ["id", "email", "name", "city", "external_id", "created_at"]
    assert {i["name"]: i["fields"] for i in customer["indexes"]} == {"ix_customers_city": ["city"]}
    assert customer["relationships"] == [{"name": "orders", "target": "Order", "target_class": "Order",
                                          "direction": "one-to-many", "many": True}]
    email = customer["columns"][1]
    assert (email["type"], email["nullable"], email["required_on_create"]) == ("VARCHAR(254)", False, True)
    assert "like" in email["operators"]
    order = await caller.ok(describe_model, model="Order")
    status = next(c for c in order["columns"] if c["name"] == "status")
    assert status["choices"] == ["pending", "paid", "shipped", "cancelled"] and status["default"] == "'pending'"
    assert "gt" not in status["operators"]
    assert order["foreign_keys"] == [{"field": "customer_id", "references": "customers.id", "model": "Customer"}]
    assert "Exposed models: Customer" in await caller.fails(describe_model, model="Secrets")
