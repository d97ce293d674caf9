"""Tools: the `@tool` decorator, and the registry that turns decorated functions into MCP tools.

Everything a call needs (argument validator, schemas, the `tools/list` entry) is built once, when the tool is
added; a call only validates, runs and serialises.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Required, TypedDict, TypeVar, Unpack, overload

import anyio
import anyio.to_thread
from pydantic import BaseModel, TypeAdapter, ValidationError

from mcp_platform.auth_types import SCOPES
from mcp_platform.context import ToolContext
from mcp_platform.errors import ConfigError, ToolTimeout
from mcp_platform.results import ToolResult, error_result
from mcp_platform.signatures import NAME_PATTERN, explain, inspect_function, parse_docstring

__all__ = ["TOOL_NAME_PATTERN", "Tool", "ToolOptions", "ToolSpec", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

TOOL_NAME_PATTERN = NAME_PATTERN

_SPEC_ATTR = "__mcp_platform_tool__"


class ToolOptions(TypedDict, total=False):
    """The keywords `@tool` takes, declared once: the decorator's overloads and implementation unpack this, so
    type checkers check every keyword at the call site. `ToolSpec` holds them resolved, with their defaults."""

    read_only: Required[bool]
    destructive: bool | None
    idempotent: bool | None
    open_world: bool
    name: str | None
    title: str | None
    description: str | None
    scope: str | None
    timeout: float | None
    input_schema: dict[str, Any] | None
    rate_limited: bool
    flag: str | None


# Each option's annotation as written. (Python 3.11 cannot see `Required[...]` through postponed annotations, so
# `__required_keys__` is empty: the text says which options are required.)
_OPTIONS = {key: str(getattr(hint, "__forward_arg__", hint)) for key, hint in ToolOptions.__annotations__.items()}
_REQUIRED = frozenset(key for key, text in _OPTIONS.items() if text.startswith("Required["))


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What `@tool` records on a function: its options resolved (the fields with defaults hold the options taken
    as given, and are those options' defaults). The registry builds a `Tool` from it."""

    fn: Callable[..., Any]
    name: str
    title: str
    description: str
    scope: str
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool = False
    timeout: float | None = None
    input_schema: dict[str, Any] | None = None
    rate_limited: bool = True
    flag: str | None = None

    @classmethod
    def of(cls, fn: Callable[..., Any], options: ToolOptions) -> ToolSpec:
        """Apply the defaults and check the rules (`ConfigError` naming the tool when one is broken)."""
        read_only, destructive, idempotent = options["read_only"], options.get("destructive"), options.get("idempotent")
        if read_only:
            if destructive:
                raise ConfigError(f"tool {fn.__qualname__}: a read-only tool cannot be destructive")
            destructive, idempotent = False, True
        elif destructive is None or idempotent is None:
            raise ConfigError(
                f"tool {fn.__qualname__}: a tool that is not read_only must state destructive= and idempotent="
            )
        name = options.get("name") or fn.__name__
        if not TOOL_NAME_PATTERN.fullmatch(name):
            raise ConfigError(f"tool name {name!r} must be 1-128 characters of A-Z a-z 0-9 _ . -")
        scope = options.get("scope") or ("read" if read_only else "write")
        if scope not in SCOPES:
            raise ConfigError(f"tool {name}: scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        if (timeout := options.get("timeout")) is not None and timeout <= 0:
            raise ConfigError(f"tool {name}: timeout must be positive")
        as_given: dict[str, Any] = {key: value for key, value in options.items() if key in _AS_GIVEN}
        return cls(fn=fn, name=name, title=options.get("title") or name.replace("_", " ").capitalize(),
                   description=options.get("description") or parse_docstring(fn.__doc__).description or name,
                   scope=scope, read_only=read_only, destructive=destructive, idempotent=idempotent, **as_given)


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ToolSpec) if f.default is not dataclasses.MISSING}
_AS_GIVEN = frozenset(_DEFAULTS)


@overload
def tool(fn: F, **options: Unpack[ToolOptions]) -> F: ...


@overload
def tool(fn: None = None, **options: Unpack[ToolOptions]) -> Callable[[F], F]: ...


def tool(fn: F | None = None, **options: Unpack[ToolOptions]) -> Any:
    """Mark a function as an MCP tool. The function is returned unchanged, so it stays callable in tests.

    `read_only` must always be given; a tool that writes must also say whether it is `destructive` and
    `idempotent`, so that no tool is destructive by accident. `scope` defaults to `read` for read-only tools
    and `write` otherwise. `timeout` (seconds) overrides the server's default. `input_schema` replaces the
    advertised schema with a hand-written one (kept verbatim, e.g. for JSON Schema 2020-12 keywords that type
    hints cannot express); arguments are still validated against the function's signature. `rate_limited=False`
    exempts calls from the per-token request budget (for tools that report that budget: asking must be free).
    `flag` names a feature flag: the tool is listed and callable only while that flag is on, and clients are told
    when the tool list changes.
    """
    # Type checkers enforce these through `ToolOptions`; untyped callers get the errors Python would give.
    if unknown := sorted(set(options) - set(_OPTIONS)):
        raise TypeError(f"tool() got an unexpected keyword argument {unknown[0]!r}")
    if missing := sorted(_REQUIRED - set(options)):
        raise TypeError(f"tool() missing required keyword argument: {missing[0]!r}")

    def mark(func: F) -> F:
        setattr(func, _SPEC_ATTR, ToolSpec.of(func, options))
        return func

    return mark(fn) if fn is not None else mark


