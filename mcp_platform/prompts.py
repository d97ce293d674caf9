"""Prompts: `@prompt` functions in tool modules, listed by `prompts/list` and rendered by `prompts/get`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from mcp_platform.context import ToolContext
from mcp_platform.errors import ConfigError, InvalidParams
from mcp_platform.signatures import NAME_PATTERN, Signature, explain, inspect_function

__all__ = ["PromptSpec", "Prompts", "prompt", "spec_of_prompt"]

_SPEC_ATTR = "__mcp_platform_prompt__"


@dataclass(frozen=True, slots=True)
class PromptSpec:
    name: str
    title: str | None
    description: str | None
    arguments: tuple[dict[str, Any], ...]
    fn: Callable[..., Any]
    completions: dict[str, Callable[[str], list[str]]]
    signature: Signature
    """The function read once by the shared inspection: its context parameter and its arguments' model."""

    @property
    def context_param(self) -> str | None:
        return self.signature.context

    def definition(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "arguments": list(self.arguments)}
        if self.title:
            entry["title"] = self.title
        if self.description:
            entry["description"] = self.description
        return entry


def prompt(
    name: str | None = None, *, title: str | None = None, description: str | None = None,
    completions: dict[str, Callable[[str], list[str]]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a function as a prompt. Its parameters are the prompt's arguments (required unless they have a
    default); clients send strings, validated against the type hints like a tool's arguments. A parameter
    annotated `ToolContext` receives the request context instead. It returns a string (one user message) or a
    list of `{"role", "content"}` messages. `completions` maps an argument to a function suggesting values for a
    typed prefix."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        prompt_name = name or fn.__name__
        if not NAME_PATTERN.fullmatch(prompt_name):
            raise ConfigError(f"prompt name {prompt_name!r} must be 1-128 characters of A-Z a-z 0-9 _ . -")
        signature = inspect_function(fn, "prompt", prompt_name)
        arguments = []
        for arg_name in signature.names:
            arg: dict[str, Any] = {"name": arg_name, "required": signature.required(arg_name)}
            if (doc := signature.description(arg_name)) is not None:
                arg["description"] = doc
            arguments.append(arg)
        setattr(fn, _SPEC_ATTR, PromptSpec(prompt_name, title, description or signature.docstring.description or None,
                                           tuple(arguments), fn, dict(completions or {}), signature))
        return fn

    return mark


def spec_of_prompt(obj: object) -> PromptSpec | None:
    spec = getattr(obj, _SPEC_ATTR, None)
    return spec if isinstance(spec, PromptSpec) else None


class Prompts:
    def __init__(self) -> None:
        self._items: dict[str, PromptSpec] = {}

    def add(self, spec: PromptSpec) -> None:
        if spec.name in self._items and self._items[spec.name].fn is not spec.fn:
            raise ConfigError(f"two prompts are named {spec.name!r}")
        self._items[spec.name] = spec

    def __bool__(self) -> bool:
        return bool(self._items)

    def replace(self, specs: list[PromptSpec]) -> bool:
        """Make the prompts exactly `specs` (a reload re-scanned the tool folders); True when clients see a change."""
        before = {name: spec.definition() for name, spec in self._items.items()}
        self._items = {}
        for spec in specs:
            self.add(spec)
        return before != {name: spec.definition() for name, spec in self._items.items()}

    def all(self) -> list[PromptSpec]:
        return [self._items[name] for name in sorted(self._items)]

    def get(self, name: str) -> PromptSpec | None:
        return self._items.get(name)

    async def render(self, name: str, arguments: dict[str, Any], ctx: ToolContext | None = None) -> dict[str, Any]:
        spec = self._items.get(name)
        if spec is None:
            raise InvalidParams(f"Invalid params: unknown prompt {name!r}; prompts: {', '.join(sorted(self._items))}")
        known = {arg["name"] for arg in spec.arguments}
        missing = [arg["name"] for arg in spec.arguments if arg["required"] and arg["name"] not in arguments]
        unknown = sorted(set(arguments) - known)
        if missing or unknown:
            raise InvalidParams(f"Invalid params for prompt {name}: "
                                + "; ".join([f"missing argument {m!r}" for m in missing]
                                            + [f"unexpected argument {u!r}" for u in unknown]))
        if not all(isinstance(value, str) for value in arguments.values()):
            raise InvalidParams(f"Invalid params for prompt {name}: argument values must be strings")
        try:
            kwargs = spec.signature.validate(arguments)
        except ValidationError as exc:
            raise InvalidParams(f"Invalid params for prompt {name}: {explain(exc)}") from None
        if spec.signature.context is not None:
            kwargs[spec.signature.context] = ctx
        value = spec.fn(**kwargs)
        if inspect.isawaitable(value):
            value = await value
        if isinstance(value, str):
            messages = [{"role": "user", "content": {"type": "text", "text": value}}]
        else:
            messages = list(value)
        result: dict[str, Any] = {"messages": messages}
        if spec.description:
            result["description"] = spec.description
        return result
