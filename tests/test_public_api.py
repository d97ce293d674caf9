"""The public API is small and deliberate: adding or removing a name is a visible change."""

import mcp_platform


def test_exported_names() -> None:
    assert sorted(mcp_platform.__all__) == ["Settings", "ToolContext", "ToolError", "ToolResult", "create_app",
                                            "load_settings", "prompt", "resource", "tool"]
    for name in mcp_platform.__all__:
        assert getattr(mcp_platform, name) is not None