def _spelled_out() -> inspect.Signature:
    """`tool`'s signature with every option written out as a keyword with its default, for `inspect.signature`
    and so for the generated reference (`**options: Unpack[ToolOptions]` tells a reader nothing)."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("fn", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation="F | None")]
    for key, text in _OPTIONS.items():
        if key in _REQUIRED:
            params.append(inspect.Parameter(key, keyword, annotation=text.removeprefix("Required[")[:-1]))
        else:
            params.append(inspect.Parameter(key, keyword, default=_DEFAULTS.get(key), annotation=text))
    return inspect.Signature(params, return_annotation="Any")


tool.__signature__ = _spelled_out()  # type: ignore[attr-defined]


def spec_of(obj: object) -> ToolSpec | None:
    """The `ToolSpec` that `@tool` attached to `obj`, if any."""
    spec = getattr(obj, _SPEC_ATTR, None)
    return spec if isinstance(spec, ToolSpec) else None


def _is_object_type(annotation: Any) -> bool:
    """Whether values of `annotation` serialise to a JSON object (so they can be structuredContent as they are)."""
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel) or dataclasses.is_dataclass(annotation):
            return True
        if typing.is_typeddict(annotation):
            return True
        return issubclass(annotation, dict)
    origin = typing.get_origin(annotation)
    return origin is dict


class Tool:
    """A registered tool: its wire definition and a validated, timed call."""

    __slots__ = ("_is_async", "_output", "_signature", "_wrap_output", "definition", "fn", "input_schema",
                 "output_schema", "spec")

    def __init__(self, spec: ToolSpec) -> None:
        self.spec = spec
        fn = spec.fn
        self.fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        # Built when the tool is registered, not when it is decorated: a tool module may define the models its
        # tools return below the tools themselves.
        # Strict: a model's `true` is not order 1, nor `"0"` the number 0 (tool arguments arrive as JSON, typed).
        signature = inspect_function(fn, "tool", spec.name, strict=True)
        self._signature = signature
        schema = signature.json_schema()
        if spec.input_schema is not None:
            if spec.input_schema.get("type") != "object":
                raise ConfigError(f"tool {spec.name}: input_schema must have type 'object' at its root")
            schema = spec.input_schema
        self.input_schema: dict[str, Any] = schema

        returns = signature.returns
        self._output: TypeAdapter[Any] | None = None
        self._wrap_output = False
        self.output_schema: dict[str, Any] | None = None
        if returns not in (None, type(None), ToolResult, Any):
            self._output = TypeAdapter(returns)
            out_schema = self._output.json_schema(mode="serialization")
            if _is_object_type(returns) and out_schema.get("type") == "object":
                out_schema.pop("title", None)
                self.output_schema = out_schema
            else:
                self._wrap_output = True
                defs = out_schema.pop("$defs", None)
                out_schema.pop("title", None)
                wrapped: dict[str, Any] = {"type": "object", "properties": {"result": out_schema},
                                           "required": ["result"]}
                if defs:
                    wrapped["$defs"] = defs
                self.output_schema = wrapped

        definition: dict[str, Any] = {
            "name": spec.name,
            "title": spec.title,
            "description": spec.description,
            "inputSchema": self.input_schema,
            "annotations": {
                "title": spec.title,
                "readOnlyHint": spec.read_only,
                "destructiveHint": spec.destructive,
                "idempotentHint": spec.idempotent,
                "openWorldHint": spec.open_world,
            },
        }
        if self.output_schema is not None:
            definition["outputSchema"] = self.output_schema
        self.definition = definition

    @property
    def name(self) -> str:
        return self.spec.name

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Validated keyword arguments, or `ValidationError`."""
        return self._signature.validate(arguments)

    async def call(self, arguments: dict[str, Any], ctx: ToolContext, default_timeout: float) -> ToolResult:
        """Run the tool. Invalid arguments come back as an `isError` result; `ToolError`, `ToolTimeout` and any
        other exception propagate, so the dispatcher can record the outcome and log unexpected failures."""
        try:
            kwargs = self._signature.validate(arguments)
        except ValidationError as exc:
            return error_result(f"Invalid arguments for tool {self.spec.name}: {explain(exc)}")
        if self._signature.context is not None:
            kwargs[self._signature.context] = ctx
        limit = self.spec.timeout or default_timeout
        # asyncio.timeout rather than anyio's scope: the same cancellation, at a fraction of the cost per call.
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                if self._is_async:
                    value = await self.fn(**kwargs)
                else:
                    # Sync tools may block (files, CPU): a worker thread keeps the event loop serving others.
                    value = await anyio.to_thread.run_sync(functools.partial(self.fn, **kwargs),
                                                           abandon_on_cancel=True)
        except TimeoutError:
            if deadline.expired():
                raise ToolTimeout(self.spec.name, limit) from None
            raise
        return self.to_result(value)

    def to_result(self, value: Any) -> ToolResult:
        if isinstance(value, ToolResult):
            return value
        if self._output is None:
            if value is None:
                return ToolResult(content=[])
            return ToolResult.text(value if isinstance(value, str) else _json_text(value))
        dumped = self._output.dump_python(value, mode="json")
        if self._wrap_output:
            text = value if isinstance(value, str) else _json_text(dumped)
            return ToolResult(content=[{"type": "text", "text": text}], structured={"result": dumped})
        return ToolResult(content=[{"type": "text", "text": _json_text(dumped)}], structured=dumped)


def _json_text(value: Any) -> str:
    from pydantic_core import to_json

    return to_json(value).decode()
