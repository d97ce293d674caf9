"""Tool discovery: broken modules are named precisely, and the rest still serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_platform.app import create_app
from mcp_platform.discovery import discover
from tests.support import asgi_client, make_settings

BROKEN = Path(__file__).parent / "fixtures" / "broken_tools"


def test_broken_modules_are_recorded_and_the_rest_load() -> None:
    found = discover([BROKEN])
    assert [spec.name for spec in found.tools] == ["still_here"]
    failures = {Path(path).name: reason for path, reason in found.failures.items()}
    assert failures["broken.py"].startswith("ModuleNotFoundError (line 1)")
    assert failures["bad_syntax.py"].startswith("SyntaxError (line 1)")


def test_missing_folder_is_a_failure_only_when_asked_for(tmp_path: Path) -> None:
    assert discover([tmp_path / "nope"]).failures == {}
    assert discover([tmp_path / "nope"], required=[tmp_path / "nope"]).failures == {
        str(tmp_path / "nope"): "tool folder does not exist"}


@pytest.mark.anyio
async def test_readyz_names_broken_tool_modules(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, tools={"dirs": [BROKEN]}), capabilities=[])
    async with asgi_client(app) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["tools"] == 1
        assert sorted(Path(p).name for p in body["tool_module_failures"]) == ["bad_syntax.py", "broken.py"]
        assert (await client.get("/healthz")).json() == {"status": "ok"}
