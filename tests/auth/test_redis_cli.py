"""`mcp-platform token ... --store redis`, and the `auth.redis` settings, hostile values included."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import httpx2
import pytest

from mcp_platform.app import create_app
from mcp_platform.auth import hash_token
from mcp_platform.auth.redis_admin import parse_duration
from mcp_platform.cli import main
from mcp_platform.errors import ConfigError
from tests.auth.redis_support import RedisTokens, redis_tokens
from tests.support import (
    eventually,
    free_port,
    make_settings,
    mcp_client,
    modern_headers,
    modern_request,
    running_server,
)

pytestmark = pytest.mark.anyio


async def cli(*argv: str) -> int:
    """`mcp-platform ARGV` as a shell would run it (the command runs its own event loop, so in a thread)."""
    return await anyio.to_thread.run_sync(main, list(argv))


def use_redis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tokens: RedisTokens, url: str | None = None) -> None:
    """The CLI's settings, as an operator would give them: the environment, in a folder without a config file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MCP_PLATFORM_AUTH__REDIS__URL", url or tokens.url)
    monkeypatch.setenv("MCP_PLATFORM_AUTH__REDIS__KEY_PREFIX", tokens.prefix)


async def test_create_list_revoke_round_trip_against_a_running_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async with redis_tokens() as tokens:
        use_redis(monkeypatch, tmp_path, tokens)
        assert await cli("token", "create", "--store", "redis", "--name", "deploy", "--scopes", "read,write",
                     "--expires-in", "12h") == 0
        created = capsys.readouterr()
        token = created.out.strip()
        assert token.startswith("mcpp_") and "expires at" in created.err and "shown only this once" in created.err
        stored = json.loads(await tokens.client.get(tokens.key(token)) or b"")
        assert stored["name"] == "deploy" and stored["scopes"] == ["read", "write"]
        assert time.time() + 11.9 * 3600 < stored["expires_at"] <= time.time() + 12 * 3600
        assert 11.9 * 3600 < await tokens.client.ttl(tokens.key(token)) <= 12 * 3600  # Redis drops it then too
        assert await tokens.client.hget(tokens.prefix + "names", "deploy") == hash_token(token).encode()

        assert await cli("token", "create", "--store", "redis", "--name", "ci", "--scopes", "read") == 0
        capsys.readouterr()
        assert await cli("token", "list", "--store", "redis") == 0
        listing = capsys.readouterr().out
        lines = sorted(listing.splitlines())
        assert lines[0] == "ci\tread\tnever\tactive"
        assert lines[1].startswith("deploy\tread,write\t20") and lines[1].endswith("Z\tactive")
        assert token not in listing and hash_token(token) not in listing

        server_settings = tokens.settings(tmp_path / "server", redis={"cache_seconds": 0.2})
        with running_server(create_app(server_settings, capabilities=[])) as server:
            for era in ("legacy", "2026-07-28"):
                async with mcp_client(server + "/mcp", era, token=token) as client:
                    names = {tool.name for tool in (await client.list_tools()).tools}
                    assert "write_thing" in names and "admin_thing" not in names
            assert await cli("token", "revoke", "--store", "redis", "deploy") == 0
            assert "revoked" in capsys.readouterr().err
            async with httpx2.AsyncClient(timeout=10) as http:
                async def refused() -> bool:
                    response = await http.post(server + "/mcp", headers=modern_headers("tools/list", token=token),
                                               json=modern_request("tools/list"))
                    return response.status_code == 401

                await eventually(refused, timeout=10, interval=0.05, what="the revocation to reach the server")
        assert await tokens.client.exists(tokens.key(token)) == 0
        assert await tokens.client.hexists(tokens.prefix + "names", "deploy") is False
        assert await cli("token", "revoke", "--store", "redis", "deploy") == 1
        assert "no token named 'deploy'" in capsys.readouterr().err


async def test_a_name_is_taken_until_revoked_or_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    async with redis_tokens() as tokens:
        use_redis(monkeypatch, tmp_path, tokens)
        assert await cli("token", "create", "--store", "redis", "--name", "ci") == 0
        first = capsys.readouterr().out.strip()
        assert await cli("token", "create", "--store", "redis", "--name", "ci") == 2
        assert "already exists" in capsys.readouterr().err
        await tokens.client.delete(tokens.key(first))  # expired in Redis, or deleted by the platform's service
        assert await cli("token", "list", "--store", "redis") == 0
        assert capsys.readouterr().out == "ci\t-\tnever\tgone\n"
        assert await cli("token", "create", "--store", "redis", "--name", "ci") == 0
        second = capsys.readouterr().out.strip()
        assert second != first and await tokens.client.exists(tokens.key(second)) == 1
        await tokens.client.set(tokens.key(second), b"{broken")
        assert await cli("token", "list", "--store", "redis") == 0
        assert capsys.readouterr().out == "ci\t-\tnever\tmalformed\n"


