"""Tools: the `@tool` decorator, and the registry that turns decorated functions into MCP tools.

Everything a call needs (argument validator, schemas, the `tools/list` entry) is built once, when the tool is
added; a call only validates, runs and serialises.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints, overload

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo

from mcp_platform.auth_types import SCOPES, Principal
from mcp_platform.context import ToolContext
from mcp_platform.errors import ConfigError, ToolTimeout
from mcp_platform.results import ToolResult, error_result

__all__ = ["TOOL_NAME_PATTERN", "Registry", "Tool", "ToolSpec", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
"""SEP-986: 1-128 characters of letters, digits, `_`, `.` and `-`."""

_SPEC_ATTR = "__mcp_platform_tool__"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What `@tool` records on a function. The registry builds a `Tool` from it."""

    fn: Callable[..., Any]
    name: str
    title: str
    description: str
    scope: str
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool
    timeout: float | None
    input_schema: dict[str, Any] | None = None
    rate_limited: bool = True
    flag: str | None = None


@overload
def tool(
    fn: F,
    *,
    read_only: bool,
    destructive: bool | None = None,
    idempotent: bool | None = None,
    open_world: bool = False,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    timeout: float | None = None,
    input_schema: dict[str, Any] | None = None,
    rate_limited: bool = True,
    flag: str | None = None,
) -> F: ...


@overload
def tool(
    fn: None = None,
    *,
    read_only: bool,
    destructive: bool | None = None,
    idempotent: bool | None = None,
    open_world: bool = False,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    timeout: float | None = None,
    input_schema: dict[str, Any] | None = None,
    rate_limited: bool = True,
    flag: str | None = None,
) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None,
    *,
    read_only: bool,
    destructive: bool | None = None,
    idempotent: bool | None = None,
    open_world: bool = False,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    timeout: float | None = None,
    input_schema: dict[str, Any] | None = None,
    rate_limited: bool = True,
    flag: str | None = None,
) -> Any:
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

    def mark(func: F) -> F:
        if read_only:
            is_destructive, is_idempotent = False, True
            if destructive:
                raise ConfigError(f"tool {func.__qualname__}: a read-only tool cannot be destructive")
        else:
            if destructive is None or idempotent is None:
                raise ConfigError(
                    f"tool {func.__qualname__}: a tool that is not read_only must state destructive= and idempotent="
                )
            is_destructive, is_idempotent = destructive, idempotent
        tool_name = name or func.__name__
        if not TOOL_NAME_PATTERN.fullmatch(tool_name):
            raise ConfigError(f"tool name {tool_name!r} must be 1-128 characters of A-Z a-z 0-9 _ . -")
        tool_scope = scope or ("read" if read_only else "write")
        if tool_scope not in SCOPES:
            raise ConfigError(f"tool {tool_name}: scope must be one of {', '.join(SCOPES)}, not {tool_scope!r}")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"tool {tool_name}: timeout must be positive")
        summary, _ = _parse_docstring(func.__doc__)
        spec = ToolSpec(
            fn=func,
            name=tool_name,
            title=title or tool_name.replace("_", " ").capitalize(),
            description=description or summary or tool_name,
            scope=tool_scope,
            read_only=read_only,
            destructive=is_destructive,
            idempotent=is_idempotent,
            open_world=open_world,
            timeout=timeout,
            input_schema=input_schema,
            rate_limited=rate_limited,
            flag=flag,
        )
        setattr(func, _SPEC_ATTR, spec)
        return func

    return mark(fn) if fn is not None else mark


