"""Resources: `@resource` for fixed URIs and URI templates in tool modules, plus providers for whole trees
(static files). `Resources` merges them for `resources/list`, `resources/templates/list` and `resources/read`.
"""

from __future__ import annotations

import base64
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

from pydantic import ValidationError

from mcp_platform.context import ToolContext
from mcp_platform.errors import ConfigError, InvalidParams, ResourceNotFound
from mcp_platform.pagination import decode_cursor, encode_cursor
from mcp_platform.signatures import Signature, explain, inspect_function

__all__ = ["ResourceProvider", "ResourceSpec", "Resources", "resource", "spec_of_resource"]

_SPEC_ATTR = "__mcp_platform_resource__"
_TEMPLATE_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    uri: str
    """A URI, or a URI template with `{name}` variables (each matches one path segment)."""
    name: str
    title: str | None
    description: str | None
    mime_type: str | None
    fn: Callable[..., Any]
    signature: Signature
    """The function read once by the shared inspection: its context parameter and its variables' model."""

    @property
    def is_template(self) -> bool:
        return _TEMPLATE_VAR.search(self.uri) is not None


def resource(
    uri: str, *, name: str | None = None, title: str | None = None, description: str | None = None,
    mime_type: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a function as a resource (or, with `{var}` in `uri`, a template whose variables become arguments).

    Each variable is a parameter of the function, validated against its type hint like a tool's argument (`int`,
    `Literal[...]`, `Annotated[str, Field(pattern=...)]`); a value that does not fit is an invalid-params error
    naming the variable. A parameter annotated `ToolContext` receives the request context. The function returns
    `str` (text), `bytes` (sent base64 as a blob) or a list of MCP content dicts.
    """

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        resource_name = name or fn.__name__
        if "://" not in uri:
            raise ConfigError(f"resource {fn.__qualname__}: {uri!r} is not a URI")
        variables = _TEMPLATE_VAR.findall(uri)
        if len(set(variables)) != len(variables):
            raise ConfigError(f"resource {resource_name}: {uri!r} names a variable twice")
        signature = inspect_function(fn, "resource", resource_name)
        if missing := [v for v in variables if v not in signature.names]:
            raise ConfigError(f"resource {resource_name}: {uri!r} has variables the function does not take: "
                              + ", ".join(missing))
        if unfilled := [p for p in signature.names if signature.required(p) and p not in variables]:
            raise ConfigError(f"resource {resource_name}: parameters without a default must be variables of {uri!r}: "
                              + ", ".join(unfilled))
        setattr(fn, _SPEC_ATTR, ResourceSpec(uri=uri, name=resource_name, title=title,
                                             description=description or signature.docstring.summary or None,
                                             mime_type=mime_type, fn=fn, signature=signature))
        return fn

    return mark


def spec_of_resource(obj: object) -> ResourceSpec | None:
    spec = getattr(obj, _SPEC_ATTR, None)
    return spec if isinstance(spec, ResourceSpec) else None


class ResourceProvider(Protocol):
    """A family of resources under one scheme, listed and read on demand (e.g. every file under the static root)."""

    def templates(self) -> list[dict[str, Any]]: ...

    def handles(self, uri: str) -> bool: ...

    async def list_page(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]: ...

    async def read(self, uri: str) -> list[dict[str, Any]]: ...


def _template_regex(template: str) -> re.Pattern[str]:
    parts = _TEMPLATE_VAR.split(template)
    pattern = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
    return re.compile(f"^{pattern}$")


def _entry(spec: ResourceSpec, key: str) -> dict[str, Any]:
    entry: dict[str, Any] = {key: spec.uri, "name": spec.name}
    if spec.title:
        entry["title"] = spec.title
    if spec.description:
        entry["description"] = spec.description
    if spec.mime_type:
        entry["mimeType"] = spec.mime_type
    return entry


class Resources:
    def __init__(self) -> None:
        self._fixed: dict[str, ResourceSpec] = {}
        self._templates: list[tuple[ResourceSpec, re.Pattern[str]]] = []
        self._providers: list[ResourceProvider] = []

    def add(self, spec: ResourceSpec) -> None:
        if spec.is_template:
            self._templates.append((spec, _template_regex(spec.uri)))
        else:
            self._fixed[spec.uri] = spec

    def replace(self, specs: list[ResourceSpec]) -> bool:
        """Make the decorated resources exactly `specs` (providers stay); True when the listing changed."""
        before = sorted(s.uri for s in [*self._fixed.values(), *(t for t, _ in self._templates)])
        self._fixed, self._templates = {}, []
        for spec in specs:
            self.add(spec)
        return before != sorted(s.uri for s in [*self._fixed.values(), *(t for t, _ in self._templates)])

    def add_provider(self, provider: ResourceProvider) -> None:
        self._providers.append(provider)

    def __bool__(self) -> bool:
        return bool(self._fixed or self._templates or self._providers)

    async def list_page(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """One page: fixed resources first (by URI), then each provider's own pages."""
        source, inner = 0, None
        if cursor is not None:
            state = decode_cursor(cursor, "resources")
            raw_source, inner = state.get("s"), state.get("c")
            if not isinstance(raw_source, int) or not 0 <= raw_source <= len(self._providers) or not (
                    inner is None or isinstance(inner, str | int)):
                raise InvalidParams("Invalid params: unknown cursor")
            source = raw_source
        page: list[dict[str, Any]] = []
        if source == 0:
            fixed = sorted(self._fixed)
            start = int(inner or 0)
            page = [_entry(self._fixed[uri], "uri") for uri in fixed[start:start + limit]]
            if start + limit < len(fixed):
                return page, encode_cursor("resources", {"s": 0, "c": start + limit})
            source, inner = 1, None
        while source <= len(self._providers) and len(page) < limit:
            entries, next_inner = await self._providers[source - 1].list_page(
                inner if isinstance(inner, str) else None, limit - len(page))
            page.extend(entries)
            if next_inner is not None:
                return page, encode_cursor("resources", {"s": source, "c": next_inner})
            source, inner = source + 1, None
        more = source <= len(self._providers)
        return page, encode_cursor("resources", {"s": source, "c": None}) if more else None

    def templates(self) -> list[dict[str, Any]]:
        listed = [_entry(spec, "uriTemplate") for spec, _ in self._templates]
        for provider in self._providers:
            listed.extend(provider.templates())
        return sorted(listed, key=lambda entry: str(entry["uriTemplate"]))

    async def read(self, uri: str, context: Callable[[], ToolContext] | None = None) -> list[dict[str, Any]]:
        """The contents at `uri`. `context` builds the request context, called only for a function that asks for
        one (so a read that needs none costs nothing extra)."""
        for provider in self._providers:
            if provider.handles(uri):
                return await provider.read(uri)
        spec = self._fixed.get(uri)
        variables: dict[str, str] = {}
        if spec is None:
            for candidate, pattern in self._templates:
                match = pattern.match(uri)
                if match:
                    spec, variables = candidate, {k: unquote(v) for k, v in match.groupdict().items()}
                    break
        if spec is None:
            raise ResourceNotFound("Resource not found", data={"uri": uri})
        try:
            kwargs = spec.signature.validate(variables)
        except ValidationError as exc:
            raise InvalidParams(f"Invalid params: resource {spec.name}: {explain(exc)}", data={"uri": uri}) from None
        if spec.signature.context is not None:
            kwargs[spec.signature.context] = context() if context is not None else None
        value = spec.fn(**kwargs)
        if inspect.isawaitable(value):
            value = await value
        return _contents(uri, spec.mime_type, value)


def _contents(uri: str, mime_type: str | None, value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return value
    item: dict[str, Any] = {"uri": uri}
    if isinstance(value, bytes | bytearray):
        item["mimeType"] = mime_type or "application/octet-stream"
        item["blob"] = base64.b64encode(value).decode()
    else:
        item["mimeType"] = mime_type or "text/plain"
        item["text"] = str(value)
    return [item]

