"""Static files capability: list, read and search the files under `static.root`, as tools and as MCP resources.

The tools are thin: confinement, paging and encoding live in `StaticFiles` (backend.py); the resources in
`StaticResourceProvider` (resources.py).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Annotated

import anyio.to_thread
from pydantic import Field

from mcp_platform.capabilities import Capability, Started
from mcp_platform.capabilities.static.backend import StaticFiles
from mcp_platform.capabilities.static.models import SearchResults, StaticFileChunk, StaticListing
from mcp_platform.capabilities.static.paths import MAX_PATH_CHARS
from mcp_platform.capabilities.static.resources import StaticResourceProvider
from mcp_platform.capabilities.static.watch import StaticWatcher
from mcp_platform.context import ToolContext
from mcp_platform.core import Core
from mcp_platform.registry import tool

__all__ = ["CAPABILITY", "list_static_files", "read_static_file", "search_static_files"]

logger = logging.getLogger(__name__)


PathArg = Annotated[str, Field(max_length=MAX_PATH_CHARS)]


@tool(read_only=True, title="List static files")
async def list_static_files(
    ctx: ToolContext,
    path: PathArg = "",
    pattern: Annotated[str | None, Field(min_length=1, max_length=200)] = None,
    recursive: bool = False,
    limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Field(min_length=1, max_length=4096)] = None,
) -> StaticListing:
    """List the files and folders under the server's static root, sorted by path, with size, modification time
    and MIME type. Hidden entries (names starting with '.') are not listed. Long listings come in pages: pass
    `next_cursor` back as `cursor`, with the same path, pattern and recursive values.

    Args:
        path: Folder to list, relative to the static root with '/' between names, e.g. 'css'; '' is the root.
        pattern: Shell-style glob matched against each entry's name (not its folder), e.g. '*.css' or 'logo.*'.
        recursive: Also list the contents of every subfolder.
        limit: Most entries in one page (1-1000).
        cursor: The `next_cursor` of the previous page.
    """
    return await ctx.backend(StaticFiles).list_files(path, pattern, recursive, limit, cursor)


@tool(read_only=True, title="Read a static file")
async def read_static_file(
    ctx: ToolContext,
    path: PathArg,
    offset: Annotated[int, Field(ge=0)] = 0,
    max_bytes: Annotated[int, Field(ge=1)] = 65536,
) -> StaticFileChunk:
    """Read a file under the static root: UTF-8 text as text, anything else as base64 with its MIME type. A large
    file comes in parts: while `truncated` is true, call again with `offset` set to `next_offset`.

    Args:
        path: File to read, relative to the static root with '/' between names, e.g. 'css/site.css'.
        offset: Byte offset to start at (0 for the start of the file).
        max_bytes: Most bytes to return; the server also caps one read (static.max_read_bytes) and keeps results
            small enough for clients, so fewer may come back.
    """
    return await ctx.backend(StaticFiles).read_file(path, offset, max_bytes)


@tool(read_only=True, title="Search static files")
async def search_static_files(
    ctx: ToolContext,
    query: Annotated[str, Field(min_length=1, max_length=1000)],
    path: PathArg = "",
    limit: Annotated[int, Field(ge=1, le=500)] = 50,
) -> SearchResults:
    """Find the lines that contain `query` in the text files under the static root (case-insensitive plain text,
    not a regular expression). Binary files and very large files are skipped. Reports progress as it goes.

    Args:
        query: Text to look for within single lines.
        path: Folder (or single file) to search, relative to the static root; '' searches everything.
        limit: Most matching lines to return (1-500).
    """
    return await ctx.backend(StaticFiles).search_files(query, path, limit, progress=ctx.report_progress)


async def _start(core: Core, stack: AsyncExitStack) -> Started:
    settings = core.settings
    # Resolving the root touches the disk: do it in a worker thread like every other file operation.
    # With a configured secret_key, cursors verify on every instance behind a load balancer and survive restarts.
    key = settings.secret_key.get_secret_value().encode() if settings.secret_key else None
    files = await anyio.to_thread.run_sync(
        functools.partial(StaticFiles, settings.static, result_budget=settings.tools.max_result_bytes,
                          cursor_key=hashlib.sha256(b"static-cursor:" + key).digest() if key else None))
    if not files.root_exists():
        logger.warning("static files folder %s does not exist; the static-file tools will say so when called",
                       settings.static.root)
    notifier = core.notifier
    if settings.static.watch_seconds > 0:
        def listening() -> bool:
            # A notifier that cannot count its listeners (a shared one) is assumed to have some.
            count = getattr(notifier, "subscriber_count", None)
            return not isinstance(count, int) or count > 0

        watcher = StaticWatcher(Path(settings.static.root), notifier, interval=settings.static.watch_seconds,
                                allow_hidden=settings.static.allow_hidden, listening=listening)
        task = asyncio.get_running_loop().create_task(watcher.run())
        stack.callback(task.cancel)
    provider = StaticResourceProvider(files)
    return Started(backends=[files, provider], resource_providers=[provider])


CAPABILITY = Capability(
    name="static",  # also its toolset name (tools.enabled = ["toolset:static"])
    tools=[list_static_files, read_static_file, search_static_files],
    start=_start,
)