def spec_of(obj: object) -> ToolSpec | None:
    """The `ToolSpec` that `@tool` attached to `obj`, if any."""
    spec = getattr(obj, _SPEC_ATTR, None)
    return spec if isinstance(spec, ToolSpec) else None


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s+(\*{0,2}\w+)(?:\s*\([^)]*\))?:\s*(.*)$")
_SECTION = re.compile(r"^\s*(Returns|Raises|Yields|Examples?|Notes?):\s*$")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and per-argument descriptions."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    current: str | None = None
    state = "summary"
    for line in lines:
        if _ARGS_HEADER.match(line):
            state = "args"
            continue
        if _SECTION.match(line):
            state = "other"
            continue
        if state == "summary":
            summary.append(line)
        elif state == "args":
            match = _ARG_LINE.match("    " + line if not line.startswith(" ") else line)
            if match and not line.startswith("        "):
                current = match.group(1)
                args[current] = match.group(2).strip()
            elif current and line.strip():
                args[current] = f"{args[current]} {line.strip()}"
    return "\n".join(summary).strip(), args


def _is_context(annotation: Any) -> bool:
    return annotation is ToolContext or (typing.get_origin(annotation) is typing.Annotated
                                          and typing.get_args(annotation)[0] is ToolContext)


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

    __slots__ = ("_arg_names", "_context_param", "_input", "_is_async", "_output", "_wrap_output", "definition",
                 "fn", "input_schema", "output_schema", "spec")

    def __init__(self, spec: ToolSpec) -> None:
        self.spec = spec
        fn = spec.fn
        self.fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        try:
            hints = get_type_hints(fn, include_extras=True)
        except Exception as exc:
            raise ConfigError(f"tool {spec.name}: cannot resolve its type hints: {exc}") from exc
        _, arg_docs = _parse_docstring(fn.__doc__)
        fields: dict[str, Any] = {}
        self._context_param: str | None = None
        for param in inspect.signature(fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigError(f"tool {spec.name}: *args and **kwargs cannot be described to a model")
            annotation = hints.get(param.name, Any)
            if _is_context(annotation):
                self._context_param = param.name
                continue
            if param.name.startswith("_"):
                raise ConfigError(f"tool {spec.name}: argument names may not start with '_' ({param.name})")
            default = ... if param.default is inspect.Parameter.empty else param.default
            doc = arg_docs.get(param.name)
            if isinstance(default, FieldInfo) or not doc:
                fields[param.name] = (annotation, default)
            else:
                fields[param.name] = (annotation, Field(default, description=doc))
        model = create_model(
            f"{spec.name}_arguments", __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False), **fields
        )
        self._arg_names = tuple(fields)
        self._input: type[BaseModel] = model
        schema = model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        if spec.input_schema is not None:
            if spec.input_schema.get("type") != "object":
                raise ConfigError(f"tool {spec.name}: input_schema must have type 'object' at its root")
            schema = spec.input_schema
        self.input_schema: dict[str, Any] = schema

        returns = hints.get("return", Any)
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
        model = self._input.model_validate(arguments)
        return {name: getattr(model, name) for name in self._arg_names}

    async def call(self, arguments: dict[str, Any], ctx: ToolContext, default_timeout: float) -> ToolResult:
        """Run the tool. Invalid arguments come back as an `isError` result; `ToolError`, `ToolTimeout` and any
        other exception propagate, so the dispatcher can record the outcome and log unexpected failures."""
        try:
            kwargs = self.validate(arguments)
        except ValidationError as exc:
            return error_result(_explain_validation(self.spec.name, exc))
        if self._context_param is not None:
            kwargs[self._context_param] = ctx
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


def _explain_validation(tool_name: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False, include_input=False)[:10]:
        where = ".".join(str(part) for part in err["loc"]) or "arguments"
        message = "unexpected argument" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{where}: {message}")
    more = "" if exc.error_count() <= 10 else f" (and {exc.error_count() - 10} more)"
    return f"Invalid arguments for tool {tool_name}: " + "; ".join(problems) + more


