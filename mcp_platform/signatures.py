"""One reading of a decorated function, shared by `@tool`, `@prompt` and `@resource`.

`inspect_function` resolves the type hints with `typing.get_type_hints` (so postponed and string annotations,
`Annotated[...]` and qualified names such as `mp.ToolContext` all resolve alike), finds the context parameter by its
resolved type, and builds once the pydantic model that validates every other parameter. `parse_docstring` reads a
Google-style docstring the same way for all three decorators.

The context parameter is the one annotated `ToolContext`, `Annotated[ToolContext, ...]`, or either of those with
`| None` (the decorators always pass a context, so `ctx: ToolContext | None = None` keeps a function callable in
tests without one). It is found by type only: a parameter named `ctx` with another annotation is an argument.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticSerializationError, to_json

from mcp_platform.context import ToolContext
from mcp_platform.errors import ConfigError

__all__ = ["NAME_PATTERN", "Docstring", "Signature", "explain", "inspect_function", "is_context", "parse_docstring"]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
"""SEP-986 names, for tools and prompts: 1-128 characters of letters, digits, `_`, `.` and `-`."""


@dataclass(frozen=True, slots=True)
class Docstring:
    description: str
    """Everything before the first section (`Args:`, `Returns:`, ...), dedented and stripped."""
    arguments: dict[str, str]
    """Per-argument descriptions from the `Args:` (or `Arguments:`, `Parameters:`, `Keyword Args:`) section."""

    @property
    def summary(self) -> str:
        """The description's first paragraph."""
        return self.description.split("\n\n", 1)[0].strip()


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments):\s*$")
_ARG_LINE = re.compile(r"^\s+(\*{0,2}\w+)(?:\s*\([^)]*\))?:\s*(.*)$")
_SECTION = re.compile(r"^\s*(Returns?|Raises|Yields?|Examples?|Notes?|Warnings?|Attributes|See Also|Todo|"
                      r"References):\s*$")


def parse_docstring(doc: str | None) -> Docstring:
    """Split a Google-style docstring into its description and per-argument descriptions. An argument's
    description may continue on further lines indented deeper than its name."""
    if not doc:
        return Docstring("", {})
    description: list[str] = []
    args: dict[str, str] = {}
    current: str | None = None
    state = "description"
    for line in inspect.cleandoc(doc).splitlines():
        if _ARGS_HEADER.match(line):
            state = "args"
            continue
        if _SECTION.match(line):
            state = "other"
            continue
        if state == "description":
            description.append(line)
        elif state == "args":
            match = _ARG_LINE.match(line if line.startswith(" ") else "    " + line)
            if match and not line.startswith("        "):
                current = match.group(1)
                args[current] = match.group(2).strip()
            elif current and line.strip():
                args[current] = f"{args[current]} {line.strip()}".strip()
    return Docstring("\n".join(description).strip(), args)


