"""The `/mcp` endpoint: Streamable HTTP for both protocol eras, as one raw ASGI callable.

Order of checks (each answers on its own and stops): Host (421), Origin (403), method (405), the auth chain (401;
403 or 503 from a verifier; 429 for a failure after repeated failures from one IP, while a valid token is never
refused for its address's failures), Content-Type (400), Accept (406), body size (413), the body's deadline (408,
and the connection closed); then the protocol edge: JSON (400 -32700), JSON-RPC shape (400 -32600), the token's
request budget (429, naming the request), the era's own rules, dispatch. A backing service that is down turns into
503 wherever it is hit. This module reads and writes bytes; the edge decides, and `errors.to_wire` words every
refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from starlette.types import Receive, Scope, Send

from mcp_platform.auth import Presented, TokenVerifier, bearer_token
from mcp_platform.auth_types import ANONYMOUS, Challenge, Principal
from mcp_platform.errors import (
    BadRequest,
    McpPlatformError,
    MethodNotAllowed,
    MisdirectedRequest,
    NotAcceptable,
    OriginForbidden,
    PayloadTooLarge,
    RequestTimeout,
    StreamConflict,
    Unauthorized,
    UnknownEventId,
    WireReply,
    to_wire,
)
from mcp_platform.hooks import Hooks
from mcp_platform.protocol.dispatch import Call, Dispatcher
from mcp_platform.protocol.drain import Drain
from mcp_platform.protocol.edge import Accepted, Facts, Opened, ProtocolEdge
from mcp_platform.protocol.eras import MODERN_VERSIONS
from mcp_platform.settings import Settings
from mcp_platform.stores.base import EventStore, Notifier, SessionStore
from mcp_platform.transport.guards import HostOriginGuard, accepts, is_json_content_type
from mcp_platform.transport.inflight import InFlight
from mcp_platform.transport.sse import CallStream, send_json, send_status
from mcp_platform.transport.streams import StreamRecorder, as_events, replay, serve_stream

__all__ = ["McpEndpoint"]

_ALLOW_ALL = "GET, POST, DELETE"
_ALLOW_POST = "POST"
_RESUMABLE = ("2025-03-26", "2025-06-18", "2025-11-25")  # Streamable HTTP revisions with Last-Event-ID
_PRIMING = ("2025-11-25",)  # revisions whose streams open with a priming event (SEP-1699)


class _ClientGone(Exception):  # noqa: N818 - an event, not an error
    """The client disconnected before its request body arrived: nothing to answer, nothing to log."""


async def _send_reply(send: Send, reply: WireReply) -> None:
    if reply.body:
        await send_json(send, reply.status, reply.body, reply.headers)
    else:
        await send_status(send, reply.status, reply.headers)


class McpEndpoint:
    def __init__(self, *, settings: Settings, dispatcher: Dispatcher, sessions: SessionStore,
                 verifier: TokenVerifier | None, hooks: Hooks, notifier: Notifier,
                 events: EventStore | None = None, bus: Notifier | None = None, drain: Drain | None = None,
                 challenge: Challenge | None = None) -> None:
        self.dispatcher = dispatcher
        self.verifier = verifier
        self.challenge = challenge or Challenge()
        self.hooks = hooks
        self.events = events
        self.inflight = InFlight(bus)
        self.drain = drain or Drain()
        self.edge = ProtocolEdge(dispatcher, calls=self.inflight, notifier=notifier, sessions=sessions,
                                 drain=self.drain)
        self.apply(settings)
        self._get_streams: set[str] = set()

    def apply(self, settings: Settings) -> None:
        """Take new settings (a config reload): allow-lists, body limit and heartbeat change at once."""
        self.settings = settings
        self.guard = HostOriginGuard(settings.http)
        self._heartbeat = settings.http.sse_heartbeat_seconds
        self._max_body = settings.http.max_body_bytes
        self._body_timeout = settings.http.body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hooks.http_response:
            send = self._observed(send)
        # RFC 9110: optional whitespace around a field value is not part of it.
        raw = [(k.decode("latin-1"), v.decode("latin-1").strip(" \t")) for k, v in scope["headers"]]
        headers = dict(raw)
        facts = Facts(ANONYMOUS, headers, raw, modern=headers.get("mcp-protocol-version") in MODERN_VERSIONS)
        try:
            await self._serve(scope, receive, send, facts)
        except _ClientGone:
            return
        except McpPlatformError as exc:
            await _send_reply(send, to_wire(exc, modern=facts.modern, msg_id=facts.msg_id))

    def _observed(self, send: Send) -> Send:
        async def observed(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.hooks.emit_http_response(message["status"])
            await send(message)
        return observed

    async def _serve(self, scope: Scope, receive: Receive, send: Send, facts: Facts) -> None:
        headers = facts.headers
        assert headers is not None
        if not self.guard.host_ok(headers.get("host")):
            raise MisdirectedRequest("Misdirected request: Host header not allowed")
        if not self.guard.origin_ok(headers.get("origin")):
            raise OriginForbidden("Forbidden: Origin not allowed")
        method = scope["method"]
        if method not in ("POST", "GET", "DELETE"):
            raise MethodNotAllowed(_ALLOW_POST if facts.modern else _ALLOW_ALL)
        facts.principal = await self._authenticate(scope, headers)
        if method == "POST":
            await self._post(scope, receive, send, facts)
            return
        await self.edge.admit(facts)
        if facts.modern:
            raise MethodNotAllowed(_ALLOW_POST)
        if method == "GET":
            await self._get(scope, receive, send, facts)
        else:
            await self._delete(send, facts)

    async def _authenticate(self, scope: Scope, headers: Mapping[str, str]) -> Principal:
        if self.verifier is None:
            return ANONYMOUS
        # The token first: the failed-auth limit counts failures, so a valid token is admitted whatever else came
        # from its address (behind a proxy every client shares one). Verifiers answering from memory cost a hash
        # per wrong token; those that would ask Redis or an auth service check the limit first
        # (`Presented.before_lookup`), so a flood costs them nothing once its address is over the limit.
        token = bearer_token(headers.get("authorization"))
        refused: Unauthorized | None = None
        principal = None
        if token:
            try:
                principal = await self.verifier.verify(token, Presented(scope, headers, self.hooks))
            except Unauthorized as exc:  # a verifier knew the credential and rejected it, saying why
                refused = exc
        if principal is not None:
            return principal
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        await self.hooks.check_auth_allowed(ip)
        await self.hooks.note_auth_failure(ip)
        challenge = self.challenge
        scopes = " ".join(challenge.login_scopes) or None
        sent = token is not None or "authorization" in headers
        if refused is None:
            raise Unauthorized(credentials_sent=sent, resource_metadata=challenge.resource_metadata, scope=scopes)
        raise refused.challenged(credentials_sent=sent, resource_metadata=challenge.resource_metadata, scope=scopes)

    # -- POST --------------------------------------------------------------------------------------------------

    async def _read_body(self, receive: Receive, headers: Mapping[str, str]) -> bytes:
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BadRequest("Bad Request: invalid Content-Length")
            if int(declared) > self._max_body:
                raise self._too_large()
        chunks, size, more = [], 0, True
        # One deadline for the whole body: the head has its own (transport/limits.py), and without this a body
        # trickled in a byte at a time would hold the request, and its connection, for as long as it likes.
        try:
            async with asyncio.timeout(self._body_timeout):  # a third of anyio.move_on_after's cost per request
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
        except TimeoutError:
            raise RequestTimeout(f"Request timeout: the body did not arrive within {self._body_timeout:g} s") from None
        return b"".join(chunks)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"Payload too large: the limit is {self._max_body} bytes")

    async def _post(self, scope: Scope, receive: Receive, send: Send, facts: Facts) -> None:
        headers = facts.headers
        assert headers is not None
        if not is_json_content_type(headers.get("content-type")):
            raise BadRequest("Bad Request: Content-Type must be application/json")
        if not accepts(headers.get("accept"), json=True, sse=True):
            raise NotAcceptable("Not Acceptable: Accept must list application/json and text/event-stream")
        decoded = self.edge.decode(await self._read_body(receive, headers), facts)
        outcome: Call | Opened | Accepted | WireReply
        if isinstance(decoded, list):
            outcome = await self.edge.batch(decoded, facts)
        else:
            outcome = await self.edge.accept(decoded, facts)
        if isinstance(outcome, Call):
            if outcome.modern and outcome.method == "subscriptions/listen":
                events = self.edge.listen(outcome)
                await serve_stream(scope, receive, send, as_events(events), heartbeat=self._heartbeat)
            else:
                with self.drain.request():  # waited for at shutdown, unlike the long-lived streams
                    await self._respond(outcome, receive, send)
        elif isinstance(outcome, Opened):
            await send_json(send, 200, outcome.reply, [(b"mcp-session-id", outcome.session_id.encode())])
        elif isinstance(outcome, Accepted):
            await send_status(send, 202)
        else:
            await _send_reply(send, outcome)

    async def serve_bus(self) -> None:
        await self.inflight.serve()

    async def _respond(self, call: Call, receive: Receive, send: Send) -> None:
        if call.method != "tools/call":
            await _send_reply(send, await self.edge.answer(call))
            return
        prepared = await self.edge.preflight(call)
        if isinstance(prepared, WireReply):
            await _send_reply(send, prepared)
            return
        recorder = None
        if self.events is not None and call.session_id is not None and call.protocol_version in _RESUMABLE:
            recorder = StreamRecorder(self.events, call.session_id, prime=call.protocol_version in _PRIMING,
                                      retry_ms=int(self._heartbeat * 1000))
        stream = CallStream(send, heartbeat=self._heartbeat, recorder=recorder)
        call.notify = stream.notify
        # 2026-07-28: closing the response stream cancels the call. Handshake era: `notifications/cancelled` does,
        # found by (session, request id), and the call may ask the client things on its stream.
        if call.session_id is None:
            await stream.run(self.edge.run(call, prepared), receive, cancel_on_disconnect=True)
            return
        call.server_request = self.inflight.requester(call.session_id, stream)
        with self.inflight.running(call.session_id, call.id, stream):
            await stream.run(self.edge.run(call, prepared), receive, cancel_on_disconnect=False)

    # -- GET and DELETE (handshake era) ------------------------------------------------------------------------

    async def _get(self, scope: Scope, receive: Receive, send: Send, facts: Facts) -> None:
        assert facts.headers is not None
        if not accepts(facts.headers.get("accept"), json=False, sse=True):
            raise NotAcceptable("Not Acceptable: Accept must list text/event-stream")
        session_id, _ = await self.edge.session(facts)
        self.edge.refuse_if_draining()
        last_event_id = facts.headers.get("last-event-id")
        if last_event_id is not None:
            # Resuming a call's stream: only that stream's events, then the stream ends with its reply.
            if self.events is None or not await self.events.exists(session_id, last_event_id):
                raise UnknownEventId("Unknown Last-Event-ID for this session")
            await serve_stream(scope, receive, send, replay(self.events, session_id, last_event_id),
                               heartbeat=self._heartbeat)
            return
        if session_id in self._get_streams:
            raise StreamConflict("Conflict: this session already has a GET stream")
        sessions = self.edge.sessions
        assert sessions is not None

        async def subscriptions() -> list[str]:
            session = await sessions.get(session_id)
            return session.subscriptions if session is not None else []

        self._get_streams.add(session_id)
        try:
            await serve_stream(scope, receive, send, as_events(self.edge.session_changes(subscriptions)),
                               heartbeat=self._heartbeat)
        finally:
            self._get_streams.discard(session_id)

    async def _delete(self, send: Send, facts: Facts) -> None:
        session_id, _ = await self.edge.session(facts)
        assert self.edge.sessions is not None
        await self.edge.sessions.delete(session_id)
        if self.events is not None:
            await self.events.forget_session(session_id)
        await self.inflight.cancel_session(session_id)
        await send_status(send, 200)
