from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mcp_platform.capabilities.flags import FlagStore, UnknownFlagError, feature_flags, set_feature_flag
from mcp_platform.context import Backends
from mcp_platform.settings import FeatureFlag
from mcp_platform.stores.sql import StateDB
from mcp_platform.tool_registry import Registry
from tests.capabilities.support import HOSTILE_STRINGS, call, context, principal, text
from tests.support import TestClock, state_url

DECLARED = {
    "beta": FeatureFlag(default=False, description="The beta UI"),
    "dark_mode": FeatureFlag(default=True, description="Dark theme"),
}


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[StateDB]:
    state = StateDB(state_url(tmp_path))
    await state.start()
    yield state
    await state.close()


async def _store(db: StateDB, declared: dict[str, FeatureFlag] = DECLARED) -> FlagStore:
    store = FlagStore(db, declared, clock=TestClock(1_700_000_000.0))
    await store.load()
    return store


@pytest.mark.anyio
async def test_values_show_defaults_until_set(db: StateDB) -> None:
    store = await _store(db)
    values = await store.values()
    assert [(f.name, f.enabled, f.default, f.source) for f in values] == [
        ("beta", False, False, "default"), ("dark_mode", True, True, "default")]
    assert values[0].description == "The beta UI"
    assert await store.get("dark_mode") is True


@pytest.mark.anyio
async def test_set_flag_records_who_and_when(db: StateDB) -> None:
    store = await _store(db)
    state = await store.set("beta", True, by="alice")
    assert (state.enabled, state.source, state.updated_by) == (True, "store", "alice")
    assert state.updated_at == 1_700_000_000.0
    assert await store.get("beta") is True


@pytest.mark.anyio
async def test_flag_survives_a_new_store_on_the_same_file(tmp_path: Path) -> None:
    first = StateDB(state_url(tmp_path))
    await first.start()
    await (await _store(first)).set("beta", True, by="alice")
    await (await _store(first)).set("dark_mode", False, by="bob")
    await first.close()

    second = StateDB(state_url(tmp_path))
    await second.start()
    try:
        store = await _store(second)
        assert await store.get("beta") is True
        assert await store.get("dark_mode") is False
        assert (await store.values())[1].updated_by == "bob"
    finally:
        await second.close()


@pytest.mark.anyio
async def test_unknown_flag_lists_the_declared_ones(db: StateDB) -> None:
    store = await _store(db)
    with pytest.raises(UnknownFlagError) as caught:
        await store.get("nope")
    assert "nope" in str(caught.value) and "beta, dark_mode" in str(caught.value)
    with pytest.raises(KeyError):
        await store.set("nope", True, by="alice")
    empty = await _store(db, {})
    with pytest.raises(UnknownFlagError, match="no feature flags are declared"):
        await empty.get("beta")


@pytest.mark.anyio
async def test_update_declarations_keeps_stored_values_and_marks_leftovers(db: StateDB) -> None:
    store = await _store(db)
    await store.set("beta", True, by="alice")
    store.update_declarations({"dark_mode": DECLARED["dark_mode"], "new_flag": FeatureFlag(default=True)})
    by_name = {f.name: f for f in await store.values()}
    assert by_name["beta"].source == "undeclared" and by_name["beta"].default is None
    assert by_name["new_flag"].enabled is True and by_name["new_flag"].source == "default"
    with pytest.raises(UnknownFlagError):
        await store.get("beta")
    store.update_declarations(DECLARED)
    assert await store.get("beta") is True  # declared again: the stored value is back


@pytest.mark.anyio
async def test_tools_list_and_set_flags(db: StateDB) -> None:
    backends = Backends()
    backends.add(await _store(db))
    ctx = context(backends, principal("carol", "write"))
    listed = await call(feature_flags, {}, ctx)
    assert not listed.is_error
    assert [f["name"] for f in listed.structured["flags"]] == ["beta", "dark_mode"]

    changed = await call(set_feature_flag, {"name": "beta", "enabled": True}, ctx)
    assert not changed.is_error
    assert changed.structured["enabled"] is True and changed.structured["updated_by"] == "carol"
    again = await call(set_feature_flag, {"name": "beta", "enabled": True}, ctx)
    assert again.structured["enabled"] is True  # idempotent


def test_tool_definitions_match_the_catalogue() -> None:
    registry = Registry()
    listing = registry.add(feature_flags)
    setter = registry.add(set_feature_flag)
    assert listing.spec.scope == "read" and listing.definition["annotations"]["readOnlyHint"] is True
    assert setter.spec.scope == "write"
    assert setter.definition["annotations"] == {"title": "Set a feature flag", "readOnlyHint": False,
                                                "destructiveHint": False, "idempotentHint": True,
                                                "openWorldHint": False}
    assert set(setter.input_schema["properties"]) == {"name", "enabled"}
    assert setter.output_schema is not None and listing.output_schema is not None


@pytest.mark.anyio
@pytest.mark.parametrize("arguments", [
    *({"name": bad, "enabled": True} for bad in HOSTILE_STRINGS),
    {"name": "beta", "enabled": "maybe"},
    {"name": "beta"},
    {"name": "beta", "enabled": True, "extra": 1},
    {"name": "Beta", "enabled": True},
])
async def test_set_feature_flag_rejects_hostile_arguments_cleanly(db: StateDB, arguments: dict[str, Any]) -> None:
    backends = Backends()
    store = await _store(db)
    backends.add(store)
    result = await call(set_feature_flag, arguments, context(backends, principal("carol", "write")))
    assert result.is_error
    assert len(text(result)) < 2000
    assert all(f.source == "default" for f in await store.values())


@pytest.mark.anyio
async def test_set_feature_flag_unknown_name_lists_known(db: StateDB) -> None:
    backends = Backends()
    backends.add(await _store(db))
    result = await call(set_feature_flag, {"name": "missing", "enabled": True}, context(backends))
    assert result.is_error and "beta, dark_mode" in text(result)
