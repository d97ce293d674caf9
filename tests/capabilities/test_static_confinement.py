"""Static files: no path, URI or symlink leads outside the root or into a hidden entry, and no message leaks one."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from mcp_platform.capabilities.static import (
    CAPABILITY,
    StaticResourceProvider,
    list_static_files,
    read_static_file,
    search_static_files,
)
from mcp_platform.context import Backends
from mcp_platform.errors import ResourceNotFound
from tests.capabilities.support import call, context, make_settings, start_capability, text

SECRET = "TOP-SECRET-OUTSIDE"
HIDDEN = "HIDDEN-INSIDE"


def build_tree(tmp_path: Path) -> Path:
    """A root with ordinary files, hidden files and hostile symlinks, next to a folder that must stay unreachable."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(f"{SECRET}\n")
    root = tmp_path / "root"
    (root / "css").mkdir(parents=True)
    (root / "sub" / "deep").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "index.html").write_text("<h1>hello</h1>\n")
    (root / "css" / "site.css").write_text("body { color: red; }\n")
    (root / "sub" / "deep" / "file.txt").write_text("deep\n")
    (root / ".hidden.txt").write_text(f"{HIDDEN}\n")
    (root / ".git" / "config").write_text(f"{HIDDEN}\n")
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "escdir").symlink_to(outside, target_is_directory=True)
    (root / "css" / "up").symlink_to("../..", target_is_directory=True)
    (root / "alias.txt").symlink_to(root / ".hidden.txt")
    (root / "relative-escape.txt").symlink_to("../outside/secret.txt")
    (root / "loop").symlink_to(root, target_is_directory=True)
    return root


async def start(root: Path, **static: Any) -> Backends:
    async with AsyncExitStack() as stack:
        core = await start_capability(CAPABILITY, stack, make_settings(root, static={"root": root, **static}))
    return core.backends


HOSTILE_PATHS: list[str] = [
    "../outside/secret.txt",
    "..",
    "../",
    "./../outside/secret.txt",
    "css/../../outside/secret.txt",
    "css/./../../outside/secret.txt",
    "sub/deep/../../../outside/secret.txt",
    "/etc/passwd",
    "//etc/passwd",
    "C:\\Windows\\win.ini",
    "C:/Windows/win.ini",
    "c:secret.txt",
    "\\\\server\\share\\secret.txt",
    "//server/share/secret.txt",
    "..\\outside\\secret.txt",
    "css\\..\\..\\outside\\secret.txt",
    "%2e%2e%2foutside%2fsecret.txt",
    "%2E%2E/outside/secret.txt",
    "css%2f..%2f..%2foutside%2fsecret.txt",
    "..%2foutside%2fsecret.txt",
    "%252e%252e%252foutside%252fsecret.txt",
    "%25252e%25252e/outside",
    "index.html\x00.png",
    "\x00",
    "~",
    "~/secret.txt",
    "~root/.bashrc",
    "css/\nsite.css",
    "css/site.css\r",
    "\x1b[31mindex.html",
    "\u202egnp.lmth",
    "escape.txt",
    "relative-escape.txt",
    "escdir/secret.txt",
    "escdir",
    "css/up/outside/secret.txt",
    "css/up/outside",
    "loop/../outside/secret.txt",
    "alias.txt",
    ".hidden.txt",
    ".git/config",
    ".git",
    "css/.hidden",
    "...",
    "a" * 5000,
    "a" * 300 + "/index.html",
    "   ",
    " index.html",
    "index.html ",
    "\t",
]


def assert_refused(result_text: str, given: str, tmp_path: Path) -> None:
    assert SECRET not in result_text
    assert HIDDEN not in result_text
    outside = str(tmp_path / "outside")
    if outside not in given:
        assert outside not in result_text


@pytest.mark.anyio
@pytest.mark.parametrize("path", HOSTILE_PATHS)
async def test_read_refuses_hostile_path(tmp_path: Path, path: str) -> None:
    backends = await start(build_tree(tmp_path))
    result = await call(read_static_file, {"path": path}, context(backends))
    assert result.is_error, text(result)
    assert_refused(text(result), path, tmp_path)


@pytest.mark.anyio
@pytest.mark.parametrize("path", HOSTILE_PATHS)
async def test_list_refuses_hostile_path(tmp_path: Path, path: str) -> None:
    backends = await start(build_tree(tmp_path))
    result = await call(list_static_files, {"path": path, "recursive": True}, context(backends))
    assert result.is_error, text(result)
    assert_refused(text(result), path, tmp_path)


@pytest.mark.anyio
@pytest.mark.parametrize("path", HOSTILE_PATHS)
async def test_search_refuses_hostile_path(tmp_path: Path, path: str) -> None:
    backends = await start(build_tree(tmp_path))
    result = await call(search_static_files, {"query": "SECRET", "path": path}, context(backends))
    assert result.is_error, text(result)
    assert_refused(text(result), path, tmp_path)


@pytest.mark.anyio
async def test_absolute_path_of_outside_file_is_refused(tmp_path: Path) -> None:
    backends = await start(build_tree(tmp_path))
    target = str(tmp_path / "outside" / "secret.txt")
    result = await call(read_static_file, {"path": target}, context(backends))
    assert result.is_error
    assert SECRET not in text(result)


