"""What the static-file tools return, and the errors particular to them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_core import to_json

from mcp_platform.errors import ToolError

__all__ = ["MAX_LINE_CHARS", "MAX_SEARCH_FILE_BYTES", "BadCursor", "FileTooLarge", "SearchMatch", "SearchResults",
           "StaticEntry", "StaticFileChunk", "StaticListing", "wire_cost"]

MAX_SEARCH_FILE_BYTES = 4 * 1024 * 1024
"""Search skips files larger than this."""
MAX_LINE_CHARS = 300


class StaticEntry(BaseModel):
    path: str = Field(description="Path relative to the static root, '/'-separated.")
    is_dir: bool
    size: int | None = Field(description="Size in bytes; null for folders.")
    modified: str = Field(description="Last modification time, ISO 8601 UTC.")
    mime_type: str | None = Field(description="Guessed from the name; null for folders and unknown types.")


class StaticListing(BaseModel):
    path: str = Field(description="The folder listed, relative to the root ('' is the root).")
    entries: list[StaticEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")
    note: str | None = Field(None, description="Why the listing may be incomplete, when it is.")


class StaticFileChunk(BaseModel):
    path: str
    mime_type: str
    encoding: Literal["text", "base64"] = Field(description="`text`: content is UTF-8 text; `base64`: raw bytes.")
    content: str
    offset: int = Field(description="Byte offset of this chunk in the file.")
    length: int = Field(description="Bytes of the file this chunk covers.")
    size: int = Field(description="Size of the whole file in bytes.")
    truncated: bool = Field(description="True when the file continues after this chunk.")
    next_offset: int | None = Field(description="Offset to read next; null at the end of the file.")


class SearchMatch(BaseModel):
    path: str
    line_number: int = Field(description="1-based line number.")
    line: str = Field(description=f"The matching line, cut to about {MAX_LINE_CHARS} characters around the match.")


class SearchResults(BaseModel):
    query: str
    matches: list[SearchMatch]
    truncated: bool = Field(description="True when more matches exist than were returned.")
    files_searched: int
    files_skipped: int = Field(description=f"Binary files and files over {MAX_SEARCH_FILE_BYTES} bytes, not searched.")
    note: str | None = None


class BadCursor(ToolError):
    """A cursor that this server did not issue for this listing."""


class FileTooLarge(ToolError):
    """A whole-file read (a resource) of a file above the read cap."""


def wire_cost(value: Any) -> int:
    """Bytes `value` adds to a tool result: once in structuredContent, once re-escaped inside the text block."""
    once = to_json(value)
    return len(once) + len(to_json(once.decode()))
