"""A stranger's first start: build the wheel, `pip install` it into a fresh virtual environment outside the
checkout, and in an empty folder run `mcp-platform serve` (only the built-in tools, a hint to run `init`, static
tools that say no root is configured), then `mcp-platform init` and `serve` again: over the wire the example tools,
`list_models` with its rows and the static tools all work.

pip needs its index (or its cache) for the dependencies: on a machine without either the test is skipped with the
reason; under `CI=true` it fails instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support import free_port, modern_headers, modern_request

pytestmark = pytest.mark.wire
REPO = Path(__file__).parents[2]
TOKEN = "stranger-test-token-with-all-scopes"


def _run(*command: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=_env(), check=False)


def _env() -> dict[str, str]:
    # Nothing of the checkout's environment: no MCP_PLATFORM_* settings, no virtualenv, no PYTHONPATH.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MCP_PLATFORM_") and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["MCP_PLATFORM_TOKEN"] = TOKEN
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `mcp-platform` script of a fresh venv with only the built wheel (and its dependencies) installed."""
    root = tmp_path_factory.mktemp("stranger")
    wheels = root / "wheels"
    built = _run(sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "-w", wheels, cwd=root)
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=root).check_returncode()
    wheel = next(wheels.glob("mcp_platform-*.whl"), None) if built.returncode == 0 else None
    install = _run(venv / "bin" / "python", "-m", "pip", "install", wheel, cwd=root) if wheel else built
    if install.returncode != 0:
        reason = f"could not build or pip install the wheel (no package index or cache?): {install.stderr[-800:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must be able to install the wheel: {reason}")
        pytest.skip(reason)
    return venv / "bin" / "mcp-platform"


class _Server:
    def __init__(self, script: Path, cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([str(script), "serve", "--port", str(self.port)], cwd=cwd, env=_env(),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> _Server:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.stop()
            try:
                if httpx2.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not start: {self.stop()}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        _, err = self.process.communicate(timeout=20)
        return err

    def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        response = httpx2.post(f"{self.url}/mcp", headers=modern_headers("tools/call", name, token=TOKEN),
                               json=modern_request("tools/call", {"name": name, "arguments": arguments}), timeout=30)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["result"]
        return result

    def tools(self) -> set[str]:
        response = httpx2.post(f"{self.url}/mcp", headers=modern_headers("tools/list", token=TOKEN),
                               json=modern_request("tools/list"), timeout=30)
        return {tool["name"] for tool in response.json()["result"]["tools"]}


def _text(result: dict[str, Any]) -> str:
    return str(result["content"][0]["text"])


def test_a_pip_user_gets_a_working_start_with_init(installed: Path, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with _Server(installed, folder) as bare:
        assert "site_status" not in bare.tools()
        static = bare.call("list_static_files", {})
        assert static["isError"] is True and "No static root is configured" in _text(static)
        assert "mcp-platform init" in _text(static)
        log = bare.stop()
    assert "mcp-platform init" in log, log  # the start says how to get the examples

    init = _run(installed, "init", cwd=folder)
    assert init.returncode == 0, init.stderr
    assert "wrote tools/shop.py" in init.stdout and "wrote mcp-platform.toml" in init.stdout, init.stdout
    with _Server(installed, folder) as server:
        assert {"site_status", "audit_assets", "top_customers", "cancel_order", "list_models"} <= server.tools()
        models = server.call("list_models", {})
        assert not models.get("isError"), _text(models)
        assert {"Customer", "Order", "Product"} <= {m["name"] for m in models["structuredContent"]["models"]}
        customers = server.call("query_records", {"model": "Customer", "limit": 3})
        assert not customers.get("isError") and len(customers["structuredContent"]["records"]) == 3, customers
        assert not server.call("site_status", {}).get("isError")
        listed = server.call("list_static_files", {})
        assert not listed.get("isError"), _text(listed)
        assert "index.html" in {entry["path"] for entry in listed["structuredContent"]["entries"]}
        page = server.call("read_static_file", {"path": "index.html"})
        assert not page.get("isError") and "<html" in _text(page).lower(), page
        audit = server.call("audit_assets", {"delay_ms": 0})
        assert audit["structuredContent"]["problems"] == [], audit
        log = server.stop()
    assert "mcp-platform init" not in log
    again = _run(installed, "init", cwd=folder)
    assert again.returncode == 1 and "not overwriting" in again.stderr
