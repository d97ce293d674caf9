"""llms.txt and llms-full.txt: committed files match the generator, the format is llmstxt.org's, every tool,
argument and setting is documented, and a running server serves both without a token."""

from __future__ import annotations

import re
import shutil
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from mcp_platform.app import create_app, default_capabilities
from mcp_platform.cli import main
from mcp_platform.discovery import discover
from mcp_platform.onboarding.llms import build_registry
from mcp_platform.reference.llms import render
from mcp_platform.settings import Settings
from mcp_platform.tool_registry import Registry
from tests.support import FIXTURE_TOOLS, asgi_client, make_settings

REPO = Path(__file__).parents[2]
LINK = re.compile(r"^- \[(?P<name>[^\]]+)\]\((?P<url>[^)\s]+)\)(?:: (?P<note>.+))?$")


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    registry, failures = build_registry(REPO)
    assert failures == {}
    return render(registry, REPO)


def _setting_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every setting as a dotted path, walked here independently of the generator."""
    paths = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += _setting_paths(annotation, f"{prefix}{name}.")
            continue
        paths.append(f"{prefix}{name}")
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is dict and isinstance(args[1], type) and issubclass(args[1], BaseModel):
            paths += _setting_paths(args[1], f"{prefix}{name}.<name>.")
    return paths


def test_committed_llms_files_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["llms", "--check", "--root", str(REPO)])
    assert code == 0, capsys.readouterr().err + "\nrun `mcp-platform llms` and commit llms.txt and llms-full.txt"


def test_llms_full_names_every_tool_argument_and_setting(generated: dict[str, str]) -> None:
    full = generated["llms-full.txt"]
    registry = Registry()
    for capability in default_capabilities():
        for fn in capability.tools:
            registry.add(fn)
    for spec in discover([REPO / "tools"]).tools:
        registry.add(spec)
    sections = {chunk.split("\n", 1)[0]: chunk for chunk in full.split("\n### ")[1:]}
    assert len(registry) > 20
    for tool in registry.all():
        section = sections[tool.name]
        assert f'"method": "tools/call", "params": {{"name": "{tool.name}"' in section
        assert f"- scope: `{tool.spec.scope}`" in section
        for argument in tool.input_schema.get("properties", {}):
            assert f"- `{argument}` (" in section, f"{tool.name}.{argument}"
    for decorator in ("@tool", "@resource", "@prompt", "ToolContext", "ToolError"):
        assert f"### `{decorator}`" in full
    assert "read_only: bool" in full and "await ctx.report_progress(" in full
    assert '"op": value' in full and "not_in" in full  # the where language
    paths = _setting_paths(Settings)
    assert {"http.port", "http.cors.allow_origins", "flags.<name>.default", "tools.dirs"} <= set(paths)
    for path in paths:
        assert f"- `{path}` (" in full, path


def test_llms_txt_follows_the_llmstxt_format(generated: dict[str, str]) -> None:
    lines = generated["llms.txt"].splitlines()
    assert lines[0] == "# mcp-platform" and lines[1] == ""
    assert lines[2].startswith("> ") and len(lines[2]) > 80
    sections = [line[3:] for line in lines if line.startswith("## ")]
    assert sections[0] == "Docs" and sections[-1] == "Optional" and "Tools" in sections
    assert sum(line.startswith("# ") for line in lines) == 1  # one H1, no deeper headings than H2
    assert not any(line.startswith("###") for line in lines)
    first_section = lines.index("## Docs")
    for line in lines[first_section:]:
        assert line == "" or line.startswith("## ") or LINK.match(line), line


def test_llms_txt_links_are_repository_files_or_the_served_reference(generated: dict[str, str]) -> None:
    urls = [m["url"] for line in generated["llms.txt"].splitlines() if (m := LINK.match(line))]
    assert "/llms-full.txt" in urls and "llms-full.txt" in urls and "CLAUDE.md" in urls and "README.md" in urls
    for url in urls:
        if url.startswith("/"):
            assert url in ("/llms.txt", "/llms-full.txt")
        else:
            assert (REPO / url).is_file(), url


def test_generation_is_deterministic(generated: dict[str, str]) -> None:
    registry, _ = build_registry(REPO)
    assert render(registry, REPO) == generated


def test_check_reports_stale_files_and_generation_fixes_them(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(FIXTURE_TOOLS, tmp_path / "tools")
    assert main(["llms", "--check", "--root", str(tmp_path)]) == 1  # never generated
    assert not (tmp_path / "llms.txt").exists()  # --check writes nothing
    assert main(["llms", "--root", str(tmp_path)]) == 0
    assert main(["llms", "--check", "--root", str(tmp_path)]) == 0
    index = tmp_path / "llms.txt"
    index.write_text(index.read_text().replace("[add]", "[add_renamed]"))
    capsys.readouterr()
    assert main(["llms", "--check", "--root", str(tmp_path)]) == 1
    assert "llms.txt out of date" in capsys.readouterr().err
    assert "[add_renamed]" in index.read_text()
    full = (tmp_path / "llms-full.txt").read_text()
    assert "### greet_asked" in full and "- `a` (integer, required): The first addend." in full


def test_a_tool_module_that_fails_to_load_stops_generation(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "broken.py").write_text("def oops(:\n")
    assert main(["llms", "--root", str(tmp_path)]) == 1
    assert "broken.py failed to load: SyntaxError" in capsys.readouterr().err
    assert not (tmp_path / "llms.txt").exists()


@pytest.mark.anyio
async def test_the_server_serves_both_files_without_a_token(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), capabilities=[])
    async with asgi_client(app, token=None) as client:
        index = await client.get("/llms.txt")
        full = await client.get("/llms-full.txt")
        mcp = await client.post("/mcp", json={})
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/plain")
    assert index.text.startswith("# mcp-platform\n") and "- [add](" in index.text
    assert full.status_code == 200 and "### greet_asked" in full.text
    assert "### server_config" not in full.text  # it documents the tools this server serves
    assert mcp.status_code == 401  # the MCP endpoint itself still needs a token
