"""`mcp-platform init` gives a pip user the example project: the packaged copies are the repository's, init writes
them and never overwrites, and without a static root the static tools say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_platform.app import create_app
from mcp_platform.cli import main
from mcp_platform.onboarding.init import example_files
from tests.support import asgi_client, make_settings, modern_headers, modern_request

REPO = Path(__file__).parents[2]
_SKIP = {"__pycache__"}


def _tree(root: Path, *parts: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for part in parts:
        base = root / part
        paths = [base] if base.is_file() else sorted(base.rglob("*"))
        for path in paths:
            if path.is_file() and not _SKIP & set(path.relative_to(root).parts) and path.suffix != ".pyc":
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def test_the_packaged_examples_are_the_repositorys_own() -> None:
    """`make run` serves the top-level copies, a wheel ships `mcp_platform/examples/`: they must not drift."""
    repo = _tree(REPO, "mcp-platform.toml", "tools", "static")
    packaged = {rel: source.read_bytes() for rel, source in example_files().items()}
    assert sorted(packaged) == sorted(repo)
    changed = [rel for rel in repo if repo[rel] != packaged[rel]]
    assert not changed, f"copy these to mcp_platform/examples/: {changed}"
    assert {"mcp-platform.toml", "tools/status.py", "tools/shop.py", "static/index.html"} <= set(packaged)


def test_init_writes_the_examples_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "project"
    assert main(["init", str(target)]) == 0
    out = capsys.readouterr().out
    assert _tree(target, "mcp-platform.toml", "tools", "static") == _tree(REPO, "mcp-platform.toml", "tools",
                                                                          "static")
    for rel in ("mcp-platform.toml", "tools/shop.py", "static/css/site.css"):
        assert f"wrote {target / rel}" in out
    assert "mcp-platform serve" in out

    (target / "tools" / "shop.py").write_text("# mine\n")
    (target / "static" / "index.html").unlink()
    assert main(["init", str(target)]) == 1
    err = capsys.readouterr().err
    assert "not overwriting" in err and str(target / "tools" / "shop.py") in err
    assert (target / "tools" / "shop.py").read_text() == "# mine\n"  # untouched
    assert not (target / "static" / "index.html").exists()  # nothing written at all


@pytest.mark.anyio
async def test_static_tools_without_a_root_say_none_is_configured(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default root, ./static, does not exist here
    settings = make_settings(tmp_path, static={})
    async with asgi_client(create_app(settings)) as client:
        for name, arguments in [("list_static_files", {}), ("read_static_file", {"path": "index.html"}),
                                ("search_static_files", {"query": "x"})]:
            response = await client.post("/mcp", headers=modern_headers("tools/call", name),
                                         json=modern_request("tools/call", {"name": name, "arguments": arguments}))
            result = response.json()["result"]
            assert result["isError"] is True, (name, result)
            text = result["content"][0]["text"]
            assert "No static root is configured" in text and "static.root" in text, text
            assert "mcp-platform init" in text, text
