"""Static files: list, read and search one folder served read-only, as tools and as MCP resources.

Every user path is checked twice: by text (`paths.check_path`), then by where it resolves (`StaticFiles`), so
neither `..` nor a symlink can lead outside the root. `tools.py` holds the tools and the capability, `models.py` what
they return, `resources.py` the `static:///` resources, `watch.py` the change watcher.
"""

from __future__ import annotations

from mcp_platform.capabilities.static.backend import StaticFiles
from mcp_platform.capabilities.static.models import (
    BadCursor,
    FileTooLarge,
    SearchMatch,
    SearchResults,
    StaticEntry,
    StaticFileChunk,
    StaticListing,
)
from mcp_platform.capabilities.static.paths import URI_PREFIX
from mcp_platform.capabilities.static.resources import StaticResourceProvider
from mcp_platform.capabilities.static.tools import CAPABILITY, list_static_files, read_static_file, search_static_files
from mcp_platform.capabilities.static.watch import StaticWatcher

__all__ = [
    "CAPABILITY",
    "URI_PREFIX",
    "BadCursor",
    "FileTooLarge",
    "SearchMatch",
    "SearchResults",
    "StaticEntry",
    "StaticFileChunk",
    "StaticFiles",
    "StaticListing",
    "StaticResourceProvider",
    "StaticWatcher",
    "list_static_files",
    "read_static_file",
    "search_static_files",
]
