"""Static files, below the backend: path confinement by text, safe reads, and text-or-base64 encoding.

`check_path` is the first of two checks on a user path (the backend's `os.path.realpath` check is the second): the
path must be relative and POSIX-style, with no `..`, no absolute, drive-letter or UNC form, no backslashes, no
percent-encoding, no control characters, no leading `~`, and no hidden segment unless hidden files are allowed.
Messages quote only what the caller gave.
"""

from __future__ import annotations

import base64
import errno
import mimetypes
import os
import re
import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mcp_platform.errors import ToolError

__all__ = ["MAX_PATH_CHARS", "MAX_SEGMENT_CHARS", "URI_PREFIX", "Found", "check_path", "encode_chunk", "is_texty",
           "mime_table", "not_found", "read_bytes", "show_path", "sort_key"]

URI_PREFIX = "static:///"
"""The scheme of static files as MCP resources: `static:///` + the percent-encoded relative path."""

MAX_PATH_CHARS = 1024
MAX_SEGMENT_CHARS = 255

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_DRIVE = re.compile(r"^[A-Za-z]:")
_TEXT_MIMES = frozenset({
    "application/javascript", "application/json", "application/xml", "application/x-sh", "application/toml",
    "application/yaml", "application/x-yaml", "application/sql", "image/svg+xml",
})
# The standard table lacks these, and each host's /etc/mime.types differs, so the table is built explicitly.
_EXTRA_TYPES = {".md": "text/markdown", ".markdown": "text/markdown", ".toml": "application/toml",
                ".yaml": "application/yaml", ".yml": "application/yaml", ".webp": "image/webp",
                ".woff": "font/woff", ".woff2": "font/woff2", ".mjs": "text/javascript", ".map": "application/json"}


def show_path(path: str) -> str:
    """The caller's own path, quoted safely for a message (control characters escaped, long paths cut)."""
    text = repr(path)
    return text if len(text) <= 120 else text[:100] + "...'"


_VANISHED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EINVAL, errno.ELOOP})
"""What a path gives while a deploy swaps what it names: gone, a file where a folder was, a folder where a symlink
was (readlink's EINVAL), a symlink where a file was (O_NOFOLLOW's ELOOP)."""


def not_found(path: str, exc: OSError) -> ToolError:
    """The tool error for a file-system error on `path`: "not found" for a path that vanished or changed kind."""
    if exc.errno in _VANISHED:
        return ToolError(f"No file or folder {show_path(path)} under the static root (or it changed while it was "
                         "read); list_static_files shows what exists.")
    return ToolError(f"Cannot open {show_path(path)}: {exc.strerror or 'error'}.")


def check_path(path: str, *, allow_hidden: bool) -> tuple[str, ...]:
    """The segments of a user path, or `ToolError` saying what is wrong with it. Text checks only, no I/O."""
    shown = show_path(path)
    if len(path) > MAX_PATH_CHARS:
        raise ToolError(f"Path is too long ({len(path)} characters, at most {MAX_PATH_CHARS}).")
    if path != path.strip():
        raise ToolError(f"Path {shown} starts or ends with whitespace; give the path exactly, or '' for the root.")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in path):
        raise ToolError(f"Path {shown} contains control characters.")
    if "\\" in path:
        raise ToolError(f"Path {shown} contains a backslash; use '/' between folders, relative to the root.")
    if _PERCENT.search(path):
        raise ToolError(f"Path {shown} looks percent-encoded; give the plain path, e.g. 'css/site.css'.")
    if path.startswith("/") or _DRIVE.match(path):
        raise ToolError(f"Path {shown} is absolute; give a path relative to the static root, e.g. 'css/site.css'.")
    if path.startswith("~"):
        raise ToolError(f"Path {shown} starts with '~'; home folders are not reachable, give a path under the root.")
    segments = tuple(part for part in path.split("/") if part not in ("", "."))
    for part in segments:
        if part == "..":
            raise ToolError(f"Path {shown} contains '..'; only paths inside the static root are reachable.")
        if len(part) > MAX_SEGMENT_CHARS:
            raise ToolError(f"Path {shown} has a name longer than {MAX_SEGMENT_CHARS} characters.")
        if part.startswith(".") and not allow_hidden:
            raise ToolError(f"Path {shown} names a hidden entry (starting with '.'); hidden files are not served.")
    return segments


@dataclass(frozen=True, slots=True)
class Found:
    """A resolved entry: its path relative to the root, its real location, and the stat of what it points to."""

    rel: str
    real: str
    st: os.stat_result
    is_link: bool = False

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


def sort_key(rel: str) -> tuple[str, ...]:
    """Order by segments, so that a folder's contents come right after it."""
    return tuple(rel.split("/"))


def mime_table() -> mimetypes.MimeTypes:
    """Python's built-in table plus a few common web types; a private table, so results do not depend on the
    host's /etc/mime.types."""
    table = mimetypes.MimeTypes()
    for ext, mime in _EXTRA_TYPES.items():
        table.add_type(mime, ext)
    return table


def is_texty(mime: str | None) -> bool:
    return mime is None or mime.startswith("text/") or mime in _TEXT_MIMES or mime.endswith(("+json", "+xml"))


def encode_chunk(data: bytes, mime: str | None, *, complete: bool) -> tuple[Literal["text", "base64"], str, int]:
    """Text when the bytes are UTF-8 of a text-like (or unknown) type, else base64; and how many bytes it covers."""
    if is_texty(mime) and b"\0" not in data:
        try:
            return "text", data.decode("utf-8"), len(data)
        except UnicodeDecodeError as exc:
            # A chunk may end inside a multi-byte character: stop before it; the next read starts there.
            if not complete and exc.start > 0 and exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
                return "text", data[:exc.start].decode("utf-8"), exc.start
    return "base64", base64.b64encode(data).decode(), len(data)


def read_bytes(found: Found, offset: int, count: int, servable: Callable[[str], bool]) -> tuple[bytes, int]:
    """Up to `count` bytes at `offset`, and the file's size; refuses anything that is not a regular file or that was
    swapped (say, for a symlink) since it was resolved."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(found.real, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the resolved file is a symlink now: never followed
            raise ToolError(f"Cannot open {show_path(found.rel)}: {exc.strerror or 'error'}.") from None
        raise not_found(found.rel, exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (found.st.st_dev, found.st.st_ino):
            raise not_found(found.rel, OSError(errno.ENOENT, "changed while it was opened"))
        # Where the descriptor really points, in case a folder on the way was swapped for a symlink meanwhile.
        if os.path.isdir("/proc/self/fd") and not servable(os.readlink(f"/proc/self/fd/{fd}")):
            raise ToolError(f"{show_path(found.rel)} changed while it was opened; it is not served.")
        chunks: list[bytes] = []
        want = max(0, min(count, st.st_size - offset))
        while want > 0:
            data = os.pread(fd, want, offset)
            if not data:
                break
            chunks.append(data)
            offset, want = offset + len(data), want - len(data)
        return b"".join(chunks), st.st_size
    finally:
        os.close(fd)
