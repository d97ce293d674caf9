"""Static files as MCP resources: `static:///` + the percent-encoded path relative to the root.

A URI is decoded once and then checked exactly like a tool's path, so an encoded `..` is refused like a plain one.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, unquote

from mcp_platform.capabilities.static.backend import StaticFiles
from mcp_platform.capabilities.static.models import BadCursor, FileTooLarge
from mcp_platform.capabilities.static.paths import URI_PREFIX
from mcp_platform.errors import InvalidParams, ResourceNotFound, ToolError

__all__ = ["StaticResourceProvider"]

logger = logging.getLogger(__name__)


class StaticResourceProvider:
    """Every servable file under the static root as an MCP resource, `static:///css/site.css`."""

    def __init__(self, files: StaticFiles) -> None:
        self.files = files

    def templates(self) -> list[dict[str, Any]]:
        return [{
            "uriTemplate": URI_PREFIX + "{+path}",
            "name": "static_file",
            "title": "Static file",
            "description": "A file under the server's static root, by its path relative to the root, e.g. "
                           f"{URI_PREFIX}css/site.css. Text comes back as text, other files as base64 blobs.",
        }]

    def handles(self, uri: str) -> bool:
        return uri.startswith("static:")

    async def read(self, uri: str) -> list[dict[str, Any]]:
        not_found = ResourceNotFound("Resource not found", data={"uri": uri})
        if not uri.startswith(URI_PREFIX) or "?" in uri or "#" in uri:
            raise not_found
        try:
            path = unquote(uri[len(URI_PREFIX):], errors="strict")
        except UnicodeDecodeError:
            raise not_found from None
        try:
            chunk = await self.files.read_whole(path)
        except FileTooLarge as exc:
            raise InvalidParams(str(exc)) from None
        except ToolError:
            raise not_found from None
        key = "text" if chunk.encoding == "text" else "blob"
        return [{"uri": uri, "mimeType": chunk.mime_type, key: chunk.content}]

    # Defined last: inside the class body, `list` names this method from here on.
    async def list_page(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        try:
            entries, next_cursor = await self.files.resource_page(cursor, limit)
        except BadCursor:
            raise InvalidParams("Invalid params: unknown cursor") from None
        except ToolError as exc:  # the root is missing: list nothing rather than fail every resources/list
            logger.warning("static resources not listed: %s", exc)
            return [], None
        listed: list[dict[str, Any]] = []
        for entry in entries:
            item: dict[str, Any] = {"uri": URI_PREFIX + quote(entry.path, safe="/"), "name": entry.path,
                                    "size": entry.size}
            if entry.mime_type:
                item["mimeType"] = entry.mime_type
            listed.append(item)
        return listed, next_cursor