async def test_the_state_store_stays_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    async with redis_tokens() as tokens:
        use_redis(monkeypatch, tmp_path, tokens)
        monkeypatch.setenv("MCP_PLATFORM_STATE__URL", f"sqlite+aiosqlite:///{tmp_path}/state.db")
        assert await cli("token", "create", "--name", "ci") == 0
        capsys.readouterr()
        assert [key async for key in tokens.client.scan_iter(match=tokens.prefix + "*")] == []
        assert await cli("token", "create", "--name", "ci2", "--expires-in", "1h") == 2
        assert "--expires-in needs --store redis" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--name", "bad name"], "token name"),
    (["--name", "x" * 65], "token name"),
    (["--name", "ci", "--scopes", ""], "at least one scope"),
    (["--name", "ci", "--scopes", "read,root"], "unknown scope"),
    (["--name", "ci", "--expires-in", "soon"], "--expires-in takes"),
    (["--name", "ci", "--expires-in", "0"], "--expires-in takes"),
    (["--name", "ci", "--expires-in=-5m"], "--expires-in takes"),
    (["--name", "ci", "--expires-in", "99999999999d"], "--expires-in takes"),
    (["--name", "ci", "--expires-in", "3651d"], "--expires-in takes"),
])
async def test_create_refuses_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    async with redis_tokens() as tokens:
        use_redis(monkeypatch, tmp_path, tokens)
        assert await cli("token", "create", "--store", "redis", *argv) == 2
        assert message in capsys.readouterr().err
        assert [key async for key in tokens.client.scan_iter(match=tokens.prefix + "*")] == []


def test_durations() -> None:
    assert [parse_duration(text) for text in ("90", "90s", "15m", "12h", "30d", " 1d ")] == [
        90, 90, 900, 43200, 2592000, 86400]
    for bad in ("", "1w", "1.5h", "h", "1 h", "１２h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


async def test_redis_down_is_an_error_naming_redis_and_never_its_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async with redis_tokens() as tokens:
        use_redis(monkeypatch, tmp_path, tokens, url=f"redis://:hunter2-password@127.0.0.1:{free_port()}/0")
        for argv in (["create", "--name", "ci"], ["list"], ["revoke", "ci"]):
            assert await cli("token", *argv, "--store", "redis") == 1
            err = capsys.readouterr().err
            assert "Redis token store" in err and "connection failed" in err and "hunter2" not in err


def test_redis_store_without_a_url_says_which_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["token", "list", "--store", "redis"]) == 2
    assert "auth.redis.url (or state.redis_url)" in capsys.readouterr().err


@pytest.mark.parametrize(("field", "value"), [
    ("url", "http://127.0.0.1:6379"), ("url", "redis://"), ("url", "redis://host with space/0"), ("url", ""),
    ("key_prefix", ""), ("key_prefix", "has space:"), ("key_prefix", "x" * 201), ("key_prefix", "tab\t"),
    ("key_prefix", "ünïcode:"), ("key_prefix", 5),
    ("cache_size", 0), ("cache_size", -1), ("cache_size", 10**12), ("cache_size", "many"),
    ("cache_seconds", -1), ("cache_seconds", 3601), ("cache_seconds", "nan"),
    ("timeout_seconds", 0), ("timeout_seconds", 61), ("timeout_seconds", "inf"),
    ("unknown_field", 1),
])
def test_hostile_redis_settings_are_refused_naming_the_field(tmp_path: Path, field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"auth\.redis\.{field}") as refused:
        make_settings(tmp_path, auth={"mode": ["redis"], "redis": {field: value}})
    assert "hunter2" not in str(refused.value)


def test_a_bad_url_is_refused_without_repeating_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"auth\.redis\.url") as refused:
        make_settings(tmp_path, auth={"redis": {"url": "http://:hunter2@127.0.0.1:6379"}})
    assert "hunter2" not in str(refused.value)
