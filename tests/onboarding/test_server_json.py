"""server.json, the MCP Registry entry: valid against the registry's published schema 2025-12-11, in step with
pyproject.toml, and its package arguments start a server the official stdio client lists tools from.

The schema is vendored in tests/fixtures/mcp_registry/server.schema.2025-12-11.json: the file the registry embeds
to validate submissions (github.com/modelcontextprotocol/registry, internal/validators/schemas/2025-12-11.json),
whose `$id` is the published https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from mcp import Client, StdioServerParameters

REPO = Path(__file__).parents[2]
SCHEMA_FILE = REPO / "tests" / "fixtures" / "mcp_registry" / "server.schema.2025-12-11.json"
SCHEMA_SHA256 = "d4c163f299ece68b7432f4e44c4108f2fdb663d99dc088c8344142e5b0a4b520"


def _server_json() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((REPO / "server.json").read_text())
    return document


def _validator() -> Draft7Validator:
    return Draft7Validator(json.loads(SCHEMA_FILE.read_text()), format_checker=Draft7Validator.FORMAT_CHECKER)


def test_server_json_is_valid_against_the_published_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256  # the vendored copy, unedited
    assert schema["$id"] == _server_json()["$schema"]
    Draft7Validator.check_schema(schema)
    assert [error.message for error in _validator().iter_errors(_server_json())] == []


@pytest.mark.parametrize(("path", "value"), [
    (["description"], "x" * 101), (["name"], "mcp-platform"), (["packages", 0, "version"], "latest"),
    (["remotes", 0, "url"], "ftp://{host}/mcp"), (["remotes", 0, "type"], "websocket"),
    (["packages", 0, "packageArguments", 0, "type"], "flag")])
def test_the_schema_refuses_what_the_registry_refuses(path: list[str | int], value: str) -> None:
    document = copy.deepcopy(_server_json())
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert list(_validator().iter_errors(document))


def test_server_json_is_in_step_with_the_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    document = _server_json()
    assert document["version"] == project["version"]
    package = document["packages"][0]
    assert (package["registryType"], package["identifier"], package["version"]) == (
        "pypi", project["name"], project["version"])
    # The registry proves PyPI ownership by finding `mcp-name: NAME` in the package's README.
    assert f"mcp-name: {document['name']}" in (REPO / project["readme"]).read_text()


def test_the_remote_takes_its_token_as_a_secret_variable_of_the_authorization_header() -> None:
    (remote,) = _server_json()["remotes"]
    assert remote["type"] == "streamable-http" and remote["url"] == "https://{host}/mcp"
    assert remote["variables"]["host"]["isRequired"] is True
    (header,) = remote["headers"]
    assert (header["name"], header["value"], header["isSecret"]) == ("Authorization", "Bearer {token}", True)
    assert header["variables"]["token"]["isSecret"] is True
    assert set(re.findall(r"{(\w+)}", header["value"])) == set(header["variables"])


def _argv(arguments: list[dict[str, Any]], values: dict[str, str]) -> list[str]:
    """The command line a registry client builds from `packageArguments`: positional values, `--flag value`."""
    argv: list[str] = []
    for argument in arguments:
        if argument["type"] == "positional":
            argv.append(argument["value"])
        elif argument["name"] in values:
            argv += [argument["name"], values[argument["name"]]]
    return argv


@pytest.mark.anyio
async def test_the_package_arguments_start_a_server_that_lists_its_tools(tmp_path: Path) -> None:
    package = _server_json()["packages"][0]
    project = tmp_path / "project"
    project.mkdir()
    argv = _argv(package["packageArguments"], {"--directory": str(project)})
    assert argv == ["stdio", "--directory", str(project)]
    # `uvx mcp-platform ARGS` runs the package's console script; this interpreter has the package installed.
    server = StdioServerParameters(command=sys.executable, args=["-m", "mcp_platform", *argv], cwd=tmp_path,
                                   env={"PYTHONUNBUFFERED": "1"})
    async with Client(server, mode="legacy") as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
    assert {"server_config", "query_records", "feature_flags"} <= tools
    assert (project / ".mcp-platform").is_dir()  # state went to the project folder, as --directory says
