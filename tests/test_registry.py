"""The @tool decorator and registry: rules enforced at registration, schemas built from type hints."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from mcp_platform import ToolContext, ToolResult, tool
from mcp_platform.auth_types import Principal
from mcp_platform.errors import ConfigError, ToolTimeout
from mcp_platform.tool_registry import Registry


def test_read_only_is_required_and_writes_must_state_their_effects() -> None:
    with pytest.raises(TypeError):
        tool(lambda: None)  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="destructive= and idempotent="):
        @tool(read_only=False)
        def write() -> None: ...
    with pytest.raises(ConfigError, match="cannot be destructive"):
        @tool(read_only=True, destructive=True)
        def odd() -> None: ...


@pytest.mark.parametrize("name", ["", "has space", "a" * 129, "slash/name", "ünïcode"])
def test_tool_names_follow_sep_986(name: str) -> None:
    with pytest.raises(ConfigError, match="1-128 characters"):
        tool(lambda: None, read_only=True, name=name)


def test_scope_defaults_and_validation() -> None:
    @tool(read_only=True)
    def reader() -> None: ...

    @tool(read_only=False, destructive=False, idempotent=True)
    def writer() -> None: ...

    registry = Registry()
    assert registry.add(reader).spec.scope == "read"
    assert registry.add(writer).spec.scope == "write"
    with pytest.raises(ConfigError, match="scope must be one of"):
        tool(lambda: None, read_only=True, name="x", scope="root")


class Point(BaseModel):
    x: int
    y: int


def test_schemas_come_from_hints_and_docstrings() -> None:
    @tool(read_only=True, title="Move")
    def move(ctx: ToolContext, point: Point, dx: Annotated[int, Field(ge=-10, le=10)] = 0,
             label: str | None = None) -> Point:
        """Move a point.

        Args:
            point: Where to start.
            dx: How far to move right.
        """
        return Point(x=point.x + dx, y=point.y)

    built = Registry().add(move)
    schema = built.input_schema
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"point", "dx", "label"}  # the context is not an argument
    assert schema["required"] == ["point"]
    assert schema["properties"]["dx"]["maximum"] == 10
    assert schema["properties"]["dx"]["description"] == "How far to move right."
    assert built.definition["description"] == "Move a point."
    assert built.output_schema is not None and built.output_schema["properties"]["x"]["type"] == "integer"
    assert built.definition["annotations"] == {"title": "Move", "readOnlyHint": True, "destructiveHint": False,
                                               "idempotentHint": True, "openWorldHint": False}


def test_non_object_returns_are_wrapped_and_tool_results_pass_through() -> None:
    @tool(read_only=True)
    def numbers() -> list[int]:
        return [1, 2]

    @tool(read_only=True)
    def raw() -> ToolResult:
        return ToolResult.text("hi")

    registry = Registry()
    wrapped = registry.add(numbers)
    assert wrapped.output_schema == {"type": "object", "properties": {"result": {"type": "array",
                                     "items": {"type": "integer"}}}, "required": ["result"]}
    assert wrapped.to_result([1, 2]).structured == {"result": [1, 2]}
    assert registry.add(raw).output_schema is None


def test_var_args_and_duplicate_names_are_refused() -> None:
    @tool(read_only=True)
    def splat(*args: Any) -> None: ...

    with pytest.raises(ConfigError, match=r"\*args"):
        Registry().add(splat)

    @tool(read_only=True, name="same")
    def one() -> None: ...

    @tool(read_only=True, name="same")
    def two() -> None: ...

    registry = Registry()
    registry.add(one)
    with pytest.raises(ConfigError, match="two tools are named"):
        registry.add(two)


def test_visible_tools_follow_scopes() -> None:
    @tool(read_only=True)
    def r() -> None: ...

    @tool(read_only=False, destructive=True, idempotent=True, scope="admin")
    def a() -> None: ...

    registry = Registry()
    registry.add(r)
    registry.add(a)
    reader = Principal("r", frozenset({"read"}))
    admin = Principal("a", frozenset({"read", "write", "admin"}))
    assert [t.name for t in registry.visible_to(reader)] == ["r"]
    assert [t.name for t in registry.visible_to(admin)] == ["a", "r"]


@pytest.mark.anyio
async def test_timeout_cancels_the_tool() -> None:
    import anyio

    cancelled: list[bool] = []

    @tool(read_only=True, timeout=0.05)
    async def slow() -> None:
        try:
            await anyio.Event().wait()  # nobody sets it: only the tool's timeout ends the call
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise

    built = Registry().add(slow)
    ctx = ToolContext(principal=Principal("p", frozenset({"read"})), tool_name="slow", request_id=1,
                      protocol_version="2025-11-25")
    with anyio.fail_after(5), pytest.raises(ToolTimeout, match="0.05 s timeout"):
        await built.call({}, ctx, default_timeout=10)
    assert cancelled == [True]


def test_tool_options_are_declared_once_and_checked_at_run_time_too() -> None:
    import inspect

    from mcp_platform.registry import ToolOptions, spec_of

    with pytest.raises(TypeError, match="unexpected keyword argument 'readonly'"):
        tool(read_only=True, readonly=True)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="missing required keyword argument: 'read_only'"):
        tool(title="x")  # type: ignore[call-overload]
    # The signature the reference documents is spelled out from `ToolOptions`, with `ToolSpec`'s defaults.
    params = inspect.signature(tool).parameters
    assert list(params) == ["fn", *ToolOptions.__annotations__]
    assert params["read_only"].default is inspect.Parameter.empty and params["read_only"].annotation == "bool"
    defaults = (params["open_world"].default, params["rate_limited"].default, params["scope"].default)
    assert defaults == (False, True, None)

    @tool(read_only=True, rate_limited=False, flag="beta", timeout=2.5, open_world=True)
    def configured() -> None: ...

    spec = spec_of(configured)
    assert spec is not None
    assert (spec.rate_limited, spec.flag, spec.timeout, spec.open_world, spec.input_schema) == (False, "beta", 2.5,
                                                                                                True, None)
