"""Static files: the backend behind the static-file tools and resources, one folder served read-only.

Every user path goes through two checks: `check_path` (paths.py) refuses hostile text, then the path's
`os.path.realpath` must lie under the root's and, unless hidden files are allowed, contain no hidden segment; so a
symlink anywhere along the way cannot lead outside. Reads open the resolved file without following a final symlink
and check the descriptor is still the file that was resolved. Every file operation runs in a worker thread, and
every result is kept under the server's result-size cap, with a cursor or offset to continue.
"""

from __future__ import annotations

import bisect
import fnmatch
import functools
import os
import secrets
import stat
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread

from mcp_platform import spans, tracing
from mcp_platform.capabilities.static.models import (
    MAX_LINE_CHARS,
    MAX_SEARCH_FILE_BYTES,
    BadCursor,
    FileTooLarge,
    SearchMatch,
    SearchResults,
    StaticEntry,
    StaticFileChunk,
    StaticListing,
    wire_cost,
)
from mcp_platform.capabilities.static.paths import (
    Found,
    check_path,
    encode_chunk,
    is_texty,
    mime_table,
    not_found,
    read_bytes,
    show_path,
    sort_key,
)
from mcp_platform.errors import ToolError
from mcp_platform.settings import StaticSettings
from mcp_platform.signing import InvalidToken, SignedCodec

__all__ = ["MAX_SCAN_ENTRIES", "StaticFiles"]

T = TypeVar("T")
Progress = Callable[[int, int], Awaitable[None]]

MAX_SCAN_ENTRIES = 100_000
"""A recursive scan stops after visiting this many entries, so that a huge tree cannot stall a call."""
SEARCH_BATCH = 16
"""Files searched per worker-thread hop; progress is reported (and cancellation noticed) between batches."""
MAX_CURSOR_CHARS = 4096
"""The tools accept cursors up to this long; resources/list nests them in its own."""
_CURSOR_KIND = "static-cursor"
_RESULT_OVERHEAD = 2048


