"""The config capability's tools: server_config (redacted), cors_config, reload_config. The reload machinery
under them is `tests/test_config_reload.py`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_platform.capabilities.config import cors_config, reload_config, server_config
from mcp_platform.config_reload import ConfigManager
from mcp_platform.context import Backends
from mcp_platform.settings import Settings, load_settings
from mcp_platform.tool_registry import Registry
from tests.capabilities.support import call, context, principal, text
from tests.support import make_settings, state_url

SECRET_PW = "pw-in-url-9f8e"


def _write(path: Path, port: int, *, extra: str = "") -> None:
    path.write_text(
        f'name = "test-server"\n{extra}\n'
        f'[http]\nport = {port}\n\n'
        f'[database]\nurl = "postgresql+asyncpg://app:{SECRET_PW}@db/app"\n\n'
        f'[state]\nurl = "{state_url(path.parent)}"\n\n'
        f'[static]\nroot = "{path.parent}"\n'
    )


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "mcp-platform.toml"
    _write(path, 8001)
    return path


def _backends(settings: Settings) -> tuple[ConfigManager, Backends]:
    manager = ConfigManager(settings)
    backends = Backends()
    backends.add(manager)
    return manager, backends


@pytest.mark.anyio
async def test_server_config_tool_redacts_secrets(config_file: Path) -> None:
    _, backends = _backends(load_settings(config_file))
    result = await call(server_config, {}, context(backends))
    assert not result.is_error
    assert result.structured["config_file"] == str(config_file)
    assert result.structured["settings"]["database"]["url"] == "postgresql+asyncpg://app:***@db/app"
    assert SECRET_PW not in json.dumps(result.structured) and SECRET_PW not in text(result)


@pytest.mark.anyio
async def test_cors_config_tool(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, http={"cors": {"allow_origins": ["https://app.example"], "max_age": 60}})
    _, backends = _backends(settings)
    result = await call(cors_config, {}, context(backends))
    assert result.structured == {
        "allow_origins": ["https://app.example"], "allow_methods": ["GET", "POST", "DELETE"],
        "allow_headers": settings.http.cors.allow_headers, "allow_credentials": False, "max_age": 60,
    }


@pytest.mark.anyio
async def test_reload_config_tool(config_file: Path) -> None:
    manager, backends = _backends(load_settings(config_file))
    _write(config_file, 9006)
    ctx = context(backends, principal("root", "admin"))
    dry = await call(reload_config, {"dry_run": True}, ctx)
    assert dry.structured["applied"] is False and manager.current.http.port == 8001
    applied = await call(reload_config, {}, ctx)
    assert applied.structured["applied"] is True and applied.structured["diff"][0]["field"] == "http.port"
    assert manager.current.http.port == 9006


@pytest.mark.anyio
@pytest.mark.parametrize("arguments", [{"dry_run": "perhaps"}, {"dry_run": None}, {"dry_run": [True]},
                                       {"dry_run": "x" * 100_000}, {"unknown": 1}])
async def test_reload_config_rejects_hostile_arguments(config_file: Path, arguments: dict[str, object]) -> None:
    manager, backends = _backends(load_settings(config_file))
    before = manager.current
    result = await call(reload_config, arguments, context(backends, principal("root", "admin")))
    assert result.is_error and manager.current is before


@pytest.mark.anyio
@pytest.mark.parametrize("fn", [server_config, cors_config])
async def test_argumentless_tools_reject_arguments(tmp_path: Path, fn: Callable[..., Any]) -> None:
    _, backends = _backends(make_settings(tmp_path))
    result = await call(fn, {"surprise": "x" * 10_000}, context(backends))
    assert result.is_error and len(text(result)) < 1000


def test_tool_definitions_match_the_catalogue() -> None:
    registry = Registry()
    for fn in (server_config, cors_config):
        built = registry.add(fn)
        assert built.spec.scope == "read" and built.definition["annotations"]["readOnlyHint"] is True
        assert built.input_schema["properties"] == {}
    reload_tool = registry.add(reload_config)
    assert reload_tool.spec.scope == "admin"
    annotations = reload_tool.definition["annotations"]
    assert (annotations["readOnlyHint"], annotations["destructiveHint"], annotations["idempotentHint"]) == (
        False, False, True)
    assert reload_tool.input_schema["properties"]["dry_run"]["default"] is False


@pytest.mark.anyio
async def test_server_config_lists_the_verifiers_in_order_with_no_secret(tmp_path: Path) -> None:
    secret, header_secret = "an-hs256-secret-of-at-least-32-bytes!", "static-header-secret-42"
    settings = make_settings(tmp_path, token="mcpp_env-token-value-123", state={"redis_url": "redis://u:rpw1@r:6379/0"},
                             auth={"mode": ["bearer", "oauth", "redis", "forward"],
                                   "oauth": {"issuer": "https://idp.example.com/", "hs256_secret": secret,
                                             "resource": "https://mcp.example.com/mcp",
                                             "scopes": {"mcp:read": "read", "mcp:write": "write"}},
                                   "forward": {"url": "https://auth.example.com/verify?key=qs3",
                                               "headers": {"X-Api-Key": header_secret}}})
    _, backends = _backends(settings)
    result = await call(server_config, {}, context(backends))
    methods = result.structured["authentication"]
    assert [m["mode"] for m in methods] == ["bearer", "oauth", "redis", "forward"]
    assert methods[0]["details"]["env_token"] is True
    oauth = methods[1]["details"]
    assert oauth["metadata"] == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    assert oauth["scopes_supported"] == ["mcp:read", "mcp:write"] and oauth["keys"] == "hs256_secret"
    assert methods[2]["details"]["url"] == "redis://r:6379/0"
    assert methods[3]["details"]["url"] == "https://auth.example.com/verify"
    dumped = json.dumps(result.structured) + text(result)
    for leaked in (secret, header_secret, "rpw1", "qs3", "env-token-value"):
        assert leaked not in dumped


@pytest.mark.anyio
async def test_server_config_shows_no_verifier_when_auth_is_off(tmp_path: Path) -> None:
    _, backends = _backends(make_settings(tmp_path, auth={"mode": "none"}))
    assert (await call(server_config, {}, context(backends))).structured["authentication"] == []
