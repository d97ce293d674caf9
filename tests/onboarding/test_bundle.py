"""`mcp-platform bundle`: an MCP Bundle for Claude Desktop that the official `mcpb` CLI validates and unpacks, and
that, started the way its manifest says on a Python without this project installed, serves the chosen project
folder to the official stdio client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from mcp_platform.cli import main
from mcp_platform.onboarding.bundle import bundle_manifest, dependency_closure
from tests.onboarding.npm_clients import REPO, client_env, require_tool, run_client


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    output = tmp_path_factory.mktemp("bundle") / "dist" / "mcp-platform.mcpb"
    assert main(["bundle", "--output", str(output)]) == 0
    yield output


def _manifest(bundle: Path) -> dict[str, Any]:
    with zipfile.ZipFile(bundle) as archive:
        manifest: dict[str, Any] = json.loads(archive.read("manifest.json"))
    return manifest


def test_the_bundle_holds_a_python_manifest_0_3_and_everything_it_imports(bundle: Path) -> None:
    manifest = _manifest(bundle)
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert (manifest["manifest_version"], manifest["name"], manifest["version"]) == ("0.3", "mcp-platform", version)
    server = manifest["server"]
    assert (server["type"], server["entry_point"]) == ("python", "server/main.py")
    assert server["mcp_config"]["args"] == ["${__dirname}/server/main.py", "--directory",
                                            "${user_config.project_directory}"]
    assert manifest["user_config"]["project_directory"]["type"] == "directory"
    assert manifest["user_config"]["project_directory"]["required"] is True
    major, minor = sys.version_info[:2]
    assert manifest["compatibility"] == {"platforms": [sys.platform],
                                         "runtimes": {"python": f">={major}.{minor} <{major}.{minor + 1}"}}
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
    assert {"manifest.json", "server/main.py", "server/lib/mcp_platform/cli.py",
            "server/lib/mcp_platform/py.typed", "server/lib/tomlkit/__init__.py", "server/lib/mcp/__init__.py",
            "server/lib/pydantic_core/__init__.py"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pth")) or "direct_url" in n]
    assert str(REPO) not in json.dumps(manifest)  # nothing of the machine that built it


def test_the_closure_is_the_runtime_dependencies_not_the_dev_tools() -> None:
    names = {dist.metadata["Name"].lower().replace("_", "-") for dist in dependency_closure()}
    assert {"mcp-platform", "mcp", "starlette", "pydantic-core", "sqlalchemy", "tomlkit", "uvloop"} <= names
    assert not names & {"pytest", "ruff", "mypy", "coverage"}


def test_windows_bundles_start_python_not_python3() -> None:
    manifest = bundle_manifest(version="1.0.0", description="d", author="a", platform="win32", python=(3, 12))
    assert manifest["server"]["mcp_config"]["command"] == "python"
    assert manifest["compatibility"] == {"platforms": ["win32"], "runtimes": {"python": ">=3.12 <3.13"}}


def test_bundle_refuses_a_directory_as_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bundle", "--output", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def installed(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle unpacked by `mcpb unpack`, the library code Claude Desktop installs bundles with."""
    mcpb = require_tool("mcpb")
    folder = tmp_path_factory.mktemp("installed")
    done = run_client(mcpb, ["unpack", str(bundle), str(folder / "bundle")], cwd=folder,
                      env=client_env(folder / "home"))
    assert done.returncode == 0, done
    return folder / "bundle"


def test_mcpb_validates_the_manifest_and_reads_the_bundle(bundle: Path, installed: Path, tmp_path: Path) -> None:
    mcpb = require_tool("mcpb")
    env = client_env(tmp_path / "home")
    validated = run_client(mcpb, ["validate", str(installed / "manifest.json")], cwd=installed, env=env)
    assert validated.returncode == 0 and "Manifest schema validation passes" in validated.stdout, validated
    info = run_client(mcpb, ["info", str(bundle)], cwd=tmp_path, env=env)
    assert info.returncode == 0 and "mcp-platform.mcpb" in info.stdout, info


def _desktop_launch(manifest: dict[str, Any], installed: Path, project: Path, bin_dir: Path) -> StdioServerParameters:
    """The process Claude Desktop starts: mcp_config with its variables substituted, found on a minimal PATH."""
    values = {"${__dirname}": str(installed), "${user_config.project_directory}": str(project)}

    def substitute(text: str) -> str:
        for name, value in values.items():
            text = text.replace(name, value)
        return text

    config = manifest["server"]["mcp_config"]
    command = shutil.which(config["command"], path=str(bin_dir))
    assert command is not None
    env = {key: substitute(value) for key, value in config.get("env", {}).items()}
    return StdioServerParameters(command=command, args=[substitute(a) for a in config["args"]], cwd="/",
                                 env={**env, "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
                                      "HOME": str(project.parent / "home"), "PYTHONNOUSERSITE": "1"})


@pytest.mark.anyio
async def test_the_installed_bundle_serves_the_chosen_folder_to_the_stdio_client(bundle: Path, installed: Path,
                                                                                 tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tools").mkdir(parents=True)
    shutil.copy(REPO / "tools" / "status.py", project / "tools" / "status.py")
    # A Python without this project or its dependencies, as on a desktop: the interpreter this venv was made from.
    base = Path(sys._base_executable).resolve()  # type: ignore[attr-defined]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(base)
    bare = subprocess.run([str(base), "-c", "import mcp_platform"], env={"PYTHONNOUSERSITE": "1"},
                          capture_output=True, check=False)
    assert bare.returncode != 0, "the base interpreter must not have the project installed for this test"

    server = _desktop_launch(_manifest(bundle), installed, project, bin_dir)
    async with Client(server, mode="legacy") as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        status = await client.call_tool("site_status", {})
    assert {"site_status", "server_config", "query_records"} <= tools  # the folder's tools/ and the built-ins
    assert status.is_error is False
    assert (project / ".mcp-platform").is_dir()  # state in the chosen folder