class StaticFiles:
    """The confined folder behind the static-file tools and resources.

    `result_budget` is the server's cap on a serialised tool result: reads, listings and searches return less (and a
    way to continue) rather than a result the server would refuse. `cursor_key` signs cursors; instances behind one
    load balancer need the same key for a cursor from one to work on another.
    """

    def __init__(self, settings: StaticSettings, *, result_budget: int | None = None,
                 cursor_key: bytes | None = None, max_scan_entries: int = MAX_SCAN_ENTRIES) -> None:
        self.configured = settings.root
        self._root_set = "root" in settings.model_fields_set  # from the file, the environment or an override
        self.allow_hidden = settings.allow_hidden
        self.max_read_bytes = settings.max_read_bytes
        self.result_budget = result_budget
        self.max_scan_entries = max_scan_entries
        self._cursors = SignedCodec(cursor_key or secrets.token_bytes(32), max_chars=MAX_CURSOR_CHARS)
        self._mime = mime_table()
        # Resolved once here; a root missing at start is looked for again on each call, and named when absent.
        self._real: str | None = os.path.realpath(self.configured) if os.path.isdir(self.configured) else None

    def root_exists(self) -> bool:
        """Whether the root folder was found when this backend was made."""
        return self._real is not None

    # -- confinement (blocking; runs in worker threads) --

    def _root(self) -> str:
        if self._real is None:
            try:
                if not os.path.isdir(self.configured):
                    raise FileNotFoundError(self.configured)
                self._real = os.path.realpath(self.configured)
            except OSError:
                if not self._root_set:  # the default ./static, absent: typical of a fresh `pip install`
                    raise ToolError(f"No static root is configured (and the default folder {str(self.configured)!r} "
                                    "does not exist): set static.root to a folder, or run `mcp-platform init` "
                                    "to write the example files.") from None
                raise ToolError(f"The static files folder {str(self.configured)!r} does not exist on the server; "
                                "create it, or point static.root at an existing folder.") from None
        return self._real

    def mime_type(self, name: str) -> str | None:
        return self._mime.guess_type(name, strict=False)[0]

    def _servable(self, real: str) -> bool:
        """Whether a resolved location is inside the root and, unless hidden files are allowed, not hidden."""
        root = self._root()
        if real == root:
            return True
        if not real.startswith(root.rstrip(os.sep) + os.sep):
            return False
        rel = os.path.relpath(real, root)
        return self.allow_hidden or not any(part.startswith(".") for part in rel.split(os.sep))

    def _resolve(self, path: str) -> Found:
        segments = check_path(path, allow_hidden=self.allow_hidden)
        root = self._root()
        try:
            # realpath itself fails (ENOENT, EINVAL) when a symlink on the way is swapped while it resolves.
            real = os.path.realpath(os.path.join(root, *segments))
        except OSError as exc:
            raise not_found(path, exc) from None
        if not self._servable(real):
            raise ToolError(f"Path {show_path(path)} leads outside the static root or into a hidden entry "
                            "(through a symlink); it is not served.")
        try:
            st = os.stat(real)
        except OSError as exc:
            raise not_found(path, exc) from None
        return Found("/".join(segments), real, st)

    def _children(self, folder: Found) -> list[Found]:
        """Servable entries of `folder`: hidden, unaddressable, escaping and special entries are left out."""
        found: list[Found] = []
        try:
            entries = list(os.scandir(folder.real))
        except OSError:
            return found
        for entry in entries:
            try:
                check_path(entry.name, allow_hidden=self.allow_hidden)
                is_link = entry.is_symlink()
                if is_link:
                    real = os.path.realpath(entry.path)
                    if not self._servable(real):
                        continue
                    st = os.stat(real)
                else:
                    real, st = entry.path, entry.stat(follow_symlinks=False)
            except (ToolError, OSError):
                continue
            if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                rel = f"{folder.rel}/{entry.name}" if folder.rel else entry.name
                found.append(Found(rel, real, st, is_link))
        found.sort(key=lambda f: f.rel)
        return found

    def _walk(self, top: Found, recursive: bool) -> tuple[list[Found], bool]:
        """Entries under `top` in segment order, and whether the scan stopped at the entry cap. Symlinked folders
        are listed but never entered, which rules out loops and escapes."""
        out: list[Found] = []
        stack: list[Iterator[Found]] = [iter(self._children(top))]
        capped = False
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
                continue
            if len(out) >= self.max_scan_entries:
                capped = True
                break
            out.append(item)
            if recursive and item.is_dir and not item.is_link:
                stack.append(iter(self._children(item)))
        out.sort(key=lambda f: sort_key(f.rel))
        return out, capped

    def _entry(self, found: Found) -> StaticEntry:
        modified = datetime.fromtimestamp(found.st.st_mtime, UTC).isoformat(timespec="seconds")
        return StaticEntry(path=found.rel, is_dir=found.is_dir, size=None if found.is_dir else found.st.st_size,
                           modified=modified.replace("+00:00", "Z"),
                           mime_type=None if found.is_dir else self.mime_type(found.rel))

    # -- cursors: the last path returned, bound to the listing it continues, signed so a forged one is refused --

    def _make_cursor(self, scope: list[Any], after: str) -> str:
        return self._cursors.encode(_CURSOR_KIND, {"a": after}, bind=scope)

    def _read_cursor(self, cursor: str, scope: list[Any]) -> str:
        try:
            after = self._cursors.decode(cursor, _CURSOR_KIND, bind=scope).get("a")
        except InvalidToken:
            after = None
        if not isinstance(after, str):
            raise BadCursor("The cursor is not one this server issued for this listing (it may be from before a "
                            "restart); start again without a cursor.")
        return after

    # -- operations (blocking; the async methods below run them in worker threads) --

    def _page(self, found: list[Found], scope: list[Any], after: str | None, limit: int, budget: int | None,
              ) -> tuple[list[StaticEntry], str | None, bool]:
        """One page of `found` after the cursor's path, its next cursor, and whether the budget cut it short."""
        start = 0 if after is None else bisect.bisect_right(found, sort_key(after), key=lambda f: sort_key(f.rel))
        entries: list[StaticEntry] = []
        spent, cut = _RESULT_OVERHEAD, False
        for item in found[start:start + limit]:
            entry = self._entry(item)
            spent += wire_cost(entry.model_dump())
            if budget is not None and entries and spent > budget:
                cut = True
                break
            entries.append(entry)
        more = start + len(entries) < len(found)
        return entries, self._make_cursor(scope, entries[-1].path) if more and entries else None, cut

    def _list(self, path: str, pattern: str | None, recursive: bool, limit: int, cursor: str | None) -> StaticListing:
        if pattern is not None and "/" in pattern:
            raise ToolError(f"pattern {pattern!r} contains '/', but it is matched against file names only; "
                            "put the folder in `path` and set recursive=true to look in subfolders.")
        top = self._resolve(path)
        if not top.is_dir:
            raise ToolError(f"{show_path(path)} is a file, not a folder; read it with read_static_file.")
        scope: list[Any] = ["list", top.rel, pattern, recursive]
        after = None if cursor is None else self._read_cursor(cursor, scope)
        found, capped = self._walk(top, recursive)
        if pattern is not None:
            found = [f for f in found if fnmatch.fnmatchcase(f.rel.rpartition("/")[2], pattern)]
        budget = None if self.result_budget is None else self.result_budget - wire_cost(top.rel)
        entries, next_cursor, cut = self._page(found, scope, after, limit, budget)
        notes = []
        if capped:
            notes.append(f"The scan stopped after {self.max_scan_entries} entries; list a subfolder to see the rest.")
        if cut:
            notes.append("This page was cut short to keep the result small; continue with next_cursor.")
        return StaticListing(path=top.rel, entries=entries, next_cursor=next_cursor, note=" ".join(notes) or None)

    def _chunk(self, found: Found, offset: int, max_bytes: int, budget: int | None) -> StaticFileChunk:
        if found.is_dir:
            raise ToolError(f"{show_path(found.rel)} is a folder; list it with list_static_files.")
        if not stat.S_ISREG(found.st.st_mode):
            raise ToolError(f"{show_path(found.rel)} is not a regular file; only files and folders are served.")
        data, size = read_bytes(found, offset, min(max_bytes, self.max_read_bytes), self._servable)
        mime = self.mime_type(found.rel)
        while True:
            encoding, content, used = encode_chunk(data, mime, complete=offset + len(data) >= size)
            if budget is None or len(data) <= 1:
                break
            cost = wire_cost(content) + wire_cost(found.rel) + _RESULT_OVERHEAD
            if cost <= budget:
                break
            data = data[:max(1, int(len(data) * budget / cost * 0.9))]
        end = offset + used
        default_mime = "text/plain" if encoding == "text" else "application/octet-stream"
        return StaticFileChunk(path=found.rel, mime_type=mime or default_mime, encoding=encoding, content=content,
                               offset=offset, length=used, size=size, truncated=end < size,
                               next_offset=end if end < size else None)

    def _read(self, path: str, offset: int, max_bytes: int) -> StaticFileChunk:
        return self._chunk(self._resolve(path), offset, max_bytes, self.result_budget)

    def _read_whole(self, path: str) -> StaticFileChunk:
        found = self._resolve(path)
        chunk = self._chunk(found, 0, self.max_read_bytes, None)
        if chunk.truncated:
            raise FileTooLarge(f"{show_path(found.rel)} is {chunk.size} bytes, more than the {self.max_read_bytes} "
                               "one read returns; read it in parts with the read_static_file tool.")
        return chunk

    def _resource_page(self, cursor: str | None, limit: int) -> tuple[list[StaticEntry], str | None]:
        scope: list[Any] = ["resources"]
        after = None if cursor is None else self._read_cursor(cursor, scope)
        found, _ = self._walk(self._resolve(""), recursive=True)
        entries, next_cursor, _ = self._page([f for f in found if not f.is_dir], scope, after, limit, None)
        return entries, next_cursor

    def _search_plan(self, path: str) -> tuple[list[Found], bool]:
        top = self._resolve(path)
        if not top.is_dir:
            return [top], False
        found, capped = self._walk(top, recursive=True)
        return [f for f in found if not f.is_dir], capped

    def _grep(self, files: list[Found], needle: str, want: int) -> tuple[list[SearchMatch], int, int]:
        """Up to `want` matching lines in `files`, with the counts of files searched and skipped."""
        matches: list[SearchMatch] = []
        searched = skipped = 0
        for found in files:
            text = self._text_of(found)
            if text is None:
                skipped += 1
                continue
            searched += 1
            if needle not in text.casefold():
                continue
            for number, raw in enumerate(text.split("\n"), 1):
                if needle in raw.casefold():
                    matches.append(SearchMatch(path=found.rel, line_number=number, line=_clip(raw.strip(), needle)))
                    if len(matches) >= want:
                        return matches, searched, skipped
        return matches, searched, skipped

    def _text_of(self, found: Found) -> str | None:
        if found.st.st_size > MAX_SEARCH_FILE_BYTES or not is_texty(self.mime_type(found.rel)):
            return None
        try:
            data, _ = read_bytes(found, 0, MAX_SEARCH_FILE_BYTES, self._servable)
        except (OSError, ToolError):
            return None
        return None if b"\0" in data[:8192] else data.decode("utf-8", errors="replace")

    # -- the async interface --

    async def list_files(self, path: str = "", pattern: str | None = None, recursive: bool = False, limit: int = 100,
                         cursor: str | None = None) -> StaticListing:
        return await _in_thread(self._list, path, pattern, recursive, max(1, min(limit, 1000)), cursor)

    async def read_file(self, path: str, offset: int = 0, max_bytes: int = 65536) -> StaticFileChunk:
        if not tracing.active():
            return await _in_thread(self._read, path, max(0, offset), max(1, max_bytes))
        with spans.static_read() as span:
            chunk = await _in_thread(self._read, path, max(0, offset), max(1, max_bytes))
            spans.file_read(span, chunk.path, chunk.size)
            return chunk

    async def read_whole(self, path: str) -> StaticFileChunk:
        """The whole file in one chunk (for resources); `FileTooLarge` past the read cap."""
        if not tracing.active():
            return await _in_thread(self._read_whole, path)
        with spans.static_read() as span:
            chunk = await _in_thread(self._read_whole, path)
            spans.file_read(span, chunk.path, chunk.size)
            return chunk

    async def resource_page(self, cursor: str | None, limit: int) -> tuple[list[StaticEntry], str | None]:
        """Every file under the root, recursively, in order; `BadCursor` for a cursor this listing did not issue."""
        return await _in_thread(self._resource_page, cursor, max(1, min(limit, 1000)))

    async def search_files(self, query: str, path: str = "", limit: int = 50, progress: Progress | None = None,
                           ) -> SearchResults:
        """Case-insensitive substring search, line by line, in the text files under `path`."""
        if not query or "\n" in query or "\r" in query:
            raise ToolError("The query must be non-empty and is matched within single lines, so no line breaks.")
        needle = query.casefold()
        files, capped = await _in_thread(self._search_plan, path)
        matches: list[SearchMatch] = []
        searched = skipped = 0
        spent, truncated, total = _RESULT_OVERHEAD + wire_cost(query), False, len(files)
        for start in range(0, total, SEARCH_BATCH):
            batch = files[start:start + SEARCH_BATCH]
            found, batch_searched, batch_skipped = await _in_thread(self._grep, batch, needle, limit - len(matches) + 1)
            searched, skipped = searched + batch_searched, skipped + batch_skipped
            for match in found:
                spent += wire_cost(match.model_dump())
                if len(matches) >= limit or (self.result_budget is not None and matches and spent > self.result_budget):
                    truncated = True
                    break
                matches.append(match)
            if progress is not None:
                await progress(start + len(batch), total)
            if truncated:
                break
        note = f"Only the first {self.max_scan_entries} entries were searched; search a subfolder." if capped else None
        return SearchResults(query=query, matches=matches, truncated=truncated, files_searched=searched,
                             files_skipped=skipped, note=note)


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(functools.partial(_vanished_is_not_found, fn, *args))


def _vanished_is_not_found(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`, with any file-system error left unhandled below turned into a tool error: files come and go
    under a running server (a deploy swaps a folder for a symlink), and that is never a server failure."""
    try:
        return fn(*args)
    except OSError as exc:
        path = next((arg for arg in args if isinstance(arg, str)), "")
        raise not_found(path, exc) from None


def _clip(line: str, needle: str) -> str:
    if len(line) <= MAX_LINE_CHARS:
        return line
    at = max(0, line.casefold().find(needle))
    start = max(0, min(at - MAX_LINE_CHARS // 3, len(line) - MAX_LINE_CHARS))
    end = start + MAX_LINE_CHARS
    return ("…" if start else "") + line[start:end] + ("…" if end < len(line) else "")


