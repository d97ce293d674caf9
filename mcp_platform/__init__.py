"""mcp-platform: a web platform's config, metrics, rate limits, static files and ORM data as MCP tools."""

from mcp_platform.app import create_app
from mcp_platform.context import ToolContext
from mcp_platform.errors import ToolError
from mcp_platform.prompts import prompt
from mcp_platform.registry import tool
from mcp_platform.resources import resource
from mcp_platform.results import ToolResult
from mcp_platform.settings import Settings, load_settings

__all__ = ["Settings", "ToolContext", "ToolError", "ToolResult", "create_app", "load_settings", "prompt", "resource",
           "tool"]
