"""Static files, the text layer: each kind of hostile path is refused by `check_path` itself, with its own reason,
before any file system call; and `read_bytes` refuses a file that changed after it was resolved."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcp_platform.capabilities.static.paths import Found, check_path, encode_chunk, read_bytes
from mcp_platform.errors import ToolError


@pytest.mark.parametrize(("path", "reason"), [
    ("../etc/passwd", "'..'"),
    ("a/../../b", "'..'"),
    ("a/..", "'..'"),
    ("/etc/passwd", "absolute"),
    ("C:/x", "absolute"),
    ("d:x", "absolute"),
    ("a:b", "absolute"),
    ("C:\\x", "backslash"),
    ("\\\\server\\share", "backslash"),
    ("a\\b", "backslash"),
    ("%2e%2e%2f", "percent-encoded"),
    ("a%2fb", "percent-encoded"),
    ("%252e%252e", "percent-encoded"),
    ("a\x00b", "control characters"),
    ("a\nb", "control characters"),
    ("\x7f", "control characters"),
    ("\u202eabc", "control characters"),
    ("~", "'~'"),
    ("~user/x", "'~'"),
    (".env", "hidden"),
    ("a/.git/config", "hidden"),
    ("...", "hidden"),
    (" a", "whitespace"),
    ("a ", "whitespace"),
    ("   ", "whitespace"),
    ("a" * 1025, "too long"),
    ("a" * 256, "longer than 255"),
])
def test_check_path_refuses_with_a_precise_reason(path: str, reason: str) -> None:
    with pytest.raises(ToolError) as caught:
        check_path(path, allow_hidden=False)
    assert reason in str(caught.value)
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize(("path", "segments"), [
    ("", ()),
    (".", ()),
    ("css/", ("css",)),
    ("./css//site.css", ("css", "site.css")),
    ("a~/b~", ("a~", "b~")),
    ("dir with space/é 東京.txt", ("dir with space", "é 東京.txt")),
    ("100%", ("100%",)),
    ("ab:c", ("ab:c",)),
])
def test_check_path_accepts_ordinary_relative_paths(path: str, segments: tuple[str, ...]) -> None:
    assert check_path(path, allow_hidden=False) == segments


def test_check_path_allows_hidden_only_when_asked() -> None:
    assert check_path(".well-known/x", allow_hidden=True) == (".well-known", "x")
    with pytest.raises(ToolError):
        check_path(".well-known/../../x", allow_hidden=True)


def found(path: Path) -> Found:
    return Found(path.name, os.path.realpath(path), os.stat(path))


def test_read_bytes_refuses_a_file_swapped_after_resolution(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("first")
    resolved = found(target)
    target.rename(tmp_path / "kept.txt")  # keeps the old inode alive, so the new file cannot reuse its number
    target.write_text("other inode")
    with pytest.raises(ToolError, match="changed"):
        read_bytes(resolved, 0, 10, lambda real: True)


def test_read_bytes_refuses_a_descriptor_that_points_outside(tmp_path: Path) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    target = tmp_path / "a.txt"
    target.write_text("data")
    with pytest.raises(ToolError, match="not served"):
        read_bytes(found(target), 0, 10, lambda real: False)
    assert read_bytes(found(target), 1, 2, lambda real: real == str(target.resolve())) == (b"at", 4)


def test_read_bytes_refuses_a_final_symlink(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("data")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    entry = Found("link.txt", str(tmp_path / "link.txt"), os.stat(tmp_path / "link.txt"))
    with pytest.raises(ToolError, match="Cannot open"):
        read_bytes(entry, 0, 10, lambda real: True)


@pytest.mark.parametrize(("data", "mime", "complete", "expected"), [
    (b"abc", "text/plain", True, ("text", "abc", 3)),
    ("é".encode()[:1], "text/plain", False, ("base64", "ww==", 1)),
    (b"ab" + "東".encode()[:2], None, False, ("text", "ab", 2)),
    (b"ab" + "東".encode()[:2], None, True, ("base64", "YWLmnQ==", 4)),
    (b"a\x00b", None, True, ("base64", "YQBi", 3)),
    (b"abc", "image/png", True, ("base64", "YWJj", 3)),
    (b"{}", "application/json", True, ("text", "{}", 2)),
])
def test_encode_chunk_picks_text_only_for_whole_utf8_characters(
        data: bytes, mime: str | None, complete: bool, expected: tuple[str, str, int]) -> None:
    assert encode_chunk(data, mime, complete=complete) == expected
