"""A default start imports only what the shipped configuration uses: no Redis or PostgreSQL client without a
Redis or PostgreSQL URL, and not the MCP SDK's client and server (only `mcp_types` and the SDK's inbound-request
rules). Each import costs start-up time and resident memory in every server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[1]

# Builds the app as `mcp-platform serve` does (settings from the folder, logging, create_app with gc frozen), runs
# its lifespan (state database, every built-in capability, the example tools), then lists what was imported.
_PROBE = """
import asyncio, json, sys
from mcp_platform.cli import configure_logging
from mcp_platform.app import create_app
from mcp_platform.settings import load_settings

settings = load_settings(None, tools={"dirs": [sys.argv[1]]})
configure_logging("warning")
app = create_app(settings, freeze_gc=True)

async def main():
    async with app.router.lifespan_context(app):
        assert app.state.mcp is not None

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after_default_start(tmp_path: Path, env_extra: dict[str, str] | None = None) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_PLATFORM_")}
    env |= {"MCP_PLATFORM_TOKEN": "startup-imports-token-0123456789"} | (env_extra or {})
    done = subprocess.run([sys.executable, "-c", _PROBE, str(REPO / "tools")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def _top_level(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


def test_a_default_start_imports_no_redis_postgres_or_sdk_server_client(tmp_path: Path) -> None:
    imported = _top_level(_modules_after_default_start(tmp_path))
    assert "mcp_platform" in imported and "sqlalchemy" in imported  # the probe really started the server
    assert not {"redis", "asyncpg"} & imported
    assert "mcp" not in imported  # the SDK package (client, server, auth, OpenTelemetry): only mcp_types is used
    assert not {"httpx", "httpx2", "opentelemetry", "cryptography", "jwt"} & imported


def test_only_oauth_mode_imports_pyjwt(tmp_path: Path) -> None:
    imported = _modules_after_default_start(tmp_path, {
        "MCP_PLATFORM_AUTH__MODE": "bearer,oauth", "MCP_PLATFORM_AUTH__OAUTH__ISSUER": "https://idp.example/",
        "MCP_PLATFORM_AUTH__OAUTH__HS256_SECRET": "startup-imports-hs256-secret-0123456789"})
    assert {"jwt", "cryptography"} <= _top_level(imported)
    assert "mcp_platform.auth.oauth" in imported