def is_context(annotation: Any) -> bool:
    """Whether a resolved annotation asks for the `ToolContext`: itself, `Annotated[...]` around it, or `| None`."""
    if get_origin(annotation) is Annotated:
        return is_context(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return len(members) == 1 and is_context(members[0])
    return annotation is ToolContext


@dataclass(frozen=True, slots=True)
class Signature:
    """What a decorated function takes: the parameter that receives the context, and a model for the rest."""

    context: str | None
    """The parameter that receives the `ToolContext`, if the function asks for one."""
    model: type[BaseModel]
    """Validates the other parameters (extra keys refused); built once."""
    names: tuple[str, ...]
    """The validated parameters, in declaration order."""
    returns: Any
    """The resolved return annotation (`Any` when there is none)."""
    docstring: Docstring
    strict: bool = False
    """Take each value only in the JSON type the schema states (tool arguments); otherwise pydantic's lax mode
    (prompt arguments and URI template variables are strings on the wire, so they are converted)."""

    def validate(self, values: dict[str, Any]) -> dict[str, Any]:
        """Validated keyword arguments (without the context), or `ValidationError`."""
        if not self.strict:
            model = self.model.model_validate(values)
        else:
            try:
                # Values decoded from JSON that pass strict Python validation pass strict JSON validation with the
                # same result, so the common case costs one validation.
                model = self.model.model_validate(values, strict=True)
            except ValidationError as exc:
                # Strict Python mode also refuses what JSON can only spell as a string or an array (a datetime, an
                # enum's value, a UUID, a tuple): strict JSON mode takes those, and still refuses true for an
                # integer or "1" for a number. Re-encoding costs only on this path.
                try:
                    text = to_json(values)
                except PydanticSerializationError:  # not from JSON (a direct Python caller): the first answer
                    raise exc from None
                model = self.model.model_validate_json(text, strict=True)
        return {name: getattr(model, name) for name in self.names}

    def required(self, name: str) -> bool:
        return self.model.model_fields[name].is_required()

    def description(self, name: str) -> str | None:
        return self.model.model_fields[name].description

    def json_schema(self) -> dict[str, Any]:
        """The model's JSON schema as MCP advertises it: an object, without pydantic's generated titles."""
        schema = self.model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        return schema


def inspect_function(fn: Callable[..., Any], kind: str, name: str, *, strict: bool = False) -> Signature:
    """Read `fn` once: `kind` and `name` (`"tool"`, `"add"`) name it in errors and in the model's title; `strict`
    makes `Signature.validate` take only the JSON types the schema states.

    Raises `ConfigError` when a hint cannot be resolved, for `*args`/`**kwargs`, positional-only parameters,
    names starting with `_`, two context parameters, or a parameter type pydantic cannot validate.
    """
    what = f"{kind} {name}"
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ConfigError(f"{what}: cannot resolve its type hints: {exc}") from exc
    docstring = parse_docstring(fn.__doc__)
    fields: dict[str, Any] = {}
    context: str | None = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"{what}: *args and **kwargs cannot be described to a model")
        annotation = hints.get(param.name, Any)
        if is_context(annotation):
            if context is not None:
                raise ConfigError(f"{what}: two parameters ask for the ToolContext ({context}, {param.name})")
            context = param.name
            continue
        if param.kind is param.POSITIONAL_ONLY:
            raise ConfigError(f"{what}: arguments are passed by name, so {param.name} cannot be positional-only")
        if param.name.startswith("_"):
            raise ConfigError(f"{what}: argument names may not start with '_' ({param.name})")
        default = ... if param.default is inspect.Parameter.empty else param.default
        doc = docstring.arguments.get(param.name)
        if isinstance(default, FieldInfo) or not doc:
            fields[param.name] = (annotation, default)
        else:
            fields[param.name] = (annotation, Field(default, description=doc))
    suffix = "variables" if kind == "resource" else "arguments"
    try:
        model = create_model(f"{name}_{suffix}", __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
                             **fields)
    except Exception as exc:
        raise ConfigError(f"{what}: its parameters cannot be validated: {exc}") from exc
    return Signature(context, model, tuple(fields), hints.get("return", Any), docstring, strict)


# A strict type error says which JSON type the schema wants and which one came (never the value itself).
_EXPECTED = {
    "int_type": "an integer", "bool_type": "a boolean (true or false)", "string_type": "a string",
    "float_type": "a number", "dict_type": "an object", "model_type": "an object", "list_type": "an array",
    "tuple_type": "an array", "set_type": "an array", "frozen_set_type": "an array",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
                       (list, "an array"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def explain(exc: ValidationError, limit: int = 10) -> str:
    """`where: what` for each problem (at most `limit`); never the offending value, which may be huge or secret,
    only its JSON type when the type is what is wrong."""
    problems = []
    for err in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(part) for part in err["loc"]) or "arguments"
        if err["type"] == "extra_forbidden":
            message = "unexpected argument"
        elif (expected := _EXPECTED.get(err["type"])) is not None:
            message = f"expected {expected}, got {_json_type(err.get('input'))}"
        else:
            message = err["msg"]
        problems.append(f"{where}: {message}")
    more = "" if exc.error_count() <= limit else f" (and {exc.error_count() - limit} more)"
    return "; ".join(problems) + more
