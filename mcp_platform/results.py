"""ToolResult: what a tool call returns on the wire (content blocks, structured content, error flag)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ToolResult", "error_result"]


@dataclass(slots=True)
class ToolResult:
    """A `tools/call` result. Return one from a tool for full control (images, audio, resource links, several
    blocks); plain return values are converted for you."""

    content: list[dict[str, Any]] = field(default_factory=list)
    structured: Any = None
    is_error: bool = False

    @classmethod
    def text(cls, text: str, *, structured: Any = None) -> ToolResult:
        return cls(content=[{"type": "text", "text": text}], structured=structured)

    @classmethod
    def image(cls, data: bytes, mime_type: str) -> ToolResult:
        return cls(content=[{"type": "image", "data": base64.b64encode(data).decode(), "mimeType": mime_type}])

    def to_wire(self) -> dict[str, Any]:
        result: dict[str, Any] = {"content": self.content, "isError": self.is_error}
        if self.structured is not None:
            result["structuredContent"] = self.structured
        return result


def error_result(message: str) -> ToolResult:
    return ToolResult(content=[{"type": "text", "text": message}], is_error=True)
