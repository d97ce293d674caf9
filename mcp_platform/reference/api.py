"""Reference text generated from the code itself, for `llms-full.txt`: each tool from its wire definition, the
authoring API from signatures and docstrings, every setting from the `Settings` model and its attribute
docstrings. Everything is sorted and free of timestamps, so the output only changes when the code does.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import to_jsonable_python

from mcp_platform.registry import Tool

__all__ = ["SettingDoc", "api_reference", "setting_docs", "signature", "tool_reference"]


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- tools ------------------------------------------------------------------------------------------------------------


def _bounds(schema: dict[str, Any]) -> str:
    parts = []
    low, high = schema.get("minimum", schema.get("exclusiveMinimum")), schema.get("maximum",
                                                                                     schema.get("exclusiveMaximum"))
    if low is not None or high is not None:
        parts.append(f"{'' if low is None else low}..{'' if high is None else high}")
    if "minLength" in schema or "maxLength" in schema:
        parts.append(f"length {schema.get('minLength', 0)}..{schema.get('maxLength', '')}")
    if "format" in schema:
        parts.append(str(schema["format"]))
    if "pattern" in schema:
        parts.append(f"pattern {schema['pattern']}")
    return ", ".join(parts)


def schema_type(schema: Any, defs: dict[str, Any]) -> str:
    """A short, readable type for a JSON Schema: `integer`, `array of string`, `"a" | "b"`, `Order (object)`."""
    if not isinstance(schema, dict) or not schema:
        return "any"
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        target = defs.get(name)
        kind = target.get("type") if isinstance(target, dict) else None
        if isinstance(target, dict) and "enum" in target:
            return " | ".join(json.dumps(v) for v in target["enum"])
        return f"{name} ({kind})" if isinstance(kind, str) else name
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return " | ".join(dict.fromkeys(schema_type(s, defs) for s in schema[key]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind == "array":
        items = schema.get("items")
        return f"array of {schema_type(items, defs)}" if isinstance(items, dict) and items else "array"
    return str(kind) if kind else "any"


def example_value(name: str, schema: Any) -> Any:
    """A plausible value for an argument in an example call (placeholders for strings)."""
    if not isinstance(schema, dict):
        return f"<{name}>"
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("default") is not None:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        branches = [s for s in schema.get(key, []) if isinstance(s, dict) and s.get("type") != "null"]
        if branches:
            return example_value(name, branches[0])
    kind = schema.get("type")
    minimum = schema.get("minimum")
    return {"integer": minimum if isinstance(minimum, int) else 1, "number": minimum if minimum is not None else 1,
            "boolean": True, "array": [], "object": {}}.get(str(kind), f"<{name}>")


def _argument(name: str, schema: dict[str, Any], required: bool, defs: dict[str, Any]) -> str:
    facts = [schema_type(schema, defs)]
    if bounds := _bounds(schema):
        facts.append(bounds)
    facts.append("required" if required else f"default {json.dumps(schema.get('default'))}")
    description = schema.get("description")
    return f"- `{name}` ({', '.join(facts)})" + (f": {_one_line(str(description))}" if description else "")


def tool_reference(tool: Tool, source: str) -> list[str]:
    """The section for one tool: description, scope, annotations, arguments, result fields and an example call."""
    spec, definition = tool.spec, tool.definition
    schema = tool.input_schema
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    hints = definition["annotations"]
    scope_note = " (tokens with a lower scope do not see it)" if spec.scope != "read" else ""
    lines = [f"### {tool.name}", "", spec.description.strip(), "", f"- title: {spec.title}",
             f"- scope: `{spec.scope}`{scope_note}",
             "- annotations: " + ", ".join(f"{key}={json.dumps(hints[key])}" for key in
                                           ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")),
             f"- source: `{source}`"]
    if spec.timeout is not None:
        lines.append(f"- timeout: {spec.timeout:g} s")
    properties = schema.get("properties", {})
    lines += ["", "Arguments:" if properties else "Arguments: none."]
    lines += [_argument(name, prop, name in required, defs) for name, prop in properties.items()
              if isinstance(prop, dict)]
    output = tool.output_schema or {}
    out_defs = output.get("$defs", {})
    fields = output.get("properties", {})
    if fields:
        lines += ["", "Returns (structuredContent): " + ", ".join(
            f"`{name}` ({schema_type(prop, out_defs)})" for name, prop in fields.items())]
    arguments = {name: example_value(name, prop) for name, prop in properties.items() if name in required}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool.name, "arguments": arguments}}
    lines += ["", "Example:", "", "```json", json.dumps(call), "```", ""]
    return lines


# -- the authoring API ---------------------------------------------------------------------------------------------


def _annotation(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def signature(fn: Callable[..., Any]) -> str:
    """`fn`'s signature as source would spell it (annotations stay as written, `self` left out)."""
    sig = inspect.signature(fn)
    parts: list[str] = []
    keyword_only = False
    for param in sig.parameters.values():
        if param.name == "self":
            continue
        if param.kind is param.KEYWORD_ONLY and not keyword_only:
            parts.append("*")
            keyword_only = True
        text = param.name
        if param.annotation is not param.empty:
            text += f": {_annotation(param.annotation)}"
        if param.default is not param.empty:
            text += f" = {param.default!r}"
        parts.append(text)
    returns = "" if sig.return_annotation is sig.empty else f" -> {_annotation(sig.return_annotation)}"
    return f"({', '.join(parts)}){returns}"


