"""The `/mcp` endpoint: Streamable HTTP for both protocol eras, as one raw ASGI callable.

Order of checks (each answers on its own and stops): Host (421), Origin (403), method (405), bearer auth (401, or
429 after repeated failures from one IP), Content-Type (400), Accept (406), body size (413), JSON (400 -32700),
JSON-RPC shape (400 -32600), the token's request budget (429, naming the request); then the era's own rules, then
dispatch. A backing service that is down turns into 503 wherever it is hit.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.shared.inbound import x_mcp_header_map
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import Receive, Scope, Send

from mcp_platform.auth import TokenVerifier, bearer_token
from mcp_platform.auth_types import ANONYMOUS, Principal
from mcp_platform.errors import (
    BadRequest,
    InvalidRequest,
    McpPlatformError,
    MethodNotAllowed,
    MisdirectedRequest,
    NotAcceptable,
    OriginForbidden,
    PayloadTooLarge,
    ProtocolError,
    ServiceUnavailable,
    SessionNotFound,
    StreamConflict,
    Unauthorized,
    UnknownEventId,
    UnsupportedProtocolVersion,
    WireReply,
    to_wire,
)
from mcp_platform.hooks import Hooks
from mcp_platform.protocol import jsonrpc
from mcp_platform.protocol.dispatch import Call, Dispatcher
from mcp_platform.protocol.eras import MODERN_VERSIONS, check_mcp_param_headers, check_modern_request, is_modern
from mcp_platform.protocol.sessions import SessionData, SessionsFull, SessionStore
from mcp_platform.settings import Settings
from mcp_platform.stores.base import EventStore, Notifier
from mcp_platform.transport.guards import HostOriginGuard, accepts, is_json_content_type
from mcp_platform.transport.inflight import InFlight
from mcp_platform.transport.sse import CallStream, send_json, send_status
from mcp_platform.transport.streams import (
    StreamRecorder,
    listen_events,
    listen_filter,
    replay,
    serve_stream,
    session_notifications,
)

__all__ = ["McpEndpoint"]

logger = logging.getLogger(__name__)

_ALLOW_ALL = "GET, POST, DELETE"
_ALLOW_POST = "POST"
_BATCH_VERSION = "2025-03-26"  # the only revision whose Streamable HTTP accepted JSON-RPC batches
_RESUMABLE = ("2025-03-26", "2025-06-18", "2025-11-25")  # Streamable HTTP revisions with Last-Event-ID
_PRIMING = ("2025-11-25",)  # revisions whose streams open with a priming event (SEP-1699)


class _ClientGone(Exception):  # noqa: N818 - an event, not an error
    """The client disconnected before its request body arrived: nothing to answer, nothing to log."""


class _Refused(Exception):
    """A refusal bound to the request it refuses, ready for the wire."""

    def __init__(self, reply: WireReply) -> None:
        self.reply = reply


def _refusal(exc: McpPlatformError, msg_id: Any = None, *, modern: bool = False, dispatched: bool = False) -> _Refused:
    return _Refused(to_wire(exc, modern=modern, msg_id=msg_id, dispatched=dispatched))


class McpEndpoint:
    def __init__(self, *, settings: Settings, dispatcher: Dispatcher, sessions: SessionStore,
                 verifier: TokenVerifier | None, hooks: Hooks, notifier: Notifier,
                 events: EventStore | None = None, bus: Notifier | None = None) -> None:
        self.dispatcher = dispatcher
        self.sessions = sessions
        self.verifier = verifier
        self.hooks = hooks
        self.notifier = notifier
        self.events = events
        self.inflight = InFlight(bus)
        self.apply(settings)
        self._get_streams: set[str] = set()
        self._param_header_tools: dict[str, bool] = {}

    def apply(self, settings: Settings) -> None:
        """Take new settings (a config reload): allow-lists, body limit and heartbeat change at once."""
        self.settings = settings
        self.guard = HostOriginGuard(settings.http)
        self._heartbeat = settings.http.sse_heartbeat_seconds
        self._max_body = settings.http.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hooks.http_response:
            send = self._observed(send)
        # RFC 9110: optional whitespace around a field value is not part of it.
        raw = [(k.decode("latin-1"), v.decode("latin-1").strip(" \t")) for k, v in scope["headers"]]
        headers = {k: v for k, v in raw}
        try:
            try:
                await self._serve(scope, receive, send, headers, raw)
            except McpPlatformError as exc:
                # E.g. a backing service that is down: 503 says which, and when to retry. Recovery needs no restart.
                raise _refusal(exc) from None
        except _ClientGone:
            return
        except _Refused as refused:
            reply = refused.reply
            if reply.body:
                await send_json(send, reply.status, reply.body, reply.headers)
            else:
                await send_status(send, reply.status, reply.headers)

    def _observed(self, send: Send) -> Send:
        async def observed(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.hooks.emit_http_response(message["status"])
            await send(message)
        return observed

    async def _serve(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str],
                     raw: list[tuple[str, str]]) -> None:
        if not self.guard.host_ok(headers.get("host")):
            raise MisdirectedRequest("Misdirected request: Host header not allowed")
        if not self.guard.origin_ok(headers.get("origin")):
            raise OriginForbidden("Forbidden: Origin not allowed")
        method = scope["method"]
        version_header = headers.get("mcp-protocol-version")
        modern_header = version_header in MODERN_VERSIONS
        if method not in ("POST", "GET", "DELETE"):
            raise MethodNotAllowed(_ALLOW_POST if modern_header else _ALLOW_ALL)
        principal = await self._authenticate(scope, headers)
        if method == "POST":
            await self._post(scope, receive, send, headers, raw, principal)
            return
        await self._check_rate(principal, None)
        if modern_header:
            raise MethodNotAllowed(_ALLOW_POST)
        if method == "GET":
            await self._get(receive, send, headers, principal)
        else:
            await self._delete(send, headers, principal)

    # -- auth --------------------------------------------------------------------------------------------------

    async def _authenticate(self, scope: Scope, headers: dict[str, str]) -> Principal:
        if self.verifier is None:
            return ANONYMOUS
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        await self.hooks.check_auth_allowed(ip)
        token = bearer_token(headers.get("authorization"))
        principal = await self.verifier.verify(token) if token else None
        if principal is not None:
            return principal
        await self.hooks.note_auth_failure(ip)
        raise Unauthorized(credentials_sent=token is not None or "authorization" in headers)

    def _exempt(self, message: jsonrpc.Message) -> bool:
        """A call to a tool marked `rate_limited=False` is not charged to the caller's request budget."""
        if message.method != "tools/call":
            return False
        name = message.params.get("name")
        tool = self.dispatcher.registry.get(name) if isinstance(name, str) else None
        return tool is not None and not tool.spec.rate_limited

    async def _check_rate(self, principal: Principal, msg_id: Any) -> None:
        if self.hooks.before_request:
            try:
                await self.hooks.check_request(principal.name)
            except McpPlatformError as exc:
                raise _refusal(exc, msg_id) from None

    # -- POST --------------------------------------------------------------------------------------------------

    async def _read_body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BadRequest("Bad Request: invalid Content-Length")
            if int(declared) > self._max_body:
                raise self._too_large()
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise self._too_large()
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"Payload too large: the limit is {self._max_body} bytes")

    async def _post(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str],
                    raw: list[tuple[str, str]], principal: Principal) -> None:
        if not is_json_content_type(headers.get("content-type")):
            raise BadRequest("Bad Request: Content-Type must be application/json")
        if not accepts(headers.get("accept"), json=True, sse=True):
            raise NotAcceptable("Not Acceptable: Accept must list application/json and text/event-stream")
        body = await self._read_body(receive, headers)
        version_header = headers.get("mcp-protocol-version")
        try:
            decoded = jsonrpc.parse_json(body)
        except ProtocolError as exc:
            raise _refusal(exc, modern=version_header in MODERN_VERSIONS) from None
        if isinstance(decoded, list):
            await self._batch(decoded, receive, send, headers, principal)
            return
        msg_id = decoded.get("id") if isinstance(decoded, dict) else None
        try:
            message = jsonrpc.classify(decoded)
        except ProtocolError as exc:
            safe_id = msg_id if isinstance(msg_id, str | int) and not isinstance(msg_id, bool) else None
            raise _refusal(exc, safe_id, modern=version_header in MODERN_VERSIONS) from None
        # After parsing, so that a 429 can name the request it refuses (2026-07-28 errors must echo the id).
        if not self._exempt(message):
            await self._check_rate(principal, message.id)
        if is_modern(version_header, decoded):
            await self._modern(receive, send, message, headers, raw, principal)
        elif message.kind == "request" and message.method == "initialize":
            await self._initialize(send, message, principal)
        else:
            await self._handshake(receive, send, message, headers, principal)

    async def _modern(self, receive: Receive, send: Send, message: jsonrpc.Message, headers: dict[str, str],
                      raw: list[tuple[str, str]], principal: Principal) -> None:
        if message.kind == "notification":
            requested = headers.get("mcp-protocol-version", "")
            if requested not in MODERN_VERSIONS:
                exc = UnsupportedProtocolVersion("Unsupported protocol version",
                                                 {"supported": list(MODERN_VERSIONS), "requested": requested})
                raise _refusal(exc, modern=True)
            raise _Refused(WireReply(202, b""))
        if message.kind == "response":
            raise _refusal(InvalidRequest("Invalid Request: this server sent no request to answer"), message.id,
                           modern=True)
        try:
            envelope = check_modern_request(message.raw, headers, raw)
            if message.method == "tools/call":
                self._check_param_headers(message, headers)
        except ProtocolError as exc:
            raise _refusal(exc, message.id, modern=True) from None
        if message.method == "subscriptions/listen":
            try:
                granted = listen_filter(message.params)
            except ProtocolError as exc:
                raise _refusal(exc, message.id, modern=True) from None
            await serve_stream(send, receive, listen_events(self.notifier, granted, message.id),
                               heartbeat=self._heartbeat)
            return
        call = Call(message.id, message.method, message.params, principal, True, envelope.protocol_version,  # type: ignore[arg-type]
                    envelope.client_capabilities, log_level=envelope.log_level)
        await self._respond(call, receive, send, cancel_on_disconnect=True)

    def _check_param_headers(self, message: jsonrpc.Message, headers: dict[str, str]) -> None:
        name = message.params.get("name")
        arguments = message.params.get("arguments")
        tool = self.dispatcher.registry.get(name) if isinstance(name, str) else None
        if tool is None or not isinstance(arguments, dict | None):
            return
        mirrored = self._param_header_tools.get(tool.name)
        if mirrored is None:
            mirrored = self._param_header_tools[tool.name] = bool(x_mcp_header_map(tool.input_schema))
        if mirrored:
            check_mcp_param_headers(tool.input_schema, arguments or {}, headers)

    async def _initialize(self, send: Send, message: jsonrpc.Message, principal: Principal) -> None:
        result, session = self.dispatcher.initialize(message.params, principal)
        try:
            session_id = await self.sessions.create(session)
        except SessionsFull as exc:
            raise _refusal(ServiceUnavailable(str(exc), retry_after=30), message.id) from None
        reply = jsonrpc.encode(jsonrpc.result_reply(message.id, result))  # type: ignore[arg-type]
        await send_json(send, 200, reply, [(b"mcp-session-id", session_id.encode())])

    async def _session(self, headers: dict[str, str], principal: Principal) -> tuple[str, SessionData]:
        session_id = headers.get("mcp-session-id")
        if not session_id:
            raise BadRequest("Bad Request: Mcp-Session-Id header is required")
        session = await self.sessions.get(session_id) if len(session_id) <= 256 else None
        # Another token's session is answered as unknown, so session ids cannot be probed across tokens.
        if session is None or session.principal != principal.name:
            raise SessionNotFound
        version = headers.get("mcp-protocol-version")
        if version is not None and version != session.protocol_version:
            detail = "is not a supported version" if version not in HANDSHAKE_PROTOCOL_VERSIONS else \
                f"does not match the negotiated version {session.protocol_version}"
            raise BadRequest(f"Bad Request: MCP-Protocol-Version {version[:40]!r} {detail}")
        return session_id, session

    async def _handshake(self, receive: Receive, send: Send, message: jsonrpc.Message, headers: dict[str, str],
                         principal: Principal) -> None:
        session_id, session = await self._session(headers, principal)
        if message.kind != "request":
            await self._session_notification(session_id, session, message)
            raise _Refused(WireReply(202, b""))
        call = Call(message.id, message.method, message.params, principal, False,  # type: ignore[arg-type]
                    session.protocol_version, session.client_capabilities, log_level=session.log_level or "info",
                    session_id=session_id, session=session)
        level_before = session.log_level
        await self._respond(call, receive, send, cancel_on_disconnect=False)
        if session.log_level != level_before:
            await self.sessions.update(session_id, session)

    async def _session_notification(self, session_id: str, session: SessionData, message: jsonrpc.Message) -> None:
        if message.kind == "response":
            await self.inflight.reply(session_id, message.id, message.raw.get("result"), message.raw.get("error"))
        elif message.method == "notifications/initialized" and not session.initialized:
            session.initialized = True
            await self.sessions.update(session_id, session)
        elif message.method == "notifications/cancelled":
            request_id = message.params.get("requestId")
            if isinstance(request_id, str | int) and not isinstance(request_id, bool):
                await self.inflight.cancel(session_id, request_id)

    async def serve_bus(self) -> None:
        await self.inflight.serve()

    async def _respond(self, call: Call, receive: Receive, send: Send, *, cancel_on_disconnect: bool) -> None:
        modern = call.modern
        if call.method != "tools/call":
            try:
                result = await self.dispatcher.handle(call)
            except McpPlatformError as exc:
                raise _refusal(exc, call.id, modern=modern, dispatched=True) from None
            await send_json(send, 200, jsonrpc.result_bytes(call.id, result))
            return
        try:
            prepared = await self.dispatcher.preflight_tool(call)
        except McpPlatformError as exc:
            raise _refusal(exc, call.id, modern=modern, dispatched=True) from None
        recorder = None
        if self.events is not None and call.session_id is not None and call.protocol_version in _RESUMABLE:
            recorder = StreamRecorder(self.events, call.session_id, prime=call.protocol_version in _PRIMING,
                                      retry_ms=int(self._heartbeat * 1000))
        stream = CallStream(send, heartbeat=self._heartbeat, recorder=recorder)
        call.notify = stream.notify
        if call.session_id is not None:
            call.server_request = self.inflight.requester(call.session_id, stream)

        async def work() -> tuple[int, bytes]:
            try:
                result = self.dispatcher.finish(call, await self.dispatcher.run_tool(call, prepared))
            except ProtocolError as exc:
                reply = to_wire(exc, modern=modern, msg_id=call.id, dispatched=True)
                return reply.status, reply.body
            return 200, jsonrpc.result_bytes(call.id, result)

        if call.session_id is None:
            await stream.run(work(), receive, cancel_on_disconnect=cancel_on_disconnect)
            return
        # Handshake era: `notifications/cancelled` finds the call by (session, request id).
        with self.inflight.running(call.session_id, call.id, stream):
            await stream.run(work(), receive, cancel_on_disconnect=cancel_on_disconnect)

    async def _batch(self, items: list[Any], receive: Receive, send: Send, headers: dict[str, str],
                     principal: Principal) -> None:
        version = headers.get("mcp-protocol-version")
        if version in MODERN_VERSIONS or "mcp-session-id" not in headers:
            raise BadRequest("Invalid Request: JSON-RPC batches are not accepted")
        await self._check_rate(principal, None)
        session_id, session = await self._session(headers, principal)
        if session.protocol_version != _BATCH_VERSION or not items:
            raise BadRequest(f"Invalid Request: batches are only accepted, non-empty, in {_BATCH_VERSION} sessions")
        replies: list[bytes] = []
        for item in items[:100]:
            try:
                message = jsonrpc.classify(item)
            except ProtocolError as exc:
                replies.append(jsonrpc.encode(jsonrpc.error_reply(None, exc, modern=False)))
                continue
            if message.kind != "request":
                await self._session_notification(session_id, session, message)
                continue
            call = Call(message.id, message.method, message.params, principal, False,  # type: ignore[arg-type]
                        session.protocol_version, session.client_capabilities, log_level=session.log_level,
                        session_id=session_id, session=session)
            try:
                if message.method == "initialize":
                    raise InvalidRequest("Invalid Request: initialize cannot be part of a batch")
                result = await self.dispatcher.handle(call)
                replies.append(jsonrpc.result_bytes(call.id, result))
            except McpPlatformError as exc:
                replies.append(to_wire(exc, modern=False, msg_id=call.id, dispatched=True).body)
        if not replies:
            raise _Refused(WireReply(202, b""))
        await send_json(send, 200, b"[" + b",".join(replies) + b"]")

    # -- GET and DELETE (handshake era) ------------------------------------------------------------------------

    async def _get(self, receive: Receive, send: Send, headers: dict[str, str], principal: Principal) -> None:
        if not accepts(headers.get("accept"), json=False, sse=True):
            raise NotAcceptable("Not Acceptable: Accept must list text/event-stream")
        session_id, _ = await self._session(headers, principal)
        last_event_id = headers.get("last-event-id")
        if last_event_id is not None:
            # Resuming a call's stream: only that stream's events, then the stream ends with its reply.
            if self.events is None or not await self.events.exists(session_id, last_event_id):
                raise UnknownEventId("Unknown Last-Event-ID for this session")
            await serve_stream(send, receive, replay(self.events, session_id, last_event_id),
                               heartbeat=self._heartbeat)
            return
        if session_id in self._get_streams:
            raise StreamConflict("Conflict: this session already has a GET stream")

        async def subscriptions() -> list[str]:
            session = await self.sessions.get(session_id)
            return session.subscriptions if session is not None else []

        self._get_streams.add(session_id)
        try:
            await serve_stream(send, receive, session_notifications(self.notifier, subscriptions),
                               heartbeat=self._heartbeat)
        finally:
            self._get_streams.discard(session_id)

    async def _delete(self, send: Send, headers: dict[str, str], principal: Principal) -> None:
        session_id, _ = await self._session(headers, principal)
        await self.sessions.delete(session_id)
        if self.events is not None:
            await self.events.forget_session(session_id)
        await self.inflight.cancel_session(session_id)
        await send_status(send, 200)