@pytest.mark.anyio
async def test_symlink_escape_message_does_not_name_the_target(tmp_path: Path) -> None:
    backends = await start(build_tree(tmp_path))
    result = await call(read_static_file, {"path": "escdir/secret.txt"}, context(backends))
    assert result.is_error
    assert "outside" not in text(result).replace("leads outside", "")
    assert "escdir/secret.txt" in text(result)


@pytest.mark.anyio
async def test_recursive_listing_leaves_out_hidden_and_escaping_entries(tmp_path: Path) -> None:
    backends = await start(build_tree(tmp_path))
    result = await call(list_static_files, {"recursive": True, "limit": 1000}, context(backends))
    paths = {entry["path"] for entry in result.structured["entries"]}
    assert paths == {"css", "css/site.css", "index.html", "sub", "sub/deep", "sub/deep/file.txt", "loop"}


@pytest.mark.anyio
async def test_search_never_reads_outside_or_hidden_files(tmp_path: Path) -> None:
    backends = await start(build_tree(tmp_path))
    for query in (SECRET, HIDDEN):
        result = await call(search_static_files, {"query": query}, context(backends))
        assert not result.is_error
        assert result.structured["matches"] == []


@pytest.mark.anyio
async def test_allow_hidden_serves_dot_files_but_still_not_escapes(tmp_path: Path) -> None:
    backends = await start(build_tree(tmp_path), allow_hidden=True)
    hidden = await call(read_static_file, {"path": ".hidden.txt"}, context(backends))
    assert hidden.structured["content"] == f"{HIDDEN}\n"
    escaped = await call(read_static_file, {"path": "escape.txt"}, context(backends))
    assert escaped.is_error
    assert SECRET not in text(escaped)


@pytest.mark.anyio
async def test_root_reached_through_a_symlink_is_served(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    (tmp_path / "link-to-root").symlink_to(root, target_is_directory=True)
    backends = await start(tmp_path / "link-to-root")
    result = await call(read_static_file, {"path": "css/site.css"}, context(backends))
    assert result.structured["content"] == "body { color: red; }\n"


@pytest.mark.anyio
async def test_missing_root_is_named_in_the_error(tmp_path: Path) -> None:
    backends = await start(tmp_path / "nowhere")
    result = await call(list_static_files, {}, context(backends))
    assert result.is_error
    assert "nowhere" in text(result) and "does not exist" in text(result)
    provider = backends.get(StaticResourceProvider)
    assert await provider.list_page(None, 10) == ([], None)


HOSTILE_URIS: list[str] = [
    "static:///../outside/secret.txt",
    "static:///..%2Foutside%2Fsecret.txt",
    "static:///%2e%2e/outside/secret.txt",
    "static:///%2e%2e%2foutside%2fsecret.txt",
    "static:///%252e%252e%252foutside%252fsecret.txt",
    "static:///css/%2e%2e/%2e%2e/outside/secret.txt",
    "static:///escape.txt",
    "static:///escdir/secret.txt",
    "static:///css/up/outside/secret.txt",
    "static:///.hidden.txt",
    "static:///%2Ehidden.txt",
    "static:///alias.txt",
    "static:///.git/config",
    "static:///index.html%00.png",
    "static:///%00",
    "static:///%ff%fe",
    "static:////etc/passwd",
    "static:///%2Fetc%2Fpasswd",
    "static:///C:%5CWindows%5Cwin.ini",
    "static:///%5C%5Cserver%5Cshare",
    "static:///~/secret.txt",
    "static:///css",
    "static:///",
    "static:///missing.txt",
    "static://host/index.html",
    "static:/index.html",
    "static:///index.html?x=1",
    "static:///index.html#top",
    "static:///" + "a" * 5000,
]


@pytest.mark.anyio
@pytest.mark.parametrize("uri", HOSTILE_URIS)
async def test_resource_read_refuses_hostile_uri(tmp_path: Path, uri: str) -> None:
    backends = await start(build_tree(tmp_path))
    provider = backends.get(StaticResourceProvider)
    assert provider.handles(uri)
    with pytest.raises(ResourceNotFound) as caught:
        await provider.read(uri)
    assert caught.value.data == {"uri": uri}
    assert caught.value.message == "Resource not found"


@pytest.mark.anyio
async def test_resource_list_leaves_out_hidden_and_escaping_files(tmp_path: Path) -> None:
    backends = await start(build_tree(tmp_path))
    entries, cursor = await backends.get(StaticResourceProvider).list_page(None, 1000)
    assert cursor is None
    assert [entry["uri"] for entry in entries] == [
        "static:///css/site.css", "static:///index.html", "static:///sub/deep/file.txt"]


@pytest.mark.anyio
async def test_special_files_are_neither_listed_nor_read(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    os.mkfifo(root / "pipe")
    backends = await start(root)
    listed = await call(list_static_files, {}, context(backends))
    assert "pipe" not in {entry["path"] for entry in listed.structured["entries"]}
    result = await call(read_static_file, {"path": "pipe"}, context(backends))
    assert result.is_error