def _doc(obj: Any) -> str:
    return inspect.cleandoc(inspect.getdoc(obj) or "")


def api_reference(decorators: dict[str, Callable[..., Any]], context: type, extra: list[type]) -> list[str]:
    """Decorators with their signatures and docstrings; the context class's attributes and methods; then any
    further classes, each with its docstring."""
    lines: list[str] = []
    for name, fn in sorted(decorators.items()):
        lines += [f"### `@{name}`", "", "```python", f"{name}{signature(fn)}", "```", "", _doc(fn), ""]
    lines += [f"### `{context.__name__}`", "", _doc(context), "", "Attributes:", ""]
    slots: tuple[str, ...] = getattr(context, "__slots__", ())
    attributes = sorted({name for name in slots if not name.startswith("_")} |
                        {name for name, value in vars(context).items() if isinstance(value, property)})
    for name in attributes:
        member = vars(context).get(name)
        doc = _one_line(_doc(member)) if isinstance(member, property) else ""
        lines.append(f"- `ctx.{name}`" + (f": {doc}" if doc else ""))
    lines += ["", "Methods:", ""]
    for name, member in sorted(vars(context).items()):
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        prefix = "await " if inspect.iscoroutinefunction(member) else ""
        doc = _one_line(_doc(member))
        lines.append(f"- `{prefix}ctx.{name}{signature(member)}`" + (f": {doc}" if doc else ""))
    lines.append("")
    for cls in extra:
        lines += [f"### `{cls.__name__}`", "", _doc(cls), ""]
    return lines


# -- settings ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettingDoc:
    path: str
    """Dotted, e.g. `http.port`; `<name>` stands for a key the user chooses (`flags.<name>.default`)."""
    type: str
    default: str
    env: str
    doc: str
    constraints: str = ""


def attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """Docstrings written under each field (the litestar style this project uses), from the class source."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls.__module__.startswith("pydantic"):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = _one_line(after.value.value)
    return docs


_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path", SecretStr: "secret",
          type(None): "unset"}


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"table of {type_name(args[0])} -> {type_name(args[1])}" if args else "table"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _constraints(metadata: list[Any]) -> str:
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "min length", "max_length": "max length"}
    found = []
    for item in metadata:
        for attr, symbol in symbols.items():
            value = getattr(item, attr, None)
            if value is not None:
                found.append(f"{symbol} {value}")
    return ", ".join(found)


def setting_docs(model: type[BaseModel], prefix: str = "", env: str = "MCP_PLATFORM_") -> Iterator[SettingDoc]:
    """Every setting of `model`, nested sections flattened to dotted paths, in declaration order."""
    docs = attribute_docs(model)
    for name, field in model.model_fields.items():
        annotation = field.annotation
        path, env_name = f"{prefix}{name}", f"{env}{name.upper()}"
        doc = docs.get(name, "")
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from setting_docs(annotation, f"{path}.", f"{env_name}__")
            continue
        default = "required" if field.is_required() else field.get_default(call_default_factory=True)
        shown = "unset" if default is None else json.dumps(to_jsonable_python(default))
        yield SettingDoc(path, type_name(annotation), shown, env_name, doc, _constraints(field.metadata))
        values = typing.get_args(annotation)[1:] if typing.get_origin(annotation) is dict else ()
        if values and isinstance(values[0], type) and issubclass(values[0], BaseModel):
            yield from setting_docs(values[0], f"{path}.<name>.", f"{env_name}__<NAME>__")
