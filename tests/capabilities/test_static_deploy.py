"""Static files during a deploy: while a folder under the root is swapped between a real folder and a symlink (as
`ln -sfn` deploys do), every read, listing and search through the real app answers either with the file or with
"not found": never HTTP 500, never a generic internal error, never a traceback in the log."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mcp_platform.app import create_app
from tests.support import asgi_client, make_settings, modern_headers, modern_request

pytestmark = pytest.mark.anyio
URI = "static:///site/index.html"
# What a vanished or swapped file may be answered with: the backend's own not-found wording.
NOT_FOUND = ("No file or folder",)


def _make_release(root: Path) -> None:
    release = root / "releases" / "r1"
    release.mkdir(parents=True)
    (release / "index.html").write_text("<p>hello from r1</p>\n")


def _swap(site: Path, stop: threading.Event, done: threading.Event, swaps: list[int]) -> None:
    """Alternate `site` between a folder and a symlink to releases/r1, for at most 2 s or 5,000 swaps."""
    deadline = time.monotonic() + 2
    try:
        for n in range(5000):
            if stop.is_set() or time.monotonic() > deadline:
                break
            if site.is_symlink():
                staging = site.with_name(".staging")  # hidden, so never served; renamed into place whole
                staging.mkdir()
                (staging / "index.html").write_text("<p>hello from a folder</p>\n")
                site.unlink()
                staging.rename(site)
            else:
                shutil.rmtree(site, ignore_errors=True)
                with contextlib.suppress(FileExistsError):
                    os.symlink("releases/r1", site)
            swaps[0] = n + 1
    finally:
        done.set()


async def _rpc(client: httpx2.AsyncClient, method: str, params: dict[str, Any], name: str) -> dict[str, Any]:
    response = await client.post("/mcp", headers=modern_headers(method, name), json=modern_request(method, params))
    assert response.status_code == 200, (response.status_code, response.text[:300])
    body: dict[str, Any] = response.json()
    return body


def _tool_ok_or_not_found(body: dict[str, Any]) -> bool:
    result = body["result"]
    if not result.get("isError"):
        return True
    text = result["content"][0]["text"]
    assert any(phrase in text for phrase in NOT_FOUND), text
    return False


async def test_reads_during_a_folder_symlink_swap_are_ok_or_not_found(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "static"
    _make_release(root)
    site = root / "site"
    os.symlink("releases/r1", site)
    app = create_app(make_settings(tmp_path, static={"root": root}, rate_limit={"enabled": False}))
    stop, done, swaps = threading.Event(), threading.Event(), [0]
    outcomes = {"ok": 0, "not found": 0}
    caplog.set_level(logging.WARNING)
    async with asgi_client(app) as client:
        swapper = threading.Thread(target=_swap, args=(site, stop, done, swaps), daemon=True)
        swapper.start()
        try:
            for _ in range(2000):
                if done.is_set():
                    break
                read = await _rpc(client, "resources/read", {"uri": URI}, URI)
                if "result" in read:
                    assert "hello from" in read["result"]["contents"][0]["text"]
                    outcomes["ok"] += 1
                else:
                    assert read["error"]["data"]["uri"] == URI, read["error"]
                    outcomes["not found"] += 1
                for name, arguments in [("read_static_file", {"path": "site/index.html"}),
                                        ("list_static_files", {"path": "site"}),
                                        ("search_static_files", {"query": "hello", "path": "site"}),
                                        ("list_static_files", {"path": "", "recursive": True})]:
                    call = await _rpc(client, "tools/call", {"name": name, "arguments": arguments}, name)
                    outcomes["ok" if _tool_ok_or_not_found(call) else "not found"] += 1
                listed = await _rpc(client, "resources/list", {}, "resources/list")
                assert "result" in listed, listed
        finally:
            stop.set()
            swapper.join(10)
    assert swaps[0] > 10 and outcomes["ok"] > 0, (swaps, outcomes)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], \
        [r.getMessage() for r in caplog.records]
