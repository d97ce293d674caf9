"""The protocol edge: one decoded message and what its transport knows, turned into a validated `Call` (or a
reply), or refused. HTTP and stdio both come here, so each protocol rule is written once:

- framing: JSON, then one JSON-RPC message (`decode`); batches only in 2025-03-26 sessions (`batch`);
- the caller's request budget (`admit`), which calls of tools marked `rate_limited=False` do not spend;
- the era ladder: the 2026-07-28 `_meta` envelope and, where there are headers, `MCP-Protocol-Version`, `Mcp-Method`,
  `Mcp-Name` and `Mcp-Param-*` (`modern_call`); the handshake era's session, opened by `initialize` and required
  by everything else (`open_session`, `session`, `handshake_call`);
- what a client's notifications mean: initialized, cancelled, and its answers to the server's requests;
- the tools/call sequence, preflight (unknown tool, arguments, scope, per-tool rate, back-pressure) -> run ->
  finish (`preflight`, `run`; `answer` for every call with no stream of its own);
- change forwarding: list changes and subscribed resource updates for a handshake session (`session_changes`),
  and 2026-07-28 `subscriptions/listen` (`listen`).

Refusals are the exceptions of `mcp_platform.errors`. Before a `Call` exists the transport words them with
`errors.to_wire`, using what this module recorded in its `Facts` (the id to echo, the era); once a call is
dispatched every outcome comes back as a `WireReply`. Transports only read and write bytes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic_core import to_json

from mcp_platform import logcontext, tracing
from mcp_platform.auth_types import Principal
from mcp_platform.errors import (
    BadRequest,
    Draining,
    InvalidParams,
    InvalidRequest,
    ProtocolError,
    ServiceUnavailable,
    SessionNotFound,
    UnsupportedProtocolVersion,
    WireReply,
    to_wire,
)
from mcp_platform.protocol import jsonrpc
from mcp_platform.protocol.dispatch import Call, Dispatcher, PreparedCall
from mcp_platform.protocol.drain import Drain
from mcp_platform.protocol.eras import MODERN_VERSIONS, check_mcp_param_headers, check_modern_request, is_modern
from mcp_platform.protocol.sdk_inbound import x_mcp_header_map
from mcp_platform.stores.base import Notifier, SessionData, SessionsFull, SessionStore

__all__ = ["ACCEPTED", "LIST_CHANGED", "Accepted", "Facts", "Opened", "ProtocolEdge", "RunningCalls",
           "listen_filter"]

SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
LIST_CHANGED = {"tools": "notifications/tools/list_changed", "prompts": "notifications/prompts/list_changed",
                "resources": "notifications/resources/list_changed"}
_FILTER_KEYS = {"toolsListChanged": "tools", "promptsListChanged": "prompts", "resourcesListChanged": "resources"}
_BATCH_VERSION = "2025-03-26"  # the only revision whose Streamable HTTP accepted JSON-RPC batches
_MAX_BATCH = 100
# Methods that change the handshake session: the store gets the change (another instance may serve the next request).
_SESSION_METHODS = frozenset({"logging/setLevel", "resources/subscribe", "resources/unsubscribe"})


@dataclass(slots=True)
class Facts:
    """What the transport knows of one message besides its bytes, and what the edge learned of it on the way:
    the transport needs that to word a refusal (which id to echo, which era's rules)."""

    principal: Principal
    headers: Mapping[str, str] | None = None
    """HTTP request headers, names lower-cased; None on stdio, which has none, so the header rungs are skipped."""
    raw_headers: Sequence[tuple[str, str]] = ()
    """Every header as sent, repeats included (a routing header sent twice is refused)."""
    modern: bool = False
    msg_id: jsonrpc.RequestId | None = None


class Accepted:
    """A notification or a client's response was taken: HTTP answers 202 with no body, stdio writes nothing."""


ACCEPTED = Accepted()


@dataclass(frozen=True, slots=True)
class Opened:
    """`initialize` opened a handshake-era session: the reply, and the id the client sends from now on."""

    reply: bytes
    session_id: str
    protocol_version: str = ""


class RunningCalls(Protocol):
    """Where a client's messages about running calls go: its cancellations, and its answers to the requests a
    tool sent it (elicitation, sampling). HTTP routes them to whichever instance runs the call; stdio has them."""

    async def cancel(self, session_id: str, request_id: Any) -> None: ...

    async def reply(self, session_id: str, request_id: Any, result: Any, error: Any) -> None: ...


def _request_id(message: jsonrpc.Message) -> jsonrpc.RequestId:
    assert message.id is not None, "only requests become calls"
    return message.id


def _end_span(call: Call, exc: BaseException | None = None) -> None:
    if call.span is not None:
        tracing.end(call.span, exc)


_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
_KNOWN_VERSIONS = frozenset((*MODERN_VERSIONS, *HANDSHAKE_PROTOCOL_VERSIONS))


def _claimed_version(message: jsonrpc.Message, facts: Facts) -> str | None:
    """The protocol version a refused request claimed (header, else envelope), if it is one we know: a span holds
    no free text of the client's."""
    claimed = facts.headers.get("mcp-protocol-version") if facts.headers is not None else None
    if claimed is None and isinstance(meta := message.params.get("_meta"), dict):
        claimed = meta.get(_VERSION_KEY)
    return claimed if isinstance(claimed, str) and claimed in _KNOWN_VERSIONS else None


def _notification(method: str, params: dict[str, Any]) -> bytes:
    return to_json({"jsonrpc": "2.0", "method": method, "params": params})


def listen_filter(params: dict[str, Any]) -> dict[str, Any]:
    """The granted subset of a `subscriptions/listen` request's `notifications` filter."""
    wanted = params.get("notifications")
    if not isinstance(wanted, dict):
        raise InvalidParams("Invalid params: subscriptions/listen needs a 'notifications' object")
    granted: dict[str, Any] = {key: True for key in _FILTER_KEYS if wanted.get(key) is True}
    uris = wanted.get("resourceSubscriptions")
    if uris is not None:
        if not isinstance(uris, list) or len(uris) > 1000 or not all(isinstance(u, str) for u in uris):
            raise InvalidParams("Invalid params: resourceSubscriptions must be a list of at most 1000 URIs")
        granted["resourceSubscriptions"] = sorted(set(uris))
    return granted


class ProtocolEdge:
    """The edge of one transport: the HTTP endpoint has one (with the session store), each stdio connection its
    own (its connection is its session). Nothing here reads or writes bytes."""

    def __init__(self, dispatcher: Dispatcher, *, calls: RunningCalls, notifier: Notifier | None = None,
                 sessions: SessionStore | None = None, drain: Drain | None = None) -> None:
        self.dispatcher = dispatcher
        self.drain = drain
        self.notifier = notifier
        self.sessions = sessions
        self._calls = calls
        self._hooks = dispatcher.hooks
        self._registry = dispatcher.registry
        # Per tool: whether its schema has x-mcp-header arguments, computed once per tool object (a reload that
        # replaces the tool replaces the object, so the entry is recomputed).
        self._mirrored: dict[str, tuple[object, bool]] = {}

    # -- framing and budget ----------------------------------------------------------------------------------------

    def decode(self, body: bytes, facts: Facts) -> jsonrpc.Message | list[Any]:
        """One JSON-RPC message, or a batch's raw items. A valid id is recorded even when the rest is wrong; an
        oversized one never is, so its refusal does not carry a copy of it."""
        decoded = jsonrpc.parse_json(body)
        if isinstance(decoded, list):
            return decoded
        if isinstance(decoded, dict) and jsonrpc.echoable_id(raw_id := decoded.get("id")):
            facts.msg_id = raw_id
        return jsonrpc.classify(decoded)

    def _exempt(self, message: jsonrpc.Message) -> bool:
        """A call to a tool marked `rate_limited=False` is not charged to the caller's request budget."""
        if message.method != "tools/call":
            return False
        name = message.params.get("name")
        tool = self._registry.get(name) if isinstance(name, str) else None
        return tool is not None and not tool.spec.rate_limited

    async def admit(self, facts: Facts) -> None:
        """Spend one request of the caller's budget, or raise `RateLimited`. A message is admitted by `accept`,
        after parsing, so that the refusal can name the request (2026-07-28 errors must echo the id)."""
        if self._hooks.before_request:
            await self._hooks.check_request(facts.principal.name)

    # -- HTTP: one message on /mcp ---------------------------------------------------------------------------------

    def refuse_if_draining(self) -> None:
        """While the server drains, nothing new starts here: no session, call or stream (`Draining`, 503 with
        `Retry-After`). Notifications and answers still pass: a running call may need them to finish."""
        if self.drain is not None and self.drain.started:
            raise Draining

    # -- spans of requests that never become a call ---------------------------------------------------------------

    def trace_refusal(self, message: jsonrpc.Message, facts: Facts, started: int, exc: BaseException) -> None:
        """The server span of a request refused before it became a call (budget, drain, era ladder, session), so
        that every request has one, its `error.type` the JSON-RPC code."""
        if message.kind == "request":
            tracing.refusal(_request_id(message), message.method, message.params, exc, headers=facts.headers,
                            protocol_version=_claimed_version(message, facts), start_time=started)

    def trace_initialize(self, message: jsonrpc.Message, facts: Facts, started: int, protocol_version: str,
                         session_id: str | None = None) -> None:
        """The server span of an `initialize` that opened a session (it is no call either)."""
        span = tracing.start(_request_id(message), message.method, message.params, headers=facts.headers,
                             protocol_version=protocol_version, session_id=session_id, start_time=started)
        if span is not None:
            tracing.end(span)

    async def _traced_accept(self, message: jsonrpc.Message, facts: Facts) -> Call | Accepted | Opened:
        started = time.time_ns()
        try:
            accepted = await self.accept(message, facts, traced=True)
        except Exception as exc:
            self.trace_refusal(message, facts, started, exc)
            raise
        if isinstance(accepted, Opened):
            self.trace_initialize(message, facts, started, accepted.protocol_version, accepted.session_id)
        return accepted

    async def accept(self, message: jsonrpc.Message, facts: Facts, *, traced: bool = False,
                     ) -> Call | Accepted | Opened:
        """Streamable HTTP: the era is chosen per message, by the version header or else a modern envelope.
        `traced`: `_traced_accept` is on it (with tracing off a request pays no extra frame for spans)."""
        if not traced and message.kind == "request" and tracing.active():
            return await self._traced_accept(message, facts)
        assert facts.headers is not None
        if message.kind == "request" and self.drain is not None and self.drain.started:
            facts.modern = is_modern(facts.headers.get("mcp-protocol-version"), message.raw)
            raise Draining
        if self._hooks.before_request and not self._exempt(message):
            await self._hooks.check_request(facts.principal.name)
        version = facts.headers.get("mcp-protocol-version")
        if is_modern(version, message.raw):
            facts.modern = True
            if message.kind == "notification":
                if version not in MODERN_VERSIONS:
                    raise UnsupportedProtocolVersion("Unsupported protocol version",
                                                     {"supported": list(MODERN_VERSIONS), "requested": version or ""})
                return ACCEPTED
            if message.kind == "response":
                raise InvalidRequest("Invalid Request: this server sent no request to answer")
            return self.modern_call(message, facts)
        if message.kind == "request" and message.method == "initialize":
            return await self.open_session(message, facts)
        session_id, session = await self.session(facts)
        if message.kind != "request":
            await self.notification(message, session_id, session)
            return ACCEPTED
        return self.handshake_call(message, facts, session_id, session)

    async def open_session(self, message: jsonrpc.Message, facts: Facts) -> Opened:
        reply, session = self.initialize(message, facts)
        assert self.sessions is not None
        try:
            session_id = await self.sessions.create(session)
        except SessionsFull as exc:
            raise ServiceUnavailable(str(exc), retry_after=30) from None
        return Opened(reply, session_id, session.protocol_version)

    async def session(self, facts: Facts) -> tuple[str, SessionData]:
        """The handshake session the request names in `Mcp-Session-Id`, checked against its token and version."""
        assert facts.headers is not None and self.sessions is not None
        session_id = facts.headers.get("mcp-session-id")
        if not session_id:
            raise BadRequest("Bad Request: Mcp-Session-Id header is required")
        session = await self.sessions.get(session_id) if len(session_id) <= 256 else None
        # Another token's session is answered as unknown, so session ids cannot be probed across tokens.
        if session is None or session.principal != facts.principal.name:
            raise SessionNotFound
        version = facts.headers.get("mcp-protocol-version")
        if version is not None and version != session.protocol_version:
            detail = "is not a supported version" if version not in HANDSHAKE_PROTOCOL_VERSIONS else \
                f"does not match the negotiated version {session.protocol_version}"
            raise BadRequest(f"Bad Request: MCP-Protocol-Version {version[:40]!r} {detail}")
        return session_id, session

    async def batch(self, items: list[Any], facts: Facts) -> WireReply | Accepted:
        """A JSON-RPC batch: refused but in a 2025-03-26 session; there, each request answered in order."""
        assert facts.headers is not None
        if facts.headers.get("mcp-protocol-version") in MODERN_VERSIONS or "mcp-session-id" not in facts.headers:
            raise BadRequest("Invalid Request: JSON-RPC batches are not accepted")
        self.refuse_if_draining()
        await self.admit(facts)
        session_id, session = await self.session(facts)
        if session.protocol_version != _BATCH_VERSION or not items:
            raise BadRequest(f"Invalid Request: batches are only accepted, non-empty, in {_BATCH_VERSION} sessions")
        replies: list[bytes] = []
        for item in items[:_MAX_BATCH]:
            try:
                message = jsonrpc.classify(item)
            except ProtocolError as exc:
                replies.append(to_wire(exc, modern=False).body)
                continue
            if message.kind != "request":
                await self.notification(message, session_id, session)
            elif message.method == "initialize":
                refused = InvalidRequest("Invalid Request: initialize cannot be part of a batch")
                replies.append(to_wire(refused, modern=False, msg_id=message.id, dispatched=True).body)
            else:
                replies.append((await self.answer(self.handshake_call(message, facts, session_id, session))).body)
        return WireReply(200, b"[" + b",".join(replies) + b"]") if replies else ACCEPTED

    # -- the eras' calls (both transports) -------------------------------------------------------------------------

    def modern_call(self, message: jsonrpc.Message, facts: Facts) -> Call:
        """A 2026-07-28 request: envelope keys, routing headers (when there are headers), version, Mcp-Param-*."""
        facts.modern = True
        logcontext.bind(message.id, message.method, facts.principal.name, message.params, facts.headers)
        envelope = check_modern_request(message.raw, facts.headers, facts.raw_headers)
        if facts.headers is not None and message.method == "tools/call":
            self._check_param_headers(message, facts.headers)
        return Call(_request_id(message), message.method, message.params, facts.principal, True,
                    envelope.protocol_version, envelope.client_capabilities, log_level=envelope.log_level,
                    span=tracing.start(_request_id(message), message.method, message.params, headers=facts.headers,
                                       protocol_version=envelope.protocol_version) if tracing.active() else None)

    def _check_param_headers(self, message: jsonrpc.Message, headers: Mapping[str, str]) -> None:
        name = message.params.get("name")
        arguments = message.params.get("arguments")
        tool = self._registry.get(name) if isinstance(name, str) else None
        if tool is None or not isinstance(arguments, dict | None):
            return
        entry = self._mirrored.get(tool.name)
        if entry is None or entry[0] is not tool:
            entry = self._mirrored[tool.name] = (tool, bool(x_mcp_header_map(tool.input_schema)))
        if entry[1]:
            check_mcp_param_headers(tool.input_schema, arguments or {}, headers)

    def initialize(self, message: jsonrpc.Message, facts: Facts) -> tuple[bytes, SessionData]:
        """The reply to `initialize`, and the session it opens (the transport keeps it)."""
        result, session = self.dispatcher.initialize(message.params, facts.principal)
        return jsonrpc.result_bytes(_request_id(message), to_json(result)), session

    def handshake_call(self, message: jsonrpc.Message, facts: Facts, session_id: str, session: SessionData) -> Call:
        logcontext.bind(message.id, message.method, facts.principal.name, message.params, facts.headers)
        return Call(_request_id(message), message.method, message.params, facts.principal, False,
                    session.protocol_version, session.client_capabilities, log_level=session.log_level or "info",
                    session_id=session_id, session=session,
                    span=tracing.start(_request_id(message), message.method, message.params, headers=facts.headers,
                                       protocol_version=session.protocol_version, session_id=session_id)
                    if tracing.active() else None)

    async def notification(self, message: jsonrpc.Message, session_id: str, session: SessionData | None) -> None:
        """A client's notification or response: acted on; nothing is ever answered."""
        if message.kind == "response":
            await self._calls.reply(session_id, message.id, message.raw.get("result"), message.raw.get("error"))
        elif message.method == "notifications/initialized":
            if session is not None and not session.initialized:
                session.initialized = True
                if self.sessions is not None:
                    await self.sessions.update(session_id, session)
        elif message.method == "notifications/cancelled":
            request_id = message.params.get("requestId")
            if jsonrpc.echoable_id(request_id):
                await self._calls.cancel(session_id, request_id)
        # Anything else (roots/list_changed, the client's own progress) needs no action here.

    # -- dispatch --------------------------------------------------------------------------------------------------

    async def preflight(self, call: Call) -> PreparedCall | WireReply:
        """tools/call before it runs: everything that can refuse it (unknown tool, arguments, scope, per-tool rate,
        back-pressure) comes back as the era's wire error, so a refusal never needs a stream."""
        try:
            if call.span is None:  # tracing off: not even a null context per request
                return await self.dispatcher.preflight_tool(call)
            with tracing.current(call.span):
                return await self.dispatcher.preflight_tool(call)
        except Exception as exc:
            _end_span(call, exc)
            return to_wire(exc, modern=call.modern, msg_id=call.id, dispatched=True)

    async def run(self, call: Call, prepared: PreparedCall) -> WireReply:
        """tools/call after `preflight`: the result, or the era's wire error. Only cancellation escapes."""
        try:
            if call.span is None:
                outcome = await self.dispatcher.run_tool(call, prepared)
            else:
                with tracing.current(call.span):
                    outcome = await self.dispatcher.run_tool(call, prepared)
                tracing.tool_result(call.span, outcome)
            result = self.dispatcher.finish(call, outcome)
        except BaseException as exc:  # cancellation too: the span ends either way
            _end_span(call, exc)
            if not isinstance(exc, Exception):
                raise
            return to_wire(exc, modern=call.modern, msg_id=call.id, dispatched=True)
        if call.span is not None:
            tracing.end(call.span)
        return WireReply(200, jsonrpc.result_bytes(call.id, result))

    async def answer(self, call: Call) -> WireReply:
        """The whole reply to a call that has no stream of its own (any method; on stdio, tools/call too)."""
        if call.method == "tools/call":
            prepared = await self.preflight(call)
            return prepared if isinstance(prepared, WireReply) else await self.run(call, prepared)
        try:
            if call.span is None:
                result = await self.dispatcher.handle(call)
            else:
                with tracing.current(call.span):
                    result = await self.dispatcher.handle(call)
            if call.session is not None and call.session_id is not None and call.method in _SESSION_METHODS \
                    and self.sessions is not None:
                await self.sessions.update(call.session_id, call.session)
        except BaseException as exc:
            _end_span(call, exc)
            if not isinstance(exc, Exception):
                raise
            return to_wire(exc, modern=call.modern, msg_id=call.id, dispatched=True)
        if call.span is not None:
            tracing.end(call.span)
        return WireReply(200, jsonrpc.result_bytes(call.id, result))

    # -- change forwarding -----------------------------------------------------------------------------------------

    async def session_changes(self, subscriptions: Callable[[], Awaitable[Collection[str]]]) -> AsyncIterator[bytes]:
        """Handshake era: list changes, and updates of the resources the session subscribed to (asked per event:
        the session may change on any instance)."""
        assert self.notifier is not None
        async for event in self.notifier.subscribe():
            kind = event.get("kind")
            if kind in LIST_CHANGED:
                yield _notification(LIST_CHANGED[kind], {})
            elif kind == "resource" and event.get("uri") in await subscriptions():
                yield _notification("notifications/resources/updated", {"uri": event["uri"]})

    def listen(self, call: Call) -> AsyncIterator[bytes]:
        """2026-07-28 `subscriptions/listen`: its filter is checked now (an `InvalidParams` before anything is
        sent); the stream is the acknowledgement, then the granted kinds, each tagged with the subscription id. Its
        span covers the subscription's acceptance, not the stream's lifetime."""
        try:
            granted = listen_filter(call.params)
        except ProtocolError as exc:
            _end_span(call, exc)
            raise
        _end_span(call)
        return self._listen(granted, call.id)

    async def _listen(self, granted: dict[str, Any], subscription_id: jsonrpc.RequestId) -> AsyncIterator[bytes]:
        meta = {SUBSCRIPTION_ID_KEY: subscription_id}
        yield _notification("notifications/subscriptions/acknowledged", {"notifications": granted, "_meta": meta})
        if self.notifier is None:
            return
        kinds = {_FILTER_KEYS[key] for key in _FILTER_KEYS if granted.get(key)}
        uris = set(granted.get("resourceSubscriptions", ()))
        async for event in self.notifier.subscribe():
            kind = event.get("kind")
            if kind in kinds:
                yield _notification(LIST_CHANGED[kind], {"_meta": meta})
            elif kind == "resource" and event.get("uri") in uris:
                yield _notification("notifications/resources/updated", {"uri": event["uri"], "_meta": meta})