class Registry:
    """Tools by name, listed in a stable order and filtered by the caller's scopes and by feature flags.

    `on_change` callbacks run (in order, awaited by whoever changed the set) whenever what clients see changes:
    a tool added, removed or redefined, or a flag that gates a tool flipped.
    """

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._discovered: set[str] = set()
        self._listing: dict[tuple[frozenset[str], tuple[bool, ...]], list[Tool]] = {}
        self._gating: tuple[str, ...] | None = None
        self.flag_reader: Callable[[str], bool] = lambda _name: True
        self.on_change: list[Callable[[], Awaitable[None]]] = []

    def add(self, spec_or_fn: ToolSpec | Callable[..., Any], *, discovered: bool = False) -> Tool:
        spec = spec_or_fn if isinstance(spec_or_fn, ToolSpec) else spec_of(spec_or_fn)
        if spec is None:
            raise ConfigError(f"{spec_or_fn!r} is not decorated with @tool")
        if spec.name in self._tools and self._tools[spec.name].fn is not spec.fn:
            raise ConfigError(f"two tools are named {spec.name!r}")
        built = Tool(spec)
        self._tools[spec.name] = built
        if discovered:
            self._discovered.add(spec.name)
        self._listing.clear()
        self._gating = None
        return built

    def add_all(self, objects: Iterable[object]) -> list[Tool]:
        return [self.add(spec) for obj in objects if (spec := spec_of(obj)) is not None]

    def remove(self, name: str) -> None:
        self._tools.pop(name, None)
        self._discovered.discard(name)
        self._listing.clear()
        self._gating = None

    def sync_discovered(self, specs: Iterable[ToolSpec]) -> tuple[bool, dict[str, str]]:
        """Make the discovered tools exactly `specs` (after a reload re-scanned the tool folders); built-in tools
        are untouched. Returns whether the visible set changed, and tools that could not be added."""
        failures: dict[str, str] = {}
        before = {name: self._tools[name].definition for name in self._discovered}
        incoming = {spec.name: spec for spec in specs}
        for name in list(self._discovered):
            if name not in incoming:
                self.remove(name)
        for name, spec in incoming.items():
            current = self._tools.get(name)
            if current is not None and name not in self._discovered:
                failures[name] = f"a built-in tool is already named {name!r}"
                continue
            if current is not None and current.fn is spec.fn:
                continue
            self._tools.pop(name, None)
            try:
                self.add(spec, discovered=True)
            except ConfigError as exc:
                failures[name] = str(exc)
        after = {name: self._tools[name].definition for name in self._discovered}
        self._listing.clear()
        self._gating = None
        return before != after, failures

    async def changed(self) -> None:
        """Tell listeners the tool list changed (callers: after a sync, or when a gating flag flipped)."""
        self._listing.clear()
        self._gating = None
        for callback in self.on_change:
            await callback()

    def gating_flags(self) -> tuple[str, ...]:
        """The flags that gate some tool, sorted; recomputed only when the tool set changes."""
        if self._gating is None:
            self._gating = tuple(sorted({t.spec.flag for t in self._tools.values() if t.spec.flag is not None}))
        return self._gating

    def get(self, name: str) -> Tool | None:
        """The tool if it exists and its flag (if any) is on."""
        found = self._tools.get(name)
        if found is not None and found.spec.flag is not None and not self.flag_reader(found.spec.flag):
            return None
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def all(self) -> list[Tool]:
        return [self._tools[name] for name in sorted(self._tools)]

    def visible_to(self, principal: Principal) -> list[Tool]:
        """Tools `principal` may call, sorted by name; cached per scope set and flag state (it is on every
        tools/list)."""
        flags = self.gating_flags()
        state = tuple(self.flag_reader(flag) for flag in flags)
        key = (principal.scopes, state)
        cached = self._listing.get(key)
        if cached is None:
            enabled = {flag for flag, on in zip(flags, state, strict=True) if on}
            cached = [t for t in self.all() if principal.allows(t.spec.scope)
                      and (t.spec.flag is None or t.spec.flag in enabled)]
            self._listing[key] = cached
        return cached
