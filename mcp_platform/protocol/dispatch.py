"""JSON-RPC dispatch: one table of MCP methods, shared by both eras, each returning its result object.

The transport has authenticated the caller and the protocol edge (`edge.py`) has picked the era and checked its
rules; `Call` carries what they learned. Results are serialised here once, with the era's stamps (`resultType`,
server info, cache hints).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from mcp_types import SERVER_INFO_META_KEY
from pydantic_core import to_json

from mcp_platform.auth_types import Challenge, Principal
from mcp_platform.context import LOG_LEVELS, InputRequired, Notify, ServerRequest, ToolContext
from mcp_platform.core import Core
from mcp_platform.errors import (
    InsufficientScope,
    InvalidParams,
    MethodNotFound,
    ProtocolError,
    StoreUnavailable,
    ToolError,
    ToolTimeout,
)
from mcp_platform.hooks import Outcome, ToolCallRecord
from mcp_platform.pagination import decode_cursor, encode_cursor
from mcp_platform.protocol.eras import HANDSHAKE_VERSIONS, MODERN_METHODS_REMOVED, MODERN_VERSIONS, negotiate_version
from mcp_platform.protocol.jsonrpc import RequestId
from mcp_platform.protocol.request_state import RequestStateCodec
from mcp_platform.registry import Tool
from mcp_platform.results import error_result
from mcp_platform.stores.base import SessionData

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["Call", "Dispatcher", "PreparedCall", "server_version"]

logger = logging.getLogger(__name__)

# Results that carry SEP-2549 cache hints at 2026-07-28.
_CACHEABLE = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list",
                        "resources/read"})


def server_version() -> str:
    try:
        return version("mcp-platform")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


@dataclass(slots=True)
class Call:
    """One inbound request, as the transport understood it."""

    id: RequestId
    method: str
    params: dict[str, Any]
    principal: Principal
    modern: bool
    protocol_version: str
    client_capabilities: dict[str, Any]
    log_level: str | None = None
    notify: Notify | None = None
    session_id: str | None = None
    session: SessionData | None = None
    server_request: ServerRequest | None = None
    span: Span | None = None
    """Its OpenTelemetry server span when tracing is on (`tracing.start`); the edge ends it with the reply."""


@dataclass(frozen=True, slots=True)
class PreparedCall:
    tool: Tool
    arguments: dict[str, Any]


Handler = Callable[["Dispatcher", Call], Awaitable[dict[str, Any]]]


class Dispatcher:
    def __init__(self, *, core: Core, state_codec: RequestStateCodec, challenge: Challenge | None = None) -> None:
        self.core = core
        self.challenge = challenge or Challenge()
        """What a 403 tells the client to ask its identity provider for (OAuth step-up)."""
        self.settings = core.settings
        self.registry = core.registry
        self.resources = core.resources
        self.prompts = core.prompts
        self.hooks = core.hooks
        self.state_codec = state_codec
        self.server_info = {"name": self.settings.name, "title": "MCP Platform", "version": server_version()}
        self._meta_stamp = {SERVER_INFO_META_KEY: self.server_info}
        self.capabilities = self._capabilities()

    def _capabilities(self) -> dict[str, Any]:
        """List changes go out on the handshake-era GET stream and on 2026-07-28 `subscriptions/listen`; resource
        updates to subscribers of either."""
        caps: dict[str, Any] = {"tools": {"listChanged": True}, "logging": {}, "completions": {},
                                "resources": {"subscribe": True, "listChanged": True},
                                "prompts": {"listChanged": True}}
        return caps

    # -- handshake era -------------------------------------------------------------------------------------

    def initialize(self, params: dict[str, Any], principal: Principal) -> tuple[dict[str, Any], SessionData]:
        """The InitializeResult and the session it opens (the transport stores it and sets Mcp-Session-Id)."""
        negotiated = negotiate_version(params.get("protocolVersion"))
        info = params.get("clientInfo")
        caps = params.get("capabilities")
        session = SessionData(
            protocol_version=negotiated, principal=principal.name,
            client_info=info if isinstance(info, dict) else {},
            client_capabilities=caps if isinstance(caps, dict) else {}, started_at=time.time(),
        )
        result: dict[str, Any] = {"protocolVersion": negotiated, "capabilities": self.capabilities,
                                  "serverInfo": self.server_info}
        if self.settings.instructions:
            result["instructions"] = self.settings.instructions
        return result, session

    # -- every request ---------------------------------------------------------------------------------------

    async def handle(self, call: Call) -> bytes:
        """The serialised `result` object for `call`, or a refusal from `errors` (`ProtocolError`, and for
        tools/call `InsufficientScope`, `RateLimited`, `StoreUnavailable`)."""
        table = _MODERN if call.modern else _HANDSHAKE
        handler = table.get(call.method)
        if handler is None:
            raise MethodNotFound(f"Method not found: {call.method}")
        return self.finish(call, await handler(self, call))

    def finish(self, call: Call, result: dict[str, Any]) -> bytes:
        """Stamp and serialise a result, once. A tool result over `tools.max_result_bytes` is replaced by an error
        result that asks for less (clients refuse huge results; Claude Code above about 25k tokens)."""
        encoded = self._encode(call, result)
        limit = self.settings.tools.max_result_bytes
        if call.method == "tools/call" and len(encoded) > limit and result.get("resultType") != "input_required":
            name = str(call.params.get("name"))[:128]
            replacement = error_result(
                f"Tool {name} produced {len(encoded)} bytes, over this server's {limit}-byte result limit. "
                "Ask for less: use a smaller limit, fewer fields, or a cursor/offset to page through.").to_wire()
            encoded = self._encode(call, replacement)
        return encoded

    def _encode(self, call: Call, result: dict[str, Any]) -> bytes:
        if call.modern:
            result.setdefault("resultType", "complete")
            meta = result.get("_meta")
            result["_meta"] = {**meta, **self._meta_stamp} if isinstance(meta, dict) else self._meta_stamp
            if call.method in _CACHEABLE:
                # Results depend on the token's scopes (and files change), so no shared cache may hold them.
                result.setdefault("ttlMs", 0)
                result.setdefault("cacheScope", "private")
        return to_json(result)

    def _page_size(self) -> int:
        return self.settings.tools.page_size

    async def list_tools(self, call: Call) -> dict[str, Any]:
        tools = self.registry.visible_to(call.principal)
        start = 0
        cursor = call.params.get("cursor")
        if cursor is not None:
            after = decode_cursor(cursor, "tools").get("after")
            if not isinstance(after, str):
                raise InvalidParams("Invalid params: unknown cursor")
            # Resume after a name, not an offset, so a tool added or removed between pages shifts nothing.
            start = next((i for i, t in enumerate(tools) if t.name > after), len(tools))
        page = tools[start:start + self._page_size()]
        result: dict[str, Any] = {"tools": [t.definition for t in page]}
        if start + len(page) < len(tools):
            result["nextCursor"] = encode_cursor("tools", {"after": page[-1].name})
        return result

    async def call_tool(self, call: Call) -> dict[str, Any]:
        return await self.run_tool(call, await self.preflight_tool(call))

    async def preflight_tool(self, call: Call) -> PreparedCall:
        """Everything that can refuse a call before it runs: unknown tool, bad arguments object, scope, rate."""
        name = call.params.get("name")
        if not isinstance(name, str):
            raise InvalidParams("Invalid params: tools/call needs a string 'name'")
        tool = self.registry.get(name)
        if tool is None:
            raise InvalidParams(f"Unknown tool: {name[:128]}")
        arguments = call.params.get("arguments")
        if arguments is None:
            arguments = {}
        elif not isinstance(arguments, dict):
            raise InvalidParams("Invalid params: tools/call 'arguments' must be an object")
        if not call.principal.allows(tool.spec.scope):
            await self._record(call.principal, name, arguments, "denied", 0.0, time.time(), call.id,
                               read_only=tool.spec.read_only)
            raise InsufficientScope(tool.spec.scope, f"tool {name}", ask_for=self.challenge.scope_for(tool.spec.scope),
                                    resource_metadata=self.challenge.resource_metadata)
        await self.hooks.check_tool_call(call.principal.name, name)
        return PreparedCall(tool, arguments)

    def _context(self, call: Call, target: str) -> ToolContext:
        """The context for a tool or prompt; at 2026-07-28 it carries the answers of earlier input rounds."""
        meta = call.params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        answers: dict[str, Any] = {}
        state: dict[str, Any] = {}
        if call.modern:
            if (request_state := call.params.get("requestState")) is not None:
                answers, state = self.state_codec.decode(request_state, target=target, principal=call.principal.name)
            given = call.params.get("inputResponses")
            if isinstance(given, dict):
                answers.update(given)
        return ToolContext(
            principal=call.principal, tool_name=target, request_id=call.id, protocol_version=call.protocol_version,
            core=self.core, notify=call.notify,
            progress_token=token if isinstance(token, str | int) and not isinstance(token, bool) else None,
            log_level=call.log_level, client_capabilities=call.client_capabilities, modern=call.modern,
            server_request=call.server_request, answers=answers, state=state,
        )

    def _input_required(self, call: Call, target: str, ctx: ToolContext, exc: InputRequired) -> dict[str, Any]:
        state = self.state_codec.encode(target=target, principal=call.principal.name, answers=ctx.answers,
                                        state=ctx.state)
        return {"resultType": "input_required", "inputRequests": exc.requests, "requestState": state}

    async def run_tool(self, call: Call, prepared: PreparedCall) -> dict[str, Any]:
        tool, arguments, principal, name = prepared.tool, prepared.arguments, call.principal, prepared.tool.name
        ctx = self._context(call, f"tool:{name}")
        wall, started = time.time(), time.perf_counter()
        outcome: Outcome = "ok"
        try:
            result = await tool.call(arguments, ctx, self.settings.tools.default_timeout_seconds)
            if result.is_error:
                outcome = "error"
        except InputRequired as exc:
            await self._record(principal, name, arguments, "input_required", time.perf_counter() - started, wall,
                               call.id, read_only=tool.spec.read_only)
            return self._input_required(call, f"tool:{name}", ctx, exc)
        except ProtocolError:
            await self._record(principal, name, arguments, "error", time.perf_counter() - started, wall, call.id,
                               read_only=tool.spec.read_only)
            raise
        except ToolError as exc:
            result, outcome = error_result(str(exc)), "error"
        except ToolTimeout as exc:
            result, outcome = error_result(str(exc)), "timeout"
        except StoreUnavailable as exc:
            result, outcome = error_result(f"The {exc}; try again shortly."), "error"
        except asyncio.CancelledError:
            await self._record(principal, name, arguments, "cancelled", time.perf_counter() - started, wall, call.id,
                               read_only=tool.spec.read_only)
            raise
        except Exception:
            logger.exception("tool %s raised", name)
            result = error_result(f"Tool {name} failed with an internal error; the details are in the server log.")
            outcome = "exception"
        # Awaited before the reply: observers that keep records commit a writing call's record first (audit).
        await self._record(principal, name, arguments, outcome, time.perf_counter() - started, wall, call.id,
                           read_only=tool.spec.read_only)
        return result.to_wire()

    async def _record(self, principal: Principal, tool: str, arguments: dict[str, Any], outcome: Outcome,
                      duration: float, wall: float, request_id: RequestId, *, read_only: bool) -> None:
        if self.hooks.tool_call:
            await self.hooks.emit_tool_call(ToolCallRecord(principal.name, tool, arguments, outcome, duration, wall,
                                                           request_id, read_only))

    async def list_resources(self, call: Call) -> dict[str, Any]:
        cursor = call.params.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidParams("Invalid params: cursor must be a string")
        entries, next_cursor = await self.resources.list_page(cursor, self._page_size())
        result: dict[str, Any] = {"resources": entries}
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        return result

    async def list_resource_templates(self, call: Call) -> dict[str, Any]:
        templates = self.resources.templates()
        start = 0
        if (cursor := call.params.get("cursor")) is not None:
            offset = decode_cursor(cursor, "templates").get("o")
            if not isinstance(offset, int) or offset < 0:
                raise InvalidParams("Invalid params: unknown cursor")
            start = offset
        page = templates[start:start + self._page_size()]
        result: dict[str, Any] = {"resourceTemplates": page}
        if start + len(page) < len(templates):
            result["nextCursor"] = encode_cursor("templates", {"o": start + len(page)})
        return result

    async def read_resource(self, call: Call) -> dict[str, Any]:
        uri = call.params.get("uri")
        if not isinstance(uri, str) or not uri or len(uri) > 4096:
            raise InvalidParams("Invalid params: resources/read needs a string 'uri'")
        return {"contents": await self.resources.read(uri, lambda: self._context(call, f"resource:{uri}"))}

    async def list_prompts(self, call: Call) -> dict[str, Any]:
        prompts = self.prompts.all()
        start = 0
        if (cursor := call.params.get("cursor")) is not None:
            after = decode_cursor(cursor, "prompts").get("after")
            if not isinstance(after, str):
                raise InvalidParams("Invalid params: unknown cursor")
            start = next((i for i, p in enumerate(prompts) if p.name > after), len(prompts))
        page = prompts[start:start + self._page_size()]
        result: dict[str, Any] = {"prompts": [p.definition() for p in page]}
        if start + len(page) < len(prompts):
            result["nextCursor"] = encode_cursor("prompts", {"after": page[-1].name})
        return result

    async def get_prompt(self, call: Call) -> dict[str, Any]:
        name = call.params.get("name")
        arguments = call.params.get("arguments") or {}
        if not isinstance(name, str) or not isinstance(arguments, dict):
            raise InvalidParams("Invalid params: prompts/get needs a string 'name' and an object 'arguments'")
        ctx = self._context(call, f"prompt:{name}")
        try:
            return await self.prompts.render(name, arguments, ctx)
        except InputRequired as exc:
            return self._input_required(call, f"prompt:{name}", ctx, exc)
        except ToolError as exc:
            raise InvalidParams(f"Invalid params: {exc}") from None

    async def complete(self, call: Call) -> dict[str, Any]:
        ref, argument = call.params.get("ref"), call.params.get("argument")
        if not isinstance(ref, dict) or not isinstance(argument, dict):
            raise InvalidParams("Invalid params: completion/complete needs 'ref' and 'argument' objects")
        arg_name, prefix = argument.get("name"), argument.get("value", "")
        if not isinstance(arg_name, str) or not isinstance(prefix, str):
            raise InvalidParams("Invalid params: argument needs a string 'name' and 'value'")
        values: list[str] = []
        if ref.get("type") == "ref/prompt":
            spec = self.prompts.get(str(ref.get("name")))
            if spec is None:
                raise InvalidParams(f"Invalid params: unknown prompt {ref.get('name')!r}")
            suggest = spec.completions.get(arg_name)
            values = [v for v in suggest(prefix)] if suggest else []
        elif ref.get("type") != "ref/resource":
            raise InvalidParams("Invalid params: ref.type must be 'ref/prompt' or 'ref/resource'")
        return {"completion": {"values": values[:100], "total": len(values), "hasMore": len(values) > 100}}

    async def ping(self, call: Call) -> dict[str, Any]:
        return {}

    async def set_level(self, call: Call) -> dict[str, Any]:
        level = call.params.get("level")
        if level not in LOG_LEVELS:
            raise InvalidParams(f"Invalid params: level must be one of {', '.join(LOG_LEVELS)}")
        if call.session is not None:
            call.session.log_level = level
        return {}

    async def subscribe(self, call: Call) -> dict[str, Any]:
        uri = call.params.get("uri")
        if not isinstance(uri, str) or not uri or len(uri) > 4096:
            raise InvalidParams("Invalid params: resources/subscribe needs a string 'uri'")
        if call.session is not None and uri not in call.session.subscriptions:
            if len(call.session.subscriptions) >= 1000:
                raise InvalidParams("Invalid params: a session may hold at most 1000 subscriptions")
            call.session.subscriptions.append(uri)
        return {}

    async def unsubscribe(self, call: Call) -> dict[str, Any]:
        uri = call.params.get("uri")
        if not isinstance(uri, str):
            raise InvalidParams("Invalid params: resources/unsubscribe needs a string 'uri'")
        if call.session is not None and uri in call.session.subscriptions:
            call.session.subscriptions.remove(uri)
        return {}

    async def discover(self, call: Call) -> dict[str, Any]:
        result: dict[str, Any] = {"supportedVersions": [*MODERN_VERSIONS, *reversed(HANDSHAKE_VERSIONS)],
                                  "capabilities": self.capabilities, "ttlMs": 0, "cacheScope": "public"}
        if self.settings.instructions:
            result["instructions"] = self.settings.instructions
        return result


_COMMON: dict[str, Handler] = {
    "tools/list": Dispatcher.list_tools,
    "tools/call": Dispatcher.call_tool,
    "resources/list": Dispatcher.list_resources,
    "resources/templates/list": Dispatcher.list_resource_templates,
    "resources/read": Dispatcher.read_resource,
    "prompts/list": Dispatcher.list_prompts,
    "prompts/get": Dispatcher.get_prompt,
    "completion/complete": Dispatcher.complete,
}
_HANDSHAKE: dict[str, Handler] = {**_COMMON, "ping": Dispatcher.ping, "logging/setLevel": Dispatcher.set_level,
                                   "resources/subscribe": Dispatcher.subscribe,
                                   "resources/unsubscribe": Dispatcher.unsubscribe}
_MODERN: dict[str, Handler] = {**_COMMON, "server/discover": Dispatcher.discover}
assert not MODERN_METHODS_REMOVED & _MODERN.keys()
